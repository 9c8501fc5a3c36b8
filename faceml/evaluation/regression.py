"""Regression metrics of a head in years (age): MAE and RMSE from scikit-learn, and MAE per
group of the true value."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import mean_absolute_error, root_mean_squared_error

from faceml.data.ages import AGE_DECADES, age_groups
from faceml.data.heads import HeadSpec
from faceml.evaluation.predictions import MetricsInputError, check_frame, resolve_head

__all__ = ["regression_metrics"]


def regression_metrics(frame: pd.DataFrame, head: HeadSpec | str,
                       groups: Sequence[float] | None = AGE_DECADES, *,
                       split: str | None = None) -> dict:
    """MAE and RMSE (scikit-learn) of a regression head, and MAE per group of the true value.

    ``groups``: bin edges in years (default decades; ``None`` leaves the breakdown out).
    Returns ``head, kind, n, mae, rmse, by_group: [{group, n, mae}]`` (every bin, empty ones
    with ``n = 0`` and ``mae = None``).
    """
    frame = check_frame(frame, split)
    spec = resolve_head(frame, head)
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
