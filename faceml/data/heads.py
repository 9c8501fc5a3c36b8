"""What a model predicts: one head per label.

A :class:`HeadSpec` is made from a dataset's :class:`~faceml.data.LabelSpec` and the
preprocessing options (age as years or as bins). Its ``kind`` decides the output layer and
the loss:

- ``binary``: one sigmoid unit, binary cross-entropy; the output is P(classes[1]). With
  ``output="softmax2"`` (the FairFace and CelebA notebooks) it is two softmax units trained with
  sparse categorical cross-entropy; :func:`faceml.modeling.modelio.named_outputs` hands every
  reader column 1 of them, so everything downstream still sees P(classes[1]).
- ``multiclass``: softmax over ``classes``, sparse categorical cross-entropy.
- ``regression``: one linear unit in years (a ``Rescaling`` by the training mean/std), MAE
  or Huber loss.

Targets are integer class indices (``binary``/``multiclass``) or float years (``regression``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

BINARY_OUTPUTS = ("sigmoid", "softmax2")
"""How a binary head answers: one sigmoid unit (default) or a 2-unit softmax."""


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
    output: str = "sigmoid"  # binary heads: "sigmoid" (1 unit) | "softmax2" (2 units)

    def __post_init__(self) -> None:
        if self.kind not in ("binary", "multiclass", "regression"):
            raise ValueError(f"unknown head kind {self.kind!r}")
        if self.output not in BINARY_OUTPUTS:
            raise ValueError(f"unknown binary output {self.output!r}; choose "
                             f"{' or '.join(BINARY_OUTPUTS)}")
        if self.output != "sigmoid" and self.kind != "binary":
            raise ValueError(f"only a binary head can have output {self.output!r}")
        if not self.loss:
            self.loss = {"binary": "binary_crossentropy",
                         "multiclass": "sparse_categorical_crossentropy",
                         "regression": "mae"}[self.kind]
            if self.softmax2:
                self.loss = "sparse_categorical_crossentropy"

    @property
    def softmax2(self) -> bool:
        """A binary head answering with two softmax units (P(classes[0]), P(classes[1]))."""
        return self.output == "softmax2"

    @property
    def units(self) -> int:
        if self.kind == "multiclass" or self.softmax2:
            return len(self.classes) or 2
        return 1

    def with_output(self, output: str) -> HeadSpec:
        """This head with a binary ``output`` (other kinds are returned unchanged); the default
        loss follows the output."""
        if self.kind != "binary" or output == self.output:
            return self
        default = self.loss in ("", "binary_crossentropy", "sparse_categorical_crossentropy")
        return replace(self, output=output, loss="" if default else self.loss)

    def to_dict(self) -> dict:
        d = asdict(self)
        if d["output"] == "sigmoid":  # heads stored before the field existed read the same
            del d["output"]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> HeadSpec:
        return cls(**d)


def placeholder_head(spec):
    """A head spec good enough to build a model before the data is read (shapes, counts)."""
    if spec.kind == "years":
        return HeadSpec(spec.name, "regression")
    return HeadSpec(spec.name, categorical_kind(spec.classes), list(spec.classes))
