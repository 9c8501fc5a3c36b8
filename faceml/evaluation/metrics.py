"""Every metric from scikit-learn, computed once from one stored *predictions frame*.

Numbers live here; plots are built elsewhere from these numbers (like fastai's
``Interpretation``). Pure numpy / pandas / scikit-learn / scipy: no keras, no streamlit, no
plotting.

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

Conventions: classes are passed to scikit-learn as integer indices in ``classes`` order (so
``labels=`` keeps absent classes and probability columns line up); ill-defined ratios (a class
never predicted, ...) follow scikit-learn's ``zero_division=0``; macro / weighted averages are
scikit-learn's own (over the classes present in truth or predictions). Bad input raises
:class:`MetricsInputError` (a :class:`~faceml.errors.FaceMLError` and a ``ValueError``) with one
clear sentence.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from contextlib import contextmanager
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import (
    accuracy_score,
    auc,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    log_loss,
    mean_absolute_error,
    multilabel_confusion_matrix,
    precision_recall_fscore_support,
    precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
    root_mean_squared_error,
)

from faceml.data.ages import AGE_DECADES, age_groups
from faceml.errors import FaceMLError
from faceml.data.heads import HeadSpec

__all__ = [
    "GROUP_PREFIX",
    "Interpretation",
    "MetricsInputError",
    "bootstrap_ci",
    "cell_members",
    "classification_metrics",
    "group_breakdown",
    "heads_from_frame",
    "predicted_classes",
    "predictions_frame",
    "regression_metrics",
    "roc_curves",
    "threshold_metrics",
    "top_losses",
    "wilson_interval",
    "within_one_bin_accuracy",
]

GROUP_PREFIX = "group_"

ZERO_DIVISION = 0.0
_RESERVED = ("source", "split")


class MetricsInputError(FaceMLError, ValueError):
    """A predictions frame (or argument) that metrics cannot be computed from."""


# --- small helpers ---------------------------------------------------------------------------

def _num(x: Any) -> float | None:
    """A plain float for JSON, ``None`` for nan / missing."""
    if x is None:
        return None
    x = float(x)
    return None if math.isnan(x) else x


@contextmanager
def _quiet():
    """Silence scikit-learn's warnings for ratios we define by ``zero_division``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        warnings.filterwarnings("ignore", message=".*y_pred contains classes not in y_true.*")
        warnings.filterwarnings("ignore", message=".*A single label was found.*")
        yield


def _check_frame(frame: pd.DataFrame, split: str | None = None) -> pd.DataFrame:
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
            heads.append(HeadSpec(name, "binary" if len(classes) == 2 else "multiclass",
                                  classes))
    return heads


def _resolve(frame: pd.DataFrame, head: HeadSpec | str) -> HeadSpec:
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


def _codes(values: pd.Series, classes: Sequence[str], what: str) -> np.ndarray:
    """Class names -> indices in ``classes`` order; missing -> -1; unknown names are an error."""
    codes = pd.Categorical(values, categories=list(classes)).codes.astype(np.int64)
    bad = (codes < 0) & values.notna().to_numpy()
    if bad.any():
        unknown = sorted(map(str, pd.unique(values[bad])))[:5]
        raise MetricsInputError(f"{what} holds class name(s) {unknown} that are not among "
                                f"the head's classes {list(classes)}")
    return codes


def _check_threshold(spec: HeadSpec, threshold: float | None) -> None:
    if threshold is None:
        return
    if spec.kind != "binary":
        raise MetricsInputError(f"a threshold applies to binary heads only; {spec.name!r} is "
                                f"{spec.kind}")
    if not 0.0 <= float(threshold) <= 1.0:
        raise MetricsInputError(f"threshold must lie in [0, 1], got {threshold}")


class _Cat:
    """A categorical head's labelled rows as sklearn-ready arrays (indices in classes order)."""

    def __init__(self, frame: pd.DataFrame, spec: HeadSpec, threshold: float | None = None):
        if spec.kind == "regression":
            raise MetricsInputError(f"head {spec.name!r} is a regression head; "
                                    "use regression_metrics")
        _check_threshold(spec, threshold)
        self.spec = spec
        self.classes = list(spec.classes)
        t = _codes(frame[f"{spec.name}_true"], self.classes, f"{spec.name}_true")
        keep = t >= 0
        if not keep.any():
            raise MetricsInputError(f"no row of the predictions frame has a true "
                                    f"{spec.name!r} label")
        self.frame = frame[keep] if not keep.all() else frame
        self.y_true = t[keep]
        self.proba = self.frame[[f"{spec.name}_prob_{c}" for c in self.classes]] \
            .to_numpy(dtype=np.float64)
        if threshold is None:
            self.y_pred = _codes(self.frame[f"{spec.name}_pred"], self.classes,
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
            idx = _codes(pd.Series(yt), h.classes, f"y_true[{h.name!r}]")
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


# --- classification --------------------------------------------------------------------------

def classification_metrics(frame: pd.DataFrame, head: HeadSpec | str,
                           threshold: float | None = None, *, split: str | None = None,
                           ordered: bool | None = None) -> dict:
    """All classification metrics of a categorical head, from scikit-learn.

    ``threshold`` (binary heads only) recomputes predictions as ``P(classes[1]) >= threshold``;
    ``None`` uses the stored ``H_pred``. ``ordered`` adds ``within_one_bin_accuracy`` (classes
    are ordered bins); ``None`` = when the head's name starts with ``age``.

    Returns a JSON-ready dict: ``head, kind, classes, n, threshold, accuracy,
    balanced_accuracy, f1_macro, f1_weighted, per_class{class: precision, recall,
    sensitivity, specificity, f1, support}, macro{...}, weighted{...}, auc, auc_reason,
    auc_per_class, log_loss, confusion_matrix`` (rows = true, columns = predicted, all classes
    in order) and, for binary heads, ``positive_class``.
    """
    frame = _check_frame(frame, split)
    spec = _resolve(frame, head)
    d = _Cat(frame, spec, threshold)
    yt, yp, labels, classes = d.y_true, d.y_pred, d.labels, d.classes
    with _quiet():
        acc = accuracy_score(yt, yp)
        bacc = balanced_accuracy_score(yt, yp)
        p, r, f, s = precision_recall_fscore_support(yt, yp, labels=labels, average=None,
                                                     zero_division=ZERO_DIVISION)
        mcm = multilabel_confusion_matrix(yt, yp, labels=labels)
        avg = {a: precision_recall_fscore_support(yt, yp, average=a,
                                                  zero_division=ZERO_DIVISION)[:3]
               for a in ("macro", "weighted")}
        cm = confusion_matrix(yt, yp, labels=labels)
        ll = log_loss(yt, d.proba, labels=labels)
    tn, fp = mcm[:, 0, 0], mcm[:, 0, 1]
    neg = tn + fp
    spec_ = np.where(neg > 0, tn / np.maximum(neg, 1), ZERO_DIVISION)
    present = np.union1d(yt, yp)  # scikit-learn's own label set for its averages
    per_class = {
        c: {"precision": float(p[i]), "recall": float(r[i]), "sensitivity": float(r[i]),
            "specificity": float(spec_[i]), "f1": float(f[i]), "support": int(s[i])}
        for i, c in enumerate(classes)}
    w = s[present]
    averages = {}
    for a, (ap, ar, af) in avg.items():
        sp = (float(np.mean(spec_[present])) if a == "macro"
              else float(np.average(spec_[present], weights=w)) if w.sum() > 0 else 0.0)
        averages[a] = {"precision": float(ap), "recall": float(ar), "sensitivity": float(ar),
                       "specificity": sp, "f1": float(af)}
    auc_value, reason, per_class_auc = _auc(yt, d.proba, spec)
    out = {
        "head": spec.name, "kind": spec.kind, "classes": classes, "n": int(len(yt)),
        "threshold": None if threshold is None else float(threshold),
        "accuracy": float(acc), "balanced_accuracy": float(bacc),
        "f1_macro": averages["macro"]["f1"], "f1_weighted": averages["weighted"]["f1"],
        "per_class": per_class, "macro": averages["macro"], "weighted": averages["weighted"],
        "auc": auc_value, "auc_reason": reason, "auc_per_class": per_class_auc,
        "log_loss": float(ll), "confusion_matrix": cm.astype(int).tolist(),
    }
    if spec.kind == "binary":
        out["positive_class"] = classes[1]
    if ordered or (ordered is None and spec.name.lower().startswith("age")):
        out["within_one_bin_accuracy"] = within_one_bin_accuracy(yt, yp)
    return out


def _auc(yt: np.ndarray, proba: np.ndarray, spec: HeadSpec):
    """(auc, reason-if-None, {class: one-vs-rest auc or None})."""
    classes = list(spec.classes)
    present = set(np.unique(yt).tolist())
    per_class: dict[str, float | None] = {}
    for i, c in enumerate(classes):
        y = yt == i
        per_class[c] = float(roc_auc_score(y, proba[:, i])) if 0 < y.sum() < len(y) else None
    if len(present) < 2:
        only = classes[next(iter(present))]
        return None, (f"only one class ({only!r}) is present in y_true; "
                      "ROC AUC is undefined"), per_class
    if spec.kind == "binary":
        return float(roc_auc_score(yt == 1, proba[:, 1])), None, per_class
    absent = [c for i, c in enumerate(classes) if i not in present]
    if absent:
        return None, (f"class(es) {absent} absent from y_true; one-vs-rest macro ROC AUC is "
                      "undefined (see auc_per_class for the classes where it is)"), per_class
    try:
        value = roc_auc_score(yt, proba, multi_class="ovr", average="macro",
                              labels=np.arange(len(classes)))
    except ValueError as e:  # e.g. probabilities not summing to one
        return None, f"ROC AUC could not be computed: {e}", per_class
    return float(value), None, per_class


def within_one_bin_accuracy(y_true_idx, y_pred_idx) -> float:
    """Share of predictions at most one ordered bin away from the truth (|true - pred| <= 1).

    scikit-learn has no such metric; exact-bin accuracy is ``accuracy_score``.
    """
    t = np.asarray(y_true_idx, dtype=np.int64).ravel()
    p = np.asarray(y_pred_idx, dtype=np.int64).ravel()
    if len(t) != len(p):
        raise MetricsInputError(f"{len(t)} true bins and {len(p)} predicted bins")
    if len(t) == 0:
        raise MetricsInputError("no bins to compare (empty input)")
    return float(np.mean(np.abs(t - p) <= 1))


def roc_curves(frame: pd.DataFrame, head: HeadSpec | str, *, split: str | None = None,
               drop_intermediate: bool = False) -> dict[str, dict]:
    """ROC curves (scikit-learn ``roc_curve`` / ``auc``): ``{class: {fpr, tpr, thresholds, auc}}``.

    Binary heads: one curve, for the positive class ``classes[1]``. Multiclass: one-vs-rest,
    one curve per class that has both positives and negatives in y_true (others are left out;
    :func:`classification_metrics` says why their AUC is None). All thresholds are kept
    (``drop_intermediate=False``) so every threshold's operating point is a vertex of the curve.
    """
    frame = _check_frame(frame, split)
    spec = _resolve(frame, head)
    d = _Cat(frame, spec)
    idx = [1] if spec.kind == "binary" else list(range(len(d.classes)))
    curves = {}
    for i in idx:
        y = (d.y_true == i).astype(np.int64)
        if not 0 < y.sum() < len(y):
            continue
        fpr, tpr, thr = roc_curve(y, d.proba[:, i], drop_intermediate=drop_intermediate)
        curves[d.classes[i]] = {"fpr": fpr, "tpr": tpr, "thresholds": thr,
                                "auc": float(auc(fpr, tpr))}
    return curves


def threshold_metrics(frame: pd.DataFrame, head: HeadSpec | str, threshold: float, *,
                      split: str | None = None) -> dict:
    """A binary head at one threshold: predicted positive when ``P(classes[1]) >= threshold``.

    Returns ``confusion_matrix`` ``[[tn, fp], [fn, tp]]``, ``tp, fp, tn, fn``, ``sensitivity``
    (recall of the positive class), ``specificity`` (recall of the negative class),
    ``precision``, ``f1``, ``accuracy`` and the operating point ``fpr`` (= 1 - specificity),
    ``tpr`` (= sensitivity), which lies on :func:`roc_curves` (``None`` where the curve is
    undefined: one class only in y_true).
    """
    frame = _check_frame(frame, split)
    spec = _resolve(frame, head)
    if spec.kind != "binary":
        raise MetricsInputError(f"threshold metrics apply to binary heads only; {spec.name!r} "
                                f"is {spec.kind}")
    if threshold is None:
        raise MetricsInputError("a threshold is needed")
    d = _Cat(frame, spec, threshold)
    yt, yp = d.y_true, d.y_pred
    with _quiet():
        cm = confusion_matrix(yt, yp, labels=[0, 1])
        sens = recall_score(yt, yp, labels=[0, 1], pos_label=1, zero_division=ZERO_DIVISION)
        spec_ = recall_score(yt, yp, labels=[0, 1], pos_label=0, zero_division=ZERO_DIVISION)
        prec = precision_score(yt, yp, labels=[0, 1], pos_label=1, zero_division=ZERO_DIVISION)
        f1 = f1_score(yt, yp, labels=[0, 1], pos_label=1, zero_division=ZERO_DIVISION)
        acc = accuracy_score(yt, yp)
    tn, fp, fn, tp = (int(v) for v in cm.ravel())
    defined = (tp + fn) > 0 and (tn + fp) > 0
    return {
        "head": spec.name, "threshold": float(threshold), "positive_class": d.classes[1],
        "n": int(len(yt)), "confusion_matrix": cm.astype(int).tolist(),
        "tp": tp, "fp": fp, "tn": tn, "fn": fn,
        "sensitivity": float(sens), "specificity": float(spec_), "precision": float(prec),
        "f1": float(f1), "accuracy": float(acc),
        "fpr": float(1.0 - spec_) if defined else None, "tpr": float(sens) if defined else None,
    }


def predicted_classes(frame: pd.DataFrame, head: HeadSpec | str,
                      threshold: float | None = None) -> np.ndarray:
    """Every row's predicted class name of a categorical head (unlabelled rows too).

    ``threshold`` (binary heads only): ``classes[1]`` when ``P(classes[1]) >= threshold``, as in
    :func:`classification_metrics`; ``None``: the stored ``H_pred`` (binary: ``P >= 0.5``)."""
    spec = _resolve(frame, head)
    if spec.kind == "regression":
        raise MetricsInputError(f"head {spec.name!r} is a regression head: it predicts years, "
                                "not classes")
    _check_threshold(spec, threshold)
    if threshold is None:
        return frame[f"{spec.name}_pred"].to_numpy(dtype=object)
    pos = frame[f"{spec.name}_prob_{spec.classes[1]}"].to_numpy(dtype=np.float64) \
        >= float(threshold)
    return np.where(pos, spec.classes[1], spec.classes[0]).astype(object)


# --- looking at faces ------------------------------------------------------------------------

def cell_members(frame: pd.DataFrame, head: HeadSpec | str, true_class: str, pred_class: str,
                 *, threshold: float | None = None, split: str | None = None) -> pd.DataFrame:
    """The rows of one confusion-matrix cell (true = ``true_class``, predicted = ``pred_class``).

    All columns of those rows plus ``confidence`` (the probability of the predicted class),
    sorted by confidence, highest first (the frame's index is kept). ``threshold`` (binary heads)
    recomputes predictions first; ``H_pred`` of the returned rows then shows them.
    """
    frame = _check_frame(frame, split)
    spec = _resolve(frame, head)
    if spec.kind == "regression":
        raise MetricsInputError(f"head {spec.name!r} is a regression head: it has no "
                                "confusion matrix")
    _check_threshold(spec, threshold)
    for c in (true_class, pred_class):
        if c not in spec.classes:
            raise MetricsInputError(f"{c!r} is not a class of head {spec.name!r} "
                                    f"({list(spec.classes)})")
    h = spec.name
    is_true = (frame[f"{h}_true"] == true_class).to_numpy(dtype=bool, na_value=False)
    if threshold is None:
        mask = is_true & (frame[f"{h}_pred"] == pred_class).to_numpy(dtype=bool, na_value=False)
    else:
        pos = frame[f"{h}_prob_{spec.classes[1]}"].to_numpy() >= float(threshold)
        mask = is_true & (pos if pred_class == spec.classes[1] else ~pos)
    rows = np.flatnonzero(mask)
    conf = frame[f"{h}_prob_{pred_class}"].to_numpy(dtype=np.float64)[rows]
    order = np.argsort(-conf, kind="stable")  # highest confidence first, ties in frame order
    out = frame.take(rows[order])  # one take: a new frame, the original index kept
    if threshold is not None:
        out[f"{h}_pred"] = pred_class
    out["confidence"] = conf[order]
    return out


def top_losses(frame: pd.DataFrame, head: HeadSpec | str, true_class: str | None = None,
               pred_class: str | None = None, only_wrong: bool = True, *,
               k: int | None = None, threshold: float | None = None,
               split: str | None = None) -> pd.DataFrame:
    """Faces ranked by their loss, worst first (fastai's ``top_losses``).

    Categorical heads: ``loss`` = ``-log p(true class)`` (clipped like scikit-learn's
    ``log_loss``, whose mean it reproduces), so the most confident mistakes come first;
    ``p_true`` and ``confidence`` (probability of the predicted class) are added. Filter with
    ``true_class`` / ``pred_class``; ``only_wrong`` keeps mistakes only. Regression heads:
    ``loss`` = absolute error in years (the filters do not apply). ``k`` keeps the first k rows.
    """
    frame = _check_frame(frame, split)
    spec = _resolve(frame, head)
    h = spec.name
    if spec.kind == "regression":
        if true_class is not None or pred_class is not None:
            raise MetricsInputError(f"head {h!r} is a regression head: no classes to filter on")
        t = frame[f"{h}_true"].to_numpy(dtype=np.float64)
        keep = ~np.isnan(t)
        out = frame[keep].copy()
        out["loss"] = np.abs(out[f"{h}_pred"].to_numpy(dtype=np.float64) - t[keep])
    else:
        d = _Cat(frame, spec, threshold)
        for c in (true_class, pred_class):
            if c is not None and c not in d.classes:
                raise MetricsInputError(f"{c!r} is not a class of head {h!r} ({d.classes})")
        rows = np.arange(len(d.y_true))
        p_true = d.proba[rows, d.y_true]
        eps = np.finfo(np.float64).eps  # log_loss clips to [eps, 1 - eps]
        out = d.frame.copy()
        if threshold is not None:
            out[f"{h}_pred"] = np.asarray(d.classes, dtype=object)[d.y_pred]
        out["p_true"] = p_true
        out["confidence"] = d.proba[rows, d.y_pred]
        out["loss"] = -np.log(np.clip(p_true, eps, 1 - eps))
        mask = np.ones(len(out), dtype=bool)
        if only_wrong:
            mask &= d.y_true != d.y_pred
        if true_class is not None:
            mask &= d.y_true == d.classes.index(true_class)
        if pred_class is not None:
            mask &= d.y_pred == d.classes.index(pred_class)
        out = out[mask]
    out = out.sort_values("loss", ascending=False, kind="stable")
    return out if k is None else out.head(int(k))


# --- regression ------------------------------------------------------------------------------

def regression_metrics(frame: pd.DataFrame, head: HeadSpec | str,
                       groups: Sequence[float] | None = AGE_DECADES, *,
                       split: str | None = None) -> dict:
    """MAE and RMSE (scikit-learn) of a regression head, and MAE per group of the true value.

    ``groups``: bin edges in years (default decades; ``None`` leaves the breakdown out).
    Returns ``head, kind, n, mae, rmse, by_group: [{group, n, mae}]`` (every bin, empty ones
    with ``n = 0`` and ``mae = None``).
    """
    frame = _check_frame(frame, split)
    spec = _resolve(frame, head)
    if spec.kind != "regression":
        raise MetricsInputError(f"head {spec.name!r} is {spec.kind}; use "
                                "classification_metrics")
    t = frame[f"{spec.name}_true"].to_numpy(dtype=np.float64)
    p = frame[f"{spec.name}_pred"].to_numpy(dtype=np.float64)
    keep = ~np.isnan(t)
    if not keep.any():
        raise MetricsInputError(f"no row of the predictions frame has a true {spec.name!r}")
    if np.isnan(p[keep]).any():
        raise MetricsInputError(f"{spec.name}_pred has missing predictions")
    t, p = t[keep], p[keep]
    out = {"head": spec.name, "kind": "regression", "n": int(len(t)),
           "mae": float(mean_absolute_error(t, p)), "rmse": float(root_mean_squared_error(t, p))}
    if groups is not None:
        g = age_groups(t, groups)
        rows = []
        for i, label in enumerate(g.categories):
            m = g.codes == i
            rows.append({"group": str(label), "n": int(m.sum()),
                         "mae": float(mean_absolute_error(t[m], p[m])) if m.any() else None})
        out["by_group"] = rows
    return out


# --- groups and uncertainty ------------------------------------------------------------------

def wilson_interval(k: int, n: int, confidence_level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion k/n (``scipy.stats.binomtest(...).proportion_ci``)."""
    k, n = int(k), int(n)
    if n < 1 or not 0 <= k <= n:
        raise MetricsInputError(f"a Wilson interval needs 0 <= k <= n and n >= 1, got k={k}, "
                                f"n={n}")
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=confidence_level,
                                             method="wilson")
    return float(ci.low), float(ci.high)


def bootstrap_ci(values, statistic: Callable = np.mean, *, n_resamples: int = 1000,
                 confidence_level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Seeded percentile bootstrap CI of ``statistic`` (``scipy.stats.bootstrap``).

    ``statistic`` must accept ``axis=`` (vectorised). Fewer than two values: ``(nan, nan)``.
    Same values and seed give the same interval.
    """
    x = np.asarray(values, dtype=np.float64).ravel()
    if len(x) < 2:
        return math.nan, math.nan
    if np.all(x == x[0]):
        v = float(statistic(x))
        return v, v
    res = stats.bootstrap((x,), statistic, n_resamples=n_resamples, vectorized=True,
                          confidence_level=confidence_level, method="percentile",
                          rng=np.random.default_rng(seed))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def _group_column(frame: pd.DataFrame, name: str) -> str:
    for c in (name, f"{GROUP_PREFIX}{name}", f"{name}_true"):
        if c in frame.columns and c not in _RESERVED:
            return c
    avail = [c for c in frame.columns if c.startswith(GROUP_PREFIX) or c.endswith("_true")]
    raise MetricsInputError(f"cannot group by {name!r}: no column {name!r}, "
                            f"'{GROUP_PREFIX}{name}' or '{name}_true' (available: {avail})")


def _class_order(frame: pd.DataFrame, col: str) -> list[str] | None:
    base = col[len(GROUP_PREFIX):] if col.startswith(GROUP_PREFIX) else col
    base = base[: -len("_true")] if base.endswith("_true") else base
    prefix = f"{base}_prob_"
    classes = [c[len(prefix):] for c in frame.columns if c.startswith(prefix)]
    return classes or None


def group_breakdown(frame: pd.DataFrame, head: HeadSpec | str, by: list[str], *,
                    bins: Mapping[str, Sequence[float]] | None = None,
                    confidence_level: float = 0.95, n_resamples: int = 1000, seed: int = 0,
                    threshold: float | None = None, split: str | None = None) -> pd.DataFrame:
    """Metrics of one head per group of other labels, with confidence intervals.

    ``by`` names columns: each name is looked up as the column itself, then ``group_<name>``,
    then ``<name>_true`` (another head's truth). Numeric columns (ages) are binned with
    ``bins[name]`` edges (default decades, see :func:`age_groups`). One row per non-empty group:
    the ``by`` columns, ``n`` and, for categorical heads, ``correct``, ``accuracy``,
    ``accuracy_ci_low/high`` (Wilson) and ``f1_macro``; for regression heads ``mae`` and
    ``mae_ci_low/high`` (seeded percentile bootstrap; NaN for a single face). Small groups show
    wide intervals: do not over-read them.
    """
    frame = _check_frame(frame, split)
    spec = _resolve(frame, head)
    if isinstance(by, str):
        by = [by]
    if not by:
        raise MetricsInputError("group_breakdown needs at least one column to group by")
    bins = dict(bins or {})
    h = spec.name
    if spec.kind == "regression":
        t = frame[f"{h}_true"].to_numpy(dtype=np.float64)
        keep = ~np.isnan(t)
        sub = frame[keep]
        yt, yp = t[keep], sub[f"{h}_pred"].to_numpy(dtype=np.float64)
        if not keep.any():
            raise MetricsInputError(f"no row of the predictions frame has a true {h!r}")
    else:
        d = _Cat(frame, spec, threshold)
        sub, yt, yp = d.frame, d.y_true, d.y_pred
    keys = {}
    for name in by:
        col = _group_column(sub, name)
        v = sub[col]
        if pd.api.types.is_numeric_dtype(v) and not pd.api.types.is_bool_dtype(v):
            keys[name] = age_groups(v.to_numpy(dtype=np.float64), bins.get(name))
        else:
            order = _class_order(sub, col)
            vals = v.to_numpy(dtype=object)
            if order and set(pd.unique(v.dropna())) <= set(order):
                keys[name] = pd.Categorical(vals, categories=order)
            else:
                keys[name] = pd.Categorical(vals)
    key_frame = pd.DataFrame(keys)
    rows = []
    with _quiet():
        for values, idx in key_frame.groupby(list(keys), observed=True, sort=True,
                                             dropna=False).indices.items():
            values = values if isinstance(values, tuple) else (values,)
            row = dict(zip(keys, values))
            n = len(idx)
            row["n"] = n
            if spec.kind == "regression":
                err = np.abs(yp[idx] - yt[idx])
                row["mae"] = float(mean_absolute_error(yt[idx], yp[idx]))
                row["mae_ci_low"], row["mae_ci_high"] = bootstrap_ci(
                    err, n_resamples=n_resamples, confidence_level=confidence_level, seed=seed)
            else:
                k = int(accuracy_score(yt[idx], yp[idx], normalize=False))
                row["correct"] = k
                row["accuracy"] = float(accuracy_score(yt[idx], yp[idx]))
                row["accuracy_ci_low"], row["accuracy_ci_high"] = wilson_interval(
                    k, n, confidence_level)
                row["f1_macro"] = float(f1_score(yt[idx], yp[idx], average="macro",
                                                 zero_division=ZERO_DIVISION))
            rows.append(row)
    out = pd.DataFrame(rows)
    for name in keys:  # keep category order (and dtype) of the grouping columns
        out[name] = pd.Categorical(out[name], categories=keys[name].categories)
    out = out.sort_values(list(keys), kind="stable").reset_index(drop=True)
    out.attrs.update({"head": h, "by": list(by), "confidence_level": confidence_level})
    return out


# --- Interpretation --------------------------------------------------------------------------

class Interpretation:
    """Every number about one run's predictions on one split, computed once (fastai-style).

    ``Interpretation(frame, heads, dataset="utkface", split="test")``: ``heads`` are the run's
    :class:`HeadSpec` (``None``: recovered from the frame's columns); ``split=None`` is allowed
    when the frame holds a single split; ``dataset=None`` reads ``frame.attrs["dataset"]``.

    Fitted attributes: ``frame_`` (this split's rows), ``n_``, ``splits_`` (all splits of the
    frame), ``metrics_`` (head -> classification or regression metrics dict), ``roc_curves_``
    (categorical head -> curves, computed on first use). Every dict result carries ``dataset``
    and ``split`` keys; every DataFrame result carries them in ``.attrs``.
    """

    def __init__(self, frame: pd.DataFrame, heads: list[HeadSpec] | None = None, *,
                 dataset: str | None = None, split: str | None = None):
        if not isinstance(frame, pd.DataFrame):
            raise MetricsInputError(f"expected a predictions DataFrame, got "
                                    f"{type(frame).__name__}")
        if len(frame) == 0:
            raise MetricsInputError("the predictions frame is empty (0 rows): nothing to "
                                    "evaluate")
        dataset = dataset if dataset is not None else frame.attrs.get("dataset")
        if not dataset:
            raise MetricsInputError("name the dataset these predictions come from (dataset=)")
        self.frame = frame
        self.dataset = str(dataset)
        self.splits_ = (sorted(map(str, pd.unique(frame["split"].dropna())))
                        if "split" in frame.columns else [])
        if split is None:
            if len(self.splits_) > 1:
                raise MetricsInputError(f"the predictions frame holds splits {self.splits_}; "
                                        "pass split= to choose one")
            split = self.splits_[0] if self.splits_ else "all"
            self.frame_ = frame
        else:
            self.frame_ = _check_frame(frame, split)
        self.split = str(split)
        self.heads = list(heads) if heads is not None else heads_from_frame(frame)
        if not self.heads:
            raise MetricsInputError("the predictions frame holds no head columns (H_true)")
        self.heads = [h if isinstance(h, HeadSpec) else HeadSpec.from_dict(h) for h in self.heads]
        self.n_ = int(len(self.frame_))
        self.metrics_: dict[str, dict] = {}
        for h in self.heads:
            m = (regression_metrics(self.frame_, h) if h.kind == "regression"
                 else classification_metrics(self.frame_, h))
            self.metrics_[h.name] = self._named(m)

    # names every result
    def _named(self, d: dict) -> dict:
        return {"dataset": self.dataset, "split": self.split, **d}

    def _named_frame(self, df: pd.DataFrame, head: str) -> pd.DataFrame:
        df.attrs.update({"dataset": self.dataset, "split": self.split, "head": head})
        return df

    def _head(self, head: HeadSpec | str) -> HeadSpec:
        name = head.name if isinstance(head, HeadSpec) else head
        for h in self.heads:
            if h.name == name:
                return h
        raise MetricsInputError(f"no head {name!r} in this interpretation "
                                f"({[h.name for h in self.heads]})")

    def for_split(self, split: str) -> Interpretation:
        """The same run's numbers on another split of the frame."""
        return Interpretation(self.frame, self.heads, dataset=self.dataset, split=split)

    def summary(self) -> dict:
        """``{"dataset", "split", "n", "heads": {head: {accuracy, balanced_accuracy, f1_macro,
        auc} | {mae, rmse}}}``: JSON-ready."""
        heads = {}
        for h in self.heads:
            m = self.metrics_[h.name]
            if h.kind == "regression":
                heads[h.name] = {"mae": _num(m["mae"]), "rmse": _num(m["rmse"])}
            else:
                heads[h.name] = {k: _num(m[k]) for k in
                                 ("accuracy", "balanced_accuracy", "f1_macro", "auc")}
        return {"dataset": self.dataset, "split": self.split, "n": self.n_, "heads": heads}

    @cached_property
    def roc_curves_(self) -> dict[str, dict]:
        return {h.name: roc_curves(self.frame_, h) for h in self.heads if h.kind != "regression"}

    def roc_curves(self, head: HeadSpec | str) -> dict:
        h = self._head(head)
        return self._named({"head": h.name, "curves": self.roc_curves_.get(h.name, {})})

    def confusion_matrix(self, head: HeadSpec | str) -> pd.DataFrame:
        """Counts, rows = true class, columns = predicted class, all classes in order."""
        h = self._head(head)
        m = self.metrics_[h.name]
        if h.kind == "regression":
            raise MetricsInputError(f"head {h.name!r} is a regression head: no confusion matrix")
        df = pd.DataFrame(m["confusion_matrix"], index=pd.Index(h.classes, name="true"),
                          columns=pd.Index(h.classes, name="predicted"))
        return self._named_frame(df, h.name)

    def classification_metrics(self, head: HeadSpec | str, threshold: float | None = None) -> dict:
        h = self._head(head)
        if threshold is None:
            return self.metrics_[h.name]
        return self._named(classification_metrics(self.frame_, h, threshold))

    def threshold_metrics(self, head: HeadSpec | str, threshold: float) -> dict:
        return self._named(threshold_metrics(self.frame_, self._head(head), threshold))

    def cell_members(self, head: HeadSpec | str, true_class: str, pred_class: str, *,
                     threshold: float | None = None) -> pd.DataFrame:
        h = self._head(head)
        return self._named_frame(cell_members(self.frame_, h, true_class, pred_class,
                                              threshold=threshold), h.name)

    def top_losses(self, head: HeadSpec | str, true_class: str | None = None,
                   pred_class: str | None = None, only_wrong: bool = True, *,
                   k: int | None = None, threshold: float | None = None) -> pd.DataFrame:
        h = self._head(head)
        return self._named_frame(top_losses(self.frame_, h, true_class, pred_class, only_wrong,
                                            k=k, threshold=threshold), h.name)

    def group_breakdown(self, head: HeadSpec | str, by: list[str], **kwargs) -> pd.DataFrame:
        h = self._head(head)
        return self._named_frame(group_breakdown(self.frame_, h, by, **kwargs), h.name)

    def __repr__(self) -> str:
        return (f"Interpretation(dataset={self.dataset!r}, split={self.split!r}, n={self.n_}, "
                f"heads={[h.name for h in self.heads]})")
