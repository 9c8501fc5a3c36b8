"""Classification metrics of a categorical head, from scikit-learn: accuracy, per-class
precision / recall / specificity / F1, ROC curves and AUC, a binary head at any threshold.

Conventions: classes are passed to scikit-learn as integer indices in ``classes`` order (so
``labels=`` keeps absent classes and probability columns line up); ill-defined ratios (a class
never predicted, ...) follow scikit-learn's ``zero_division=0``; macro / weighted averages are
scikit-learn's own (over the classes present in truth or predictions). Bad input raises
:class:`MetricsInputError` (a :class:`~faceml.errors.FaceMLError` and a ``ValueError``) with one
clear sentence.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager

import numpy as np
import pandas as pd
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import (
    accuracy_score,
    auc,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    log_loss,
    multilabel_confusion_matrix,
    precision_recall_fscore_support,
    precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)

from faceml.data.heads import HeadSpec
from faceml.evaluation.predictions import (
    CategoricalRows,
    MetricsInputError,
    check_frame,
    resolve_head,
)

__all__ = [
    "ZERO_DIVISION",
    "classification_metrics",
    "quiet",
    "roc_curves",
    "threshold_metrics",
    "within_one_bin_accuracy",
]

ZERO_DIVISION = 0.0


@contextmanager
def quiet():
    """Silence scikit-learn's warnings for ratios we define by ``zero_division``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        warnings.filterwarnings("ignore", message=".*y_pred contains classes not in y_true.*")
        warnings.filterwarnings("ignore", message=".*A single label was found.*")
        yield


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
    frame = check_frame(frame, split)
    spec = resolve_head(frame, head)
    d = CategoricalRows(frame, spec, threshold)
    yt, yp, labels, classes = d.y_true, d.y_pred, d.labels, d.classes
    with quiet():
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
    frame = check_frame(frame, split)
    spec = resolve_head(frame, head)
    d = CategoricalRows(frame, spec)
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
    frame = check_frame(frame, split)
    spec = resolve_head(frame, head)
    if spec.kind != "binary":
        raise MetricsInputError(f"threshold metrics apply to binary heads only; {spec.name!r} "
                                f"is {spec.kind}")
    if threshold is None:
        raise MetricsInputError("a threshold is needed")
    d = CategoricalRows(frame, spec, threshold)
    yt, yp = d.y_true, d.y_pred
    with quiet():
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
