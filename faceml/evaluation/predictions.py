"""The predictions frame: building it, checking it, and reading heads and classes back.

Every metric of :mod:`faceml.evaluation` is computed from this one frame. Pure numpy / pandas:
no scikit-learn, no plotting, so it loads fast (the CLI's ``--help``, the Evaluate page).

The predictions frame (the contract)
------------------------------------
One row per face, built by :func:`predictions_frame` and stored once per training run:

``source``
    The face's id (file name relative to the dataset root).
``split``
    ``"val"``, ``"test"``, ... (one frame may hold several splits; every function here refuses
    to mix them unless told which one with ``split=``).
Per categorical head ``H`` (``binary`` or ``multiclass``) with classes ``c0, c1, ...`` in
:attr:`HeadSpec.classes` order:
    ``H_true``   the true class *name* (missing when the face has no such label),
    ``H_pred``   the predicted class name (argmax; binary: ``P(c1) >= 0.5``),
    ``H_prob_c`` one float column per class, in ``classes`` order, each row summing to 1
    (binary heads too: ``H_prob_c0 = 1 - P(c1)``).
Per regression head ``H`` (age in years):
    ``H_true``, ``H_pred`` (floats, years).
Grouping columns (the dataset's other labels, for :func:`group_breakdown`):
    ``group_<label>``: every column of ``extra`` given to :func:`predictions_frame` is stored
    under a ``group_`` prefix (``race`` -> ``group_race``, ``age_years`` -> ``group_age_years``),
    so it can never collide with a head's columns. Categorical values are class names, ages are
    float years.

The heads of a frame are recovered from its columns (:func:`heads_from_frame`): ``H_true`` with
``H_prob_*`` columns is categorical (two classes: binary), ``H_true`` without is regression.
Every function taking ``head`` accepts a :class:`~faceml.data.heads.HeadSpec` or a head name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from faceml.data.heads import HeadSpec, categorical_kind
from faceml.errors import FaceMLError

__all__ = [
    "GROUP_PREFIX",
    "CategoricalRows",
    "MetricsInputError",
    "check_frame",
    "dataset_rows",
    "frame_datasets",
    "has_truth",
    "group_columns",
    "heads_from_frame",
    "predicted_classes",
    "predictions_frame",
    "resolve_head",
]

GROUP_PREFIX = "group_"
RESERVED = ("source", "split")


class MetricsInputError(FaceMLError, ValueError):
    """A predictions frame (or argument) that metrics cannot be computed from."""


# --- checking a frame ------------------------------------------------------------------------

def check_frame(frame: pd.DataFrame, split: str | None = None) -> pd.DataFrame:
    """Non-empty frame of a single split (filtered to ``split`` when given)."""
    if not isinstance(frame, pd.DataFrame):
        raise MetricsInputError(f"expected a predictions DataFrame, got {type(frame).__name__}")
    if split is not None:
        if "split" not in frame.columns:
            raise MetricsInputError("the predictions frame has no 'split' column to select "
                                    f"split {split!r} from")
        frame = frame[frame["split"] == split]
        if len(frame) == 0:
            raise MetricsInputError(f"the predictions frame has no rows for split {split!r}")
    if len(frame) == 0:
        raise MetricsInputError("the predictions frame is empty (0 rows): nothing to evaluate")
    if split is None and "split" in frame.columns and frame["split"].nunique() > 1:
        splits = sorted(map(str, pd.unique(frame["split"].dropna())))
        raise MetricsInputError(f"the predictions frame mixes splits {splits}; "
                                "pass split= to choose one")
    return frame


def heads_from_frame(frame: pd.DataFrame) -> list[HeadSpec]:
    """The heads a predictions frame holds, recovered from its columns (in column order)."""
    cols = list(frame.columns)
    heads = []
    for c in cols:
        if not c.endswith("_true") or c.startswith(GROUP_PREFIX):
            continue
        name = c[: -len("_true")]
        prefix = f"{name}_prob_"
        classes = [p[len(prefix):] for p in cols if p.startswith(prefix)]
        if not classes:
            heads.append(HeadSpec(name, "regression"))
        elif len(classes) == 1:
            raise MetricsInputError(f"head {name!r} has a single probability column; "
                                    "a categorical head has at least two classes")
        else:
            heads.append(HeadSpec(name, categorical_kind(classes), classes))
    return heads


def resolve_head(frame: pd.DataFrame, head: HeadSpec | str) -> HeadSpec:
    name = head.name if isinstance(head, HeadSpec) else str(head)
    need = [f"{name}_true", f"{name}_pred"]
    if isinstance(head, HeadSpec) and head.kind != "regression":
        need += [f"{name}_prob_{c}" for c in head.classes]
    missing = [c for c in need if c not in frame.columns]
    if missing:
        raise MetricsInputError(f"the predictions frame has no column(s) {missing} "
                                f"for head {name!r}")
    if isinstance(head, HeadSpec):
        return head
    for h in heads_from_frame(frame):
        if h.name == name:
            return h
    raise MetricsInputError(f"no head {name!r} in the predictions frame")  # pragma: no cover


def class_codes(values: pd.Series, classes: Sequence[str], what: str) -> np.ndarray:
    """Class names -> indices in ``classes`` order; missing -> -1; unknown names are an error."""
    codes = pd.Categorical(values, categories=list(classes)).codes.astype(np.int64)
    bad = (codes < 0) & values.notna().to_numpy()
    if bad.any():
        unknown = sorted(map(str, pd.unique(values[bad])))[:5]
        raise MetricsInputError(f"{what} holds class name(s) {unknown} that are not among "
                                f"the head's classes {list(classes)}")
    return codes


def check_threshold(spec: HeadSpec, threshold: float | None) -> None:
    if threshold is None:
        return
    if spec.kind != "binary":
        raise MetricsInputError(f"a threshold applies to binary heads only; {spec.name!r} is "
                                f"{spec.kind}")
    if not 0.0 <= float(threshold) <= 1.0:
        raise MetricsInputError(f"threshold must lie in [0, 1], got {threshold}")


class CategoricalRows:
    """A categorical head's labelled rows as sklearn-ready arrays (indices in classes order)."""

    def __init__(self, frame: pd.DataFrame, spec: HeadSpec, threshold: float | None = None):
        if spec.kind == "regression":
            raise MetricsInputError(f"head {spec.name!r} is a regression head; "
                                    "use regression_metrics")
        check_threshold(spec, threshold)
        self.spec = spec
        self.classes = list(spec.classes)
        t = class_codes(frame[f"{spec.name}_true"], self.classes, f"{spec.name}_true")
        keep = t >= 0
        if not keep.any():
            raise MetricsInputError(f"no row of the predictions frame has a true "
                                    f"{spec.name!r} label")
        self.frame = frame[keep] if not keep.all() else frame
        self.y_true = t[keep]
        self.proba = self.frame[[f"{spec.name}_prob_{c}" for c in self.classes]] \
            .to_numpy(dtype=np.float64)
        if threshold is None:
            self.y_pred = class_codes(self.frame[f"{spec.name}_pred"], self.classes,
                                      f"{spec.name}_pred")
            if (self.y_pred < 0).any():
                raise MetricsInputError(f"{spec.name}_pred has missing predictions")
        else:
            self.y_pred = (self.proba[:, 1] >= float(threshold)).astype(np.int64)
        self.labels = np.arange(len(self.classes))


# --- building the frame ----------------------------------------------------------------------

def predictions_frame(sources: Sequence[str], heads: list[HeadSpec],
                      y_true: Mapping[str, np.ndarray], outputs: Mapping[str, np.ndarray],
                      split: str, extra: pd.DataFrame | None = None, *,
                      dataset: str | None = None) -> pd.DataFrame:
    """The predictions frame of one split (see the module docstring for its columns).

    ``y_true[head]``: class indices (``-1`` = unlabelled; class names are accepted too) or
    float years (``nan`` = unknown). ``outputs[head]``: the model's raw output: binary
    ``(n, 1)`` sigmoid ``P(classes[1])``, multiclass ``(n, k)`` softmax, regression ``(n, 1)``
    years. ``extra``: other labels of the same ``n`` faces (positional), stored as
    ``group_<column>``. ``dataset`` is kept in ``frame.attrs["dataset"]``.
    """
    sources = list(sources)
    n = len(sources)
    if n == 0:
        raise MetricsInputError("no faces to build a predictions frame from (0 sources)")
    if not heads:
        raise MetricsInputError("no heads given to build a predictions frame from")
    cols: dict[str, Any] = {"source": pd.Series(sources, dtype=object).astype(str),
                            "split": [str(split)] * n}
    for h in heads:
        if h.name not in outputs:
            raise MetricsInputError(f"no model output for head {h.name!r}")
        if h.name not in y_true:
            raise MetricsInputError(f"no true values for head {h.name!r}")
        out = np.asarray(outputs[h.name], dtype=np.float64)
        yt = np.asarray(y_true[h.name])
        if len(out) != n or len(yt) != n:
            raise MetricsInputError(f"head {h.name!r}: {len(out)} outputs and {len(yt)} true "
                                    f"values for {n} faces")
        if h.kind == "regression" or h.kind == "binary":
            if out.ndim == 2 and out.shape[1] == 1:
                out = out[:, 0]
            if out.ndim != 1:
                raise MetricsInputError(f"head {h.name!r} ({h.kind}) expects outputs of shape "
                                        f"(n, 1), got {out.shape}")
        if h.kind == "regression":
            cols[f"{h.name}_true"] = yt.astype(np.float64)
            cols[f"{h.name}_pred"] = out
            continue
        k = len(h.classes)
        if h.kind == "binary":
            if k != 2:
                raise MetricsInputError(f"binary head {h.name!r} needs two classes, has {k}")
            if np.nanmin(out) < 0 or np.nanmax(out) > 1:
                raise MetricsInputError(f"head {h.name!r}: outputs must be sigmoid "
                                        "probabilities in [0, 1] (got logits?)")
            proba = np.column_stack([1.0 - out, out])
            pred = (out >= 0.5).astype(np.int64)
        else:
            if out.ndim != 2 or out.shape[1] != k:
                raise MetricsInputError(f"head {h.name!r} expects outputs of shape (n, {k}), "
                                        f"got {out.shape}")
            s = out.sum(axis=1)
            if (out < 0).any() or not np.allclose(s, 1.0, atol=1e-3):
                raise MetricsInputError(f"head {h.name!r}: outputs must be softmax "
                                        "probabilities summing to 1 (got logits?)")
            proba = out / s[:, None]  # exact float64 normalisation of float32 softmax
            pred = proba.argmax(axis=1)
        if yt.dtype.kind in "OUS":
            idx = class_codes(pd.Series(yt), h.classes, f"y_true[{h.name!r}]")
        else:
            ytf = yt.astype(np.float64)
            idx = np.where(np.isnan(ytf), -1, ytf).astype(np.int64)
            if (idx >= k).any() or (idx < -1).any():
                raise MetricsInputError(f"y_true[{h.name!r}] holds class indices outside "
                                        f"0..{k - 1}")
        names = np.asarray(h.classes, dtype=object)
        cols[f"{h.name}_true"] = pd.Series(np.where(idx >= 0, names[np.maximum(idx, 0)], None),
                                           dtype=object)
        cols[f"{h.name}_pred"] = names[pred]
        for j, c in enumerate(h.classes):
            cols[f"{h.name}_prob_{c}"] = proba[:, j]
    frame = pd.DataFrame(cols)
    for c in ("source", "split") + tuple(f"{h.name}_{s}" for h in heads
                                         if h.kind != "regression" for s in ("true", "pred")):
        frame[c] = frame[c].astype("str")
    if extra is not None:
        if len(extra) != n:
            raise MetricsInputError(f"extra has {len(extra)} rows for {n} faces")
        for c in extra.columns:
            name = str(c) if str(c).startswith(GROUP_PREFIX) else f"{GROUP_PREFIX}{c}"
            frame[name] = extra[c].to_numpy()
    frame.attrs["heads"] = [h.to_dict() for h in heads]
    if dataset is not None:
        frame.attrs["dataset"] = str(dataset)
    return frame


# --- reading it back ---------------------------------------------------------------------------

DATASET_COLUMN = f"{GROUP_PREFIX}dataset"
"""The column naming each face's dataset in a run trained on several datasets at once."""


def frame_datasets(frame: pd.DataFrame) -> list[str]:
    """The datasets of a frame's faces (a run on several datasets), in order seen; ``[]`` for a
    frame of one dataset."""
    if DATASET_COLUMN not in frame.columns:
        return []
    return [str(d) for d in pd.unique(frame[DATASET_COLUMN].dropna())]


def dataset_rows(frame: pd.DataFrame, dataset: str) -> pd.DataFrame | None:
    """The rows of one dataset of a several-dataset frame (attributes kept, ``dataset`` set);
    None when it has none."""
    if DATASET_COLUMN not in frame.columns:
        return None
    sub = frame[frame[DATASET_COLUMN].astype(str) == str(dataset)]
    if not len(sub):
        return None
    sub = sub.copy()
    sub.attrs = {**frame.attrs, "dataset": str(dataset)}
    return sub


def has_truth(frame: pd.DataFrame, head: HeadSpec) -> bool:
    """Whether any row of ``frame`` has a true value of ``head`` (a several-dataset run's face
    has only its own dataset's labels)."""
    col = f"{head.name}_true"
    if col not in frame.columns:
        return False
    t = frame[col]
    if head.kind == "regression":
        return bool(pd.to_numeric(t, errors="coerce").notna().any())
    return bool((t.notna() & ~t.astype(str).isin(["None", "nan", ""])).any())

def predicted_classes(frame: pd.DataFrame, head: HeadSpec | str,
                      threshold: float | None = None) -> np.ndarray:
    """Every row's predicted class name of a categorical head (unlabelled rows too).

    ``threshold`` (binary heads only): ``classes[1]`` when ``P(classes[1]) >= threshold``, as in
    :func:`classification_metrics`; ``None``: the stored ``H_pred`` (binary: ``P >= 0.5``)."""
    spec = resolve_head(frame, head)
    if spec.kind == "regression":
        raise MetricsInputError(f"head {spec.name!r} is a regression head: it predicts years, "
                                "not classes")
    check_threshold(spec, threshold)
    if threshold is None:
        return frame[f"{spec.name}_pred"].to_numpy(dtype=object)
    pos = frame[f"{spec.name}_prob_{spec.classes[1]}"].to_numpy(dtype=np.float64) \
        >= float(threshold)
    return np.where(pos, spec.classes[1], spec.classes[0]).astype(object)


def group_columns(frame: pd.DataFrame, head: HeadSpec | str) -> list[str]:
    """The other labels a head's results can be broken down by (names for ``group_breakdown``):
    race, gender and age first where present, then the rest; the head itself is left out, and
    ``age_years`` when ``age`` is there (or the head is age)."""
    name = head.name if isinstance(head, HeadSpec) else str(head)
    cols = [c[len(GROUP_PREFIX):] for c in frame.columns if c.startswith(GROUP_PREFIX)]
    out = [c for c in cols if c != name]
    if name == "age":
        out = [c for c in out if c != "age_years"]
    elif "age" in out and "age_years" in out:
        out.remove("age_years")
    first = [c for c in ("race", "gender", "age", "age_years") if c in out]
    return first + [c for c in out if c not in first]
