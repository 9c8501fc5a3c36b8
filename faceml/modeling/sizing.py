"""A configuration's model size and layer table, without allocating its weights.

The model is built inside a Keras ``StatelessScope`` that defers every variable's
initialisation: the layers, shapes and parameter counts are real, but no weight is ever
allocated, so a 550-billion-parameter model from a visitor's JSON costs milliseconds and no
memory. This is what the Train page's layer table and the hosted parameter cap use.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from faceml.errors import ConfigError, FaceMLError


@dataclass(frozen=True)
class ModelSize:
    total: int
    trainable: int
    table: pd.DataFrame


def model_size(cfg, labels: dict | None = None) -> ModelSize:
    """Layer table and parameter counts of a :class:`~faceml.config.TrainConfig`'s model
    (validated first: a bad configuration raises its ConfigError). ``labels``: the dataset's
    labels where they are known without reading it (a recipe sized before its class-per-folder
    set is on disk); default: asked of the dataset."""
    import keras

    from faceml.data.prepare import labels_for
    from faceml.modeling import architectures

    if labels is None:
        labels = labels_for(cfg.data)
    cfg.validate(labels)
    kind = cfg.kind
    try:
        with keras.StatelessScope(initialize_variables=False):
            # no data: shapes and counts only (no pretrained weights to download)
            model = kind.build(cfg, kind.placeholder_heads(cfg, labels))
            total, trainable = architectures.param_counts(model)
            table = architectures.layer_table(model)
    except FaceMLError:
        raise
    except Exception as e:  # noqa: BLE001 - a visitor's JSON: a message, never a traceback
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ConfigError(f"this model cannot be built: {first[:300]}") from None
    finally:
        _forget_deferred_variables()
    return ModelSize(total, trainable, table)


def _forget_deferred_variables() -> None:
    """Drop this thread's list of never-initialised variables, so no later scope initialises
    them. Not ``keras.backend.clear_session()``: that resets Keras's state in *every* thread
    (it replaces the thread-local holder), which would end another visitor's scope mid-build
    and make Keras allocate that visitor's weights after all."""
    from keras.src.backend.common import global_state

    global_state.set_global_attribute("uninitialized_variables", [])
