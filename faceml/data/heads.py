"""What a model predicts: one head per label.

A :class:`HeadSpec` is made from a dataset's :class:`~faceml.data.LabelSpec` and the
preprocessing options (age as years or as bins). Its ``kind`` decides the output layer and
the loss:

- ``binary``: one sigmoid unit, binary cross-entropy; the output is P(classes[1]).
- ``multiclass``: softmax over ``classes``, sparse categorical cross-entropy.
- ``regression``: one linear unit in years (a ``Rescaling`` by the training mean/std), MAE
  or Huber loss.

Targets are integer class indices (``binary``/``multiclass``) or float years (``regression``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


def categorical_kind(classes) -> str:
    """The head kind of a categorical label: ``binary`` for two classes, else ``multiclass``
    (the one place this is decided)."""
    return "binary" if len(classes) == 2 else "multiclass"


@dataclass
class HeadSpec:
    name: str
    kind: str  # "binary" | "multiclass" | "regression"
    classes: list[str] = field(default_factory=list)
    loss: str = ""  # "" = default: bce / sparse cce / "mae"; regression may use "huber"
    weight: float = 1.0
    target_mean: float = 0.0  # regression: training-split mean and std of the target
    target_std: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in ("binary", "multiclass", "regression"):
            raise ValueError(f"unknown head kind {self.kind!r}")
        if not self.loss:
            self.loss = {"binary": "binary_crossentropy",
                         "multiclass": "sparse_categorical_crossentropy",
                         "regression": "mae"}[self.kind]

    @property
    def units(self) -> int:
        return len(self.classes) if self.kind == "multiclass" else 1

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> HeadSpec:
        return cls(**d)


def placeholder_head(spec):
    """A head spec good enough to build a model before the data is read (shapes, counts)."""
    if spec.kind == "years":
        return HeadSpec(spec.name, "regression")
    return HeadSpec(spec.name, categorical_kind(spec.classes), list(spec.classes))
