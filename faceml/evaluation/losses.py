"""Looking at faces: the members of one confusion-matrix cell, and the faces ranked by their
loss (fastai's ``top_losses``), worst first."""

from __future__ import annotations

import numpy as np
import pandas as pd

from faceml.data.heads import HeadSpec
from faceml.evaluation.predictions import (
    CategoricalRows,
    MetricsInputError,
    check_frame,
    check_threshold,
    resolve_head,
)

__all__ = ["cell_members", "top_losses"]


def cell_members(frame: pd.DataFrame, head: HeadSpec | str, true_class: str, pred_class: str,
                 *, threshold: float | None = None, split: str | None = None) -> pd.DataFrame:
    """The rows of one confusion-matrix cell (true = ``true_class``, predicted = ``pred_class``).

    All columns of those rows plus ``confidence`` (the probability of the predicted class),
    sorted by confidence, highest first (the frame's index is kept). ``threshold`` (binary heads)
    recomputes predictions first; ``H_pred`` of the returned rows then shows them.
    """
    frame = check_frame(frame, split)
    spec = resolve_head(frame, head)
    if spec.kind == "regression":
        raise MetricsInputError(f"head {spec.name!r} is a regression head: it has no "
                                "confusion matrix")
    check_threshold(spec, threshold)
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
    frame = check_frame(frame, split)
    spec = resolve_head(frame, head)
    h = spec.name
    if spec.kind == "regression":
        if true_class is not None or pred_class is not None:
            raise MetricsInputError(f"head {h!r} is a regression head: no classes to filter on")
        t = frame[f"{h}_true"].to_numpy(dtype=np.float64)
        keep = ~np.isnan(t)
        out = frame[keep].copy()
        out["loss"] = np.abs(out[f"{h}_pred"].to_numpy(dtype=np.float64) - t[keep])
    else:
        d = CategoricalRows(frame, spec, threshold)
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
