"""A training configuration: everything that decides a result, and its run id.

A :class:`TrainConfig` says the data and its options, the architecture and its parameters,
the heads, the hyperparameters and the seed. Its canonical JSON hashed gives the run id, so
the same configuration never trains twice ("train again" is an explicit ``repeat`` number that
makes a new id). It sits below the run store (a run is its config) and above data and models
(it is checked against both).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field

from faceml.data.heads import BINARY_OUTPUTS
from faceml.data.prepare import SCALINGS, PrepOptions, labels_for
from faceml.errors import ConfigError

OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
SCHEDULES = ("constant", "cosine", "plateau")
# The augmentations a run can name; their strengths are the builder's defaults
# (faceml.modeling.architectures.AUGMENTATIONS, the one table; a test keeps the names in step).
AUGMENTATIONS = ("flip", "rotation", "zoom", "contrast")


def preset_input(arch: str) -> tuple[int, str]:
    """The input size and colour a preset declares; the data defaults (64, rgb) for an
    architecture that is no preset (a VAE) or not known (validation names it)."""
    from faceml.modeling import architectures

    try:
        spec = architectures.get(arch)
    except ConfigError:
        return PrepOptions.size, PrepOptions.color
    return spec.default_size, spec.default_color


@dataclass
class TrainConfig:
    data: PrepOptions = field(default_factory=PrepOptions)
    arch: str = "default_cnn"
    arch_params: dict = field(default_factory=dict)
    heads: list[str] = field(default_factory=list)
    head_weights: dict = field(default_factory=dict)
    age_loss: str = "mae"
    class_weights: bool = False
    binary_output: str = "sigmoid"  # binary heads: 1 sigmoid unit or "softmax2" (2 units)
    optimizer: str = "adam"
    lr: float = 1e-3
    schedule: str = "constant"
    batch_size: int = 64
    epochs: int = 10
    early_stopping: int = 0  # patience in epochs; 0 = off
    augmentation: list[str] = field(default_factory=list)
    scaling: str = "zscore"  # SCALINGS, fitted on train; omitted from canonical() when default
    seed: int = 0
    mixed_precision: bool = False
    repeat: int = 0  # "train again": a new run of the same configuration

    @property
    def kind(self):
        """The :class:`~faceml.modeling.kinds.ModelKind` that builds this architecture."""
        from faceml.modeling import kinds

        return kinds.for_arch(self.arch)

    def validate(self, labels: dict | None = None) -> None:
        """Every check that can be made before any data is read or anything trains;
        ``labels``: the dataset's labels when known without asking it (a class-per-folder
        set is scanned otherwise)."""
        self.data.validate()
        if not (isinstance(self.lr, int | float) and math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(f"learning rate must be > 0, not {self.lr}")
        if int(self.batch_size) < 1:
            raise ConfigError(f"batch size must be at least 1, not {self.batch_size}")
        if int(self.epochs) < 1:
            raise ConfigError(f"epochs must be at least 1, not {self.epochs}")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(
                f"unknown optimizer {self.optimizer!r}; choose {', '.join(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"unknown schedule {self.schedule!r}; choose {', '.join(SCHEDULES)}")
        bad = [a for a in self.augmentation if a not in AUGMENTATIONS]
        if bad:
            raise ConfigError(f"unknown augmentation {bad[0]!r}; choose {', '.join(AUGMENTATIONS)}")
        if self.binary_output not in BINARY_OUTPUTS:
            raise ConfigError(f"unknown binary output {self.binary_output!r}; choose "
                              f"{' or '.join(BINARY_OUTPUTS)}")
        if self.scaling not in SCALINGS:
            raise ConfigError(f"unknown scaling {self.scaling!r}; choose {', '.join(SCALINGS)}")
        if int(self.early_stopping) < 0:
            raise ConfigError("early-stopping patience cannot be negative")
        kind = self.kind
        if kind.uses_heads and not self.heads:
            raise ConfigError("choose at least one label to predict")
        labels = labels_for(self.data) if labels is None else labels
        for h in self.heads:
            if h not in labels:
                raise ConfigError(f"dataset {self.data.dataset!r} has no label {h!r}; it has "
                                  f"{', '.join(labels)}")
        for h, w in self.head_weights.items():
            if not (isinstance(w, int | float) and w >= 0):
                raise ConfigError(f"loss weight of {h!r} must be ≥ 0, not {w}")
        kind.check(self, labels)

    def canonical(self) -> dict:
        d = asdict(self)
        d["data"] = self.data.canonical()
        d["lr"] = float(self.lr)
        d["batch_size"] = int(self.batch_size)
        d["epochs"] = int(self.epochs)
        d["heads"] = list(self.heads)
        d["head_weights"] = {k: float(v) for k, v in sorted(self.head_weights.items())
                             if k in self.heads}
        d["augmentation"] = sorted(set(self.augmentation))
        if d["binary_output"] == "sigmoid":  # the default: run ids from before it stay the same
            del d["binary_output"]
        if self.scaling == "zscore":  # the default: run ids made before it existed hold
            d.pop("scaling")
        return d

    def run_id(self) -> str:
        blob = json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        """A config from its dict; a ``data.size``/``data.color`` of None (the ``train`` flags
        left unset) is the architecture preset's input (``ArchSpec.default_size/_color``)."""
        d = dict(d)
        data = dict(d.get("data", {}))
        if data.get("size") is None or data.get("color") is None:
            size, color = preset_input(d.get("arch", cls.arch))
            data["size"] = size if data.get("size") is None else data["size"]
            data["color"] = color if data.get("color") is None else data["color"]
        d["data"] = PrepOptions.from_dict(data)
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})
