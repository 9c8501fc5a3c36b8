"""Model files and calls: load (``.keras`` only, ``safe_mode=True`` always), save atomically,
and name a model's outputs."""

from __future__ import annotations

import os
import shutil
import zipfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from faceml.errors import FaceMLError
from faceml.io import atomic_file, temp_beside


def _register_custom_objects() -> None:
    # Importing these modules registers FaceML's serializable layers and losses.
    import faceml.modeling.layers  # noqa: F401
    import faceml.modeling.losses  # noqa: F401

    for mod in ("faceml.modeling.architectures", "faceml.modeling.vae"):
        try:
            __import__(mod)
        except ImportError:
            pass


def load_model(path: str | Path, compile: bool = False):
    """Load a FaceML ``.keras`` model safely; a clear :class:`FaceMLError` for anything else.

    ``safe_mode=True`` refuses models that would run arbitrary code (``Lambda`` layers with
    pickled bytecode), so a crafted file cannot execute anything on load.
    """
    import keras

    _register_custom_objects()
    p = Path(path)
    if not p.is_file():
        raise FaceMLError(f"model file not found: {p}")
    if p.suffix != ".keras" or not zipfile.is_zipfile(p):
        raise FaceMLError(f"{p.name} is not a Keras model (.keras file)")
    try:
        return keras.saving.load_model(p, safe_mode=True, compile=compile)
    except ValueError as e:
        msg = str(e)
        if "safe_mode" in msg or "Lambda" in msg or "unsafe" in msg.lower():
            raise FaceMLError(f"{p.name} was refused: it contains code that would run on "
                              "loading (e.g. a Lambda layer); only safe models are loaded"
                              ) from None
        raise FaceMLError(
            f"{p.name} could not be loaded as a model: {msg.splitlines()[0]}") from None
    except (OSError, KeyError, TypeError, zipfile.BadZipFile) as e:
        raise FaceMLError(f"{p.name} could not be loaded as a model: {e}") from None


def softmax2_heads(model) -> set[str]:
    """The names of a model's binary heads that answer with a 2-unit softmax (its metadata)."""
    from faceml.modeling.layers import find_preprocessing

    try:
        heads = find_preprocessing(model).metadata.get("heads") or []
    except (LookupError, AttributeError, TypeError, ValueError):
        return set()
    return {h.get("name") for h in heads if isinstance(h, dict)
            and h.get("kind") == "binary" and h.get("output") == "softmax2"}


def named_outputs(model, out, names=None) -> dict:
    """A model's outputs as ``{output name: array}``: Keras returns a dict, a list or one
    array depending on how the model was built. ``names`` when the model has none (the
    heads' names, in output order).

    A binary head always reads as P(classes[1]) of shape ``(n, 1)``: where the model answers it
    with a 2-unit softmax, column 1 is taken here (the one place), so predictions, evaluation
    and serving treat both outputs alike."""
    if isinstance(out, dict):
        named = dict(out)
    else:
        outs = list(out) if isinstance(out, list | tuple) else [out]
        names = list(getattr(model, "output_names", None) or names
                     or [f"out{i}" for i in range(len(outs))])
        named = dict(zip(names, outs))
    for name in softmax2_heads(model) & set(named):
        v = named[name]
        if len(v.shape) == 2 and v.shape[-1] == 2:
            named[name] = v[:, 1:2]
    return named


def predict_arrays(model, x: np.ndarray, batch_size: int = 256) -> dict[str, np.ndarray]:
    """Model outputs as a dict of numpy arrays (one entry per head)."""
    out = named_outputs(model, model.predict(x, batch_size=batch_size, verbose=0))
    return {k: np.asarray(v) for k, v in out.items()}


def _write_atomic(dest: str | Path, write) -> None:
    """``write(tmp_path)`` to a temporary ``.keras`` beside ``dest``, then rename it into place,
    so a crash never leaves a half-written model."""
    with atomic_file(dest, suffix=".keras") as tmp:
        write(tmp)


def save_model(model, path: str | Path) -> None:
    """Save to ``path`` atomically."""
    _write_atomic(path, model.save)


def copy_atomic(src: str | Path, dest: str | Path) -> None:
    """Copy a model file atomically."""
    _write_atomic(dest, lambda tmp: shutil.copyfile(src, tmp))


@contextmanager
def staged_checkpoint(model, last: str | Path, best: str | Path | None = None):
    """Save ``model`` as the next ``last`` checkpoint (and, given ``best``, as a copy there).

    Everything is written to temporary files beside them first; then the ``with`` body runs
    (the engine records the epoch) and only then are the files renamed into place. If a write
    or the body fails (a full disk), the temporary files are removed and the previous
    checkpoints are left exactly as they were, so a run's files always agree on its last
    epoch."""
    targets = [Path(last)] + ([Path(best)] if best is not None else [])
    temps: list[str] = []
    try:
        for i, dest in enumerate(targets):
            temps.append(temp_beside(dest, suffix=".keras"))
            if i == 0:
                model.save(temps[0])
            else:  # the same weights: a copy, not a second save
                shutil.copyfile(temps[0], temps[i])
        yield
        for tmp, dest in zip(temps[::-1], targets[::-1]):  # best first: last says "epoch done"
            os.replace(tmp, dest)
    finally:
        for tmp in temps:
            Path(tmp).unlink(missing_ok=True)
