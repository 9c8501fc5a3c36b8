"""Who the model fails: a head's metrics per group of the other labels, with confidence
intervals (Wilson for a proportion, a seeded bootstrap for a mean)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    f1_score,
    mean_absolute_error,
    roc_auc_score,
)

from faceml.data.ages import age_bin_range, age_groups
from faceml.data.heads import HeadSpec
from faceml.data.multi import MAX_YEARS
from faceml.evaluation.classification import ZERO_DIVISION, quiet
from faceml.evaluation.predictions import (
    GROUP_PREFIX,
    RESERVED,
    CategoricalRows,
    MetricsInputError,
    check_frame,
    resolve_head,
)

__all__ = ["bootstrap_ci", "bootstrap_metric_ci", "group_breakdown", "overall_intervals",
           "wilson_interval"]


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


def bootstrap_metric_ci(metric: Callable, *arrays, n_resamples: int = 1000,
                        confidence_level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Seeded percentile bootstrap CI of ``metric(*arrays)`` for a metric that is no mean of
    per-face values (balanced accuracy, ROC AUC): the faces (rows of every array together) are
    resampled (``scipy.stats.bootstrap``, one sample of row indices). A resample on which the
    metric is undefined (one class only) gives NaN, and so does the interval then; fewer than
    two faces: ``(nan, nan)``."""
    arrays = [np.asarray(a) for a in arrays]
    n = len(arrays[0])
    if n < 2:
        return math.nan, math.nan

    def stat(idx):
        idx = np.asarray(idx, dtype=np.int64)
        try:
            with quiet():
                return float(metric(*(a[idx] for a in arrays)))
        except ValueError:
            return math.nan

    with warnings.catch_warnings():  # NaN resamples: NaN interval, said by the caller
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        res = stats.bootstrap((np.arange(n),), stat, n_resamples=n_resamples,
                              vectorized=False, confidence_level=confidence_level,
                              method="percentile", rng=np.random.default_rng(seed))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def _auc_of(spec: HeadSpec, labels: np.ndarray):
    if spec.kind == "binary":
        return lambda yt, p: roc_auc_score(yt == 1, p[:, 1])
    return lambda yt, p: roc_auc_score(yt, p, multi_class="ovr", average="macro", labels=labels)


def overall_intervals(frame: pd.DataFrame, head: HeadSpec | str, *,
                      bins_column: str | None = None, confidence_level: float = 0.95,
                      n_resamples: int = 1000, seed: int = 0,
                      split: str | None = None) -> pd.DataFrame:
    """A head's headline numbers on all its labelled faces, each with a confidence interval:
    one row per ``metric`` with ``value``, ``ci_low``, ``ci_high``, ``method`` and ``n``.

    Categorical: ``accuracy`` (Wilson), ``balanced_accuracy`` and ``auc`` (scikit-learn's
    one-vs-rest macro for several classes; left out when a class is absent), both by a seeded
    bootstrap of the faces. Regression: ``mae`` (seeded bootstrap of the absolute errors) and,
    with ``bins_column`` (a label column of age bins such as FairFace's ``"20-29"``; faces
    without one are left out of that row), ``inside_bin``: the share of predictions inside the
    face's bin ``[lo, hi + 1]`` years (Wilson)."""
    frame = check_frame(frame, split)
    spec = resolve_head(frame, head)
    kw = {"n_resamples": n_resamples, "confidence_level": confidence_level, "seed": seed}
    boot = f"bootstrap ({n_resamples} resamples, seed {seed})"
    rows = []
    if spec.kind == "regression":
        t = frame[f"{spec.name}_true"].to_numpy(dtype=np.float64)
        keep = ~np.isnan(t)
        if not keep.any():
            raise MetricsInputError(f"no row of the predictions frame has a true {spec.name!r}")
        p = frame[f"{spec.name}_pred"].to_numpy(dtype=np.float64)
        err = np.abs(p[keep] - t[keep])
        rows.append({"metric": "mae", "value": float(mean_absolute_error(t[keep], p[keep])),
                     **dict(zip(("ci_low", "ci_high"), bootstrap_ci(err, **kw))),
                     "method": boot, "n": int(keep.sum())})
        if bins_column is not None:
            names = frame[_group_column(frame, bins_column)]
            ranges = [age_bin_range(str(v)) if isinstance(v, str) else None for v in names]
            has = np.array([r is not None for r in ranges]) & ~np.isnan(p)
            if has.any():
                lo = np.array([r[0] for r, h in zip(ranges, has) if h])
                hi = np.array([min(r[1] + 1, MAX_YEARS) for r, h in zip(ranges, has) if h])
                inside = (p[has] >= lo) & (p[has] <= hi)
                k, n = int(inside.sum()), int(has.sum())
                rows.append({"metric": "inside_bin", "value": k / n,
                             **dict(zip(("ci_low", "ci_high"),
                                        wilson_interval(k, n, confidence_level))),
                             "method": "Wilson", "n": n})
    else:
        d = CategoricalRows(frame, spec)
        yt, yp, n = d.y_true, d.y_pred, len(d.y_true)
        k = int(accuracy_score(yt, yp, normalize=False))
        rows.append({"metric": "accuracy", "value": k / n,
                     **dict(zip(("ci_low", "ci_high"), wilson_interval(k, n, confidence_level))),
                     "method": "Wilson", "n": n})
        with quiet():
            bacc = float(balanced_accuracy_score(yt, yp))
        rows.append({"metric": "balanced_accuracy", "value": bacc,
                     **dict(zip(("ci_low", "ci_high"),
                                bootstrap_metric_ci(balanced_accuracy_score, yt, yp, **kw))),
                     "method": boot, "n": n})
        if set(np.unique(yt)) == set(d.labels.tolist()):  # every class present: AUC defined
            auc = _auc_of(spec, d.labels)
            rows.append({"metric": "auc", "value": float(auc(yt, d.proba)),
                         **dict(zip(("ci_low", "ci_high"),
                                    bootstrap_metric_ci(auc, yt, d.proba, **kw))),
                         "method": boot, "n": n})
    out = pd.DataFrame(rows, columns=["metric", "value", "ci_low", "ci_high", "method", "n"])
    out.attrs.update({"head": spec.name, "confidence_level": confidence_level})
    return out


def _group_column(frame: pd.DataFrame, name: str) -> str:
    for c in (name, f"{GROUP_PREFIX}{name}", f"{name}_true"):
        if c in frame.columns and c not in RESERVED:
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
    frame = check_frame(frame, split)
    spec = resolve_head(frame, head)
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
        d = CategoricalRows(frame, spec, threshold)
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
    with quiet():
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
