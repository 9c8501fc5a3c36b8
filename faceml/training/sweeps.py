"""Sweeps and run comparison.

A sweep is the CelebA notebook's learning-rate × batch-size grid done properly: every cell is
an ordinary queued run (a cell whose configuration already ran is reused from the run store),
and the grid is summarised per cell as its highest, lowest and final validation accuracy with the
validation loss AT each of those epochs (:data:`SUMMARY`) — numbers first; the page draws them
as heatmaps. :func:`launch_grid` takes any number of axes of any config key (the CLI's
``sweep --grid``); :func:`launch` is the page's two-parameter grid.
"""

from __future__ import annotations

import hashlib
import itertools
import json

import numpy as np
import pandas as pd

from faceml.errors import ConfigError, FaceMLError
from faceml.runs import Run, RunDamaged, RunStore
from faceml.config import TrainConfig

# hyperparameters a sweep may vary, with the type of their values
SWEEPABLE = {"lr": float, "batch_size": int, "epochs": int, "optimizer": str, "schedule": str,
             "seed": int, "early_stopping": int}


def parse_values(param: str, text: str) -> list:
    """``"0.001, 0.0003"`` → ``[0.001, 0.0003]`` for ``param``; a clear error otherwise."""
    if param not in SWEEPABLE:
        raise ConfigError(f"cannot sweep {param!r}; choose one of {', '.join(SWEEPABLE)}")
    kind = SWEEPABLE[param]
    vals = [v.strip() for v in str(text).split(",") if v.strip()]
    if not vals:
        raise ConfigError(f"give at least one value for {param}")
    try:
        out = [kind(float(v)) if kind is int else kind(v) for v in vals]
    except ValueError:
        raise ConfigError(f"{param} values must be {kind.__name__}s: {text!r}") from None
    if len(set(out)) != len(out):
        raise ConfigError(f"{param} values repeat: {text!r}")
    return out


def _set(d: dict, key: str, value) -> None:
    *outer, last = key.split(".")
    node = d
    for k in outer:
        node = node[k]
    if last not in node:
        raise ConfigError(f"{key!r} is not a key of a training configuration")
    node[last] = value


def cells(base: TrainConfig, axes: dict[str, list]) -> list[tuple[dict, TrainConfig]]:
    """The grid of ``axes`` (config key -> values; ``"data.size"`` for a data option) around
    ``base``: ``(params, config)`` per cell, in row-major order, every config validated before
    anything is queued. A cell's config is ``base`` with its values set (``repeat`` 0), so its
    run id is the one any other way of making that configuration gets."""
    if not axes:
        raise ConfigError("give at least one hyperparameter to sweep")
    for key, values in axes.items():
        if not values:
            raise ConfigError(f"give at least one value for {key}")
    out = []
    for combo in itertools.product(*axes.values()):
        d = base.canonical()
        params = dict(zip(axes, combo))
        for key, value in params.items():
            _set(d, key, value)
        d["repeat"] = 0
        c = TrainConfig.from_dict(d)
        c.validate()
        out.append((params, c))
    return out


def grid(base: TrainConfig, a: str, values_a: list, b: str, values_b: list) -> list[TrainConfig]:
    """One validated config per cell of the ``a`` × ``b`` grid."""
    if a == b:
        raise ConfigError("choose two different hyperparameters to sweep")
    for p in (a, b):
        if p not in SWEEPABLE:
            raise ConfigError(f"cannot sweep {p!r}; choose one of {', '.join(SWEEPABLE)}")
    return [c for _, c in cells(base, {a: values_a, b: values_b})]


def sweep_id(base: TrainConfig, a: str, values_a: list, b: str, values_b: list) -> str:
    blob = json.dumps([base.canonical(), a, values_a, b, values_b], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:10]


def launch(base: TrainConfig, a: str, values_a: list, b: str, values_b: list,
           store: RunStore | None = None, start_worker: bool = True,
           visitor: str | None = None) -> dict:
    """Queue every cell of the ``a`` × ``b`` grid (reusing cached runs) and record the sweep
    so a page can find it."""
    grid(base, a, values_a, b, values_b)  # the page's own checks (two sweepable parameters)
    return launch_grid(base, {a: values_a, b: values_b}, store, start_worker, visitor)


def launch_grid(base: TrainConfig, axes: dict[str, list], store: RunStore | None = None,
                start_worker: bool = True, visitor: str | None = None,
                executor=None) -> dict:
    """Queue every cell of ``axes`` (:func:`cells`; cached runs reused) and return the sweep:
    ``{id, axes, cells: [{KEY: value…, run_id, reused}], base, backend}``. A two-axis sweep is
    recorded (with ``a``, ``b``, ``values_a``, ``values_b``) so the Compare page draws it as a
    grid. Every cell is checked, and the ``executor`` (:func:`faceml.training.jobs.get_executor`:
    the local worker or Ray) made ready, before the first is queued: a bad cell or a Ray
    cluster that does not answer queues nothing."""
    from faceml import hosting
    from faceml.training import jobs

    if not hosting.current().sweeps:
        raise hosting.PolicyError("sweeps are off on this hosted server: launch single runs "
                                  "from the Train page")
    store = store or RunStore()
    made = cells(base, axes)
    ex = jobs.get_executor(executor)
    if start_worker:
        ex.ready()
    out, new_runs = [], []
    for params, c in made:
        run, new = jobs.submit(c, store, start_worker=False, visitor=visitor)
        out.append({**params, "run_id": run.id, "reused": not new})
        if new:
            new_runs.append(run)
    if start_worker:
        # the new cells; the local worker also takes cells queued earlier and not yet trained
        ex.start(store, new_runs if ex.name != "local" else
                 [store.get(c["run_id"]) for c in out])
    keys = list(axes)
    sweep = {"axes": {k: list(v) for k, v in axes.items()}, "cells": out,
             "base": base.canonical(), "backend": ex.name}
    if len(keys) == 2:
        (a, va), (b, vb) = axes.items()
        sweep.update(id=sweep_id(base, a, va, b, vb), a=a, b=b, values_a=va, values_b=vb)
        store.write_record("sweeps", sweep["id"], sweep)
    else:
        blob = json.dumps([base.canonical(), sweep["axes"]], sort_keys=True, default=str)
        sweep["id"] = hashlib.sha256(blob.encode()).hexdigest()[:10]
    return sweep


def list_sweeps(store: RunStore | None = None) -> list[dict]:
    """The recorded (two-axis) sweeps, newest first."""
    return (store or RunStore()).records_of("sweeps")


def val_columns(hist: pd.DataFrame, head: str | None = None) -> tuple[str | None, str | None]:
    """The validation accuracy and loss columns of a history (of ``head`` when given)."""
    loss = "val_loss" if "val_loss" in hist else None
    accs = sorted(c for c in hist.columns if c.startswith("val_") and c.endswith("accuracy"))
    if head is not None:
        accs = [c for c in accs if c == f"val_{head}_accuracy"] or \
               [c for c in accs if c == "val_accuracy"]
    return (accs[0] if accs else None), loss


SUMMARY = {
    "highest_val_acc": "highest val accuracy",
    "val_loss_at_highest_val_acc": "val loss at the epoch of the highest val accuracy",
    "lowest_val_acc": "lowest val accuracy",
    "val_loss_at_lowest_val_acc": "val loss at the epoch of the lowest val accuracy",
    "final_val_acc": "val accuracy at the last epoch",
    "final_val_loss": "val loss at the last epoch",
}
"""A run's curve summary: each accuracy extreme, and the losses AT that epoch (not the loss's
own extremes, which may come from other epochs)."""


def run_curve_summary(run: Run, head: str | None = None) -> dict:
    """The highest, lowest and final validation accuracy of one run, with the validation (and
    training) loss at each of those epochs: ``best_epoch`` is the (first) epoch of the highest
    validation accuracy, ``val_loss_at_highest_val_acc`` that epoch's validation loss. A run
    without an accuracy (a regression or VAE) gets its final validation loss only."""
    out = {"state": "damaged", "epochs": 0}
    try:
        hist = run.history()
        out["state"] = run.status().get("state")
    except RunDamaged:
        return out
    out["epochs"] = len(hist)
    acc, loss = val_columns(hist, head)
    out.update({k: np.nan for k in SUMMARY})
    out.update(best_epoch=np.nan, train_loss_at_highest_val_acc=np.nan)
    if hist.empty:
        return out
    hist = hist.reset_index(drop=True)
    val_loss = pd.to_numeric(hist[loss], errors="coerce") if loss else None
    train_loss = pd.to_numeric(hist["loss"], errors="coerce") if "loss" in hist else None
    if val_loss is not None:
        out["final_val_loss"] = float(val_loss.iloc[-1])
    if acc is None:
        return out
    v = pd.to_numeric(hist[acc], errors="coerce")
    if not v.notna().any():
        return out
    hi, lo = int(v.idxmax()), int(v.idxmin())  # the first epoch of each extreme
    out.update(highest_val_acc=float(v[hi]), lowest_val_acc=float(v[lo]),
               final_val_acc=float(v.iloc[-1]), best_epoch=int(hist["epoch"][hi]))
    if val_loss is not None:
        out.update(val_loss_at_highest_val_acc=float(val_loss[hi]),
                   val_loss_at_lowest_val_acc=float(val_loss[lo]))
    if train_loss is not None:
        out["train_loss_at_highest_val_acc"] = float(train_loss[hi])
    return out


def sweep_table(sweep: dict, store: RunStore | None = None,
                head: str | None = None) -> pd.DataFrame:
    """One row per cell: the two hyperparameters, run id, state and curve summary."""
    store = store or RunStore()
    rows = []
    for cell in sweep["cells"]:
        try:
            summ = run_curve_summary(store.get(cell["run_id"]), head)
        except FaceMLError:
            summ = {"state": "missing", "epochs": 0}
        rows.append({**cell, **summ})
    return pd.DataFrame(rows)


def pivot(table: pd.DataFrame, sweep: dict, value: str) -> pd.DataFrame:
    """``value`` as a grid: rows = values of the first hyperparameter, columns = the second."""
    return table.pivot(index=sweep["a"], columns=sweep["b"], values=value)\
        .reindex(index=sweep["values_a"], columns=sweep["values_b"])


# --- comparison -----------------------------------------------------------------------------
def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = json.dumps(v, sort_keys=True) if isinstance(v, list) else v
    return out


def config_differences(runs: list[Run]) -> pd.DataFrame:
    """The config keys whose values differ between runs (rows) — one column per run."""
    flat = {r.id: _flatten(r.config) for r in runs}
    keys = sorted(set().union(*[f.keys() for f in flat.values()]))
    rows = {k: {rid: f.get(k) for rid, f in flat.items()} for k in keys}
    diff = {k: v for k, v in rows.items()
            if len({json.dumps(x, default=str) for x in v.values()}) > 1}
    return pd.DataFrame.from_dict(diff, orient="index", columns=[r.id for r in runs])


def histories(runs: list[Run]) -> pd.DataFrame:
    """All runs' histories in long form (run_id, epoch, metric, value) for overlaid curves."""
    parts = []
    for r in runs:
        try:
            h = r.history()
        except RunDamaged:
            continue
        if h.empty:
            continue
        cols = [c for c in h.columns if c not in ("epoch", "seconds", "time", "lr")]
        long = h.melt(id_vars="epoch", value_vars=cols, var_name="metric", value_name="value")
        long.insert(0, "run_id", r.id)
        parts.append(long)
    return pd.concat(parts, ignore_index=True) if parts else \
        pd.DataFrame(columns=["run_id", "epoch", "metric", "value"])


def metrics_table(runs: list[Run], split: str = "test") -> pd.DataFrame:
    """Final metrics of each run on ``split`` (dataset and split named in the rows)."""
    rows = []
    for r in runs:
        m = r.metrics().get(split) or {}
        for head, vals in (m.get("heads") or {}).items():
            rows.append({"run_id": r.id, "dataset": m.get("dataset"), "split": split,
                         "head": head, **{k: v for k, v in vals.items()
                                          if isinstance(v, int | float) or v is None}})
    return pd.DataFrame(rows)


def shared_binary_heads(runs: list[Run]) -> list[str]:
    """The binary heads every run has, with the same classes in the same order (so the same
    positive class); in the first run's order."""
    shared: list | None = None
    for r in runs:
        try:
            mine = [(h.name, tuple(h.classes)) for h in r.heads() if h.kind == "binary"]
        except RunDamaged:
            return []
        shared = mine if shared is None else [h for h in shared if h in mine]
    return [name for name, _ in shared or []]


def binary_comparison(runs: list[Run], head: str, split: str = "test",
                      threshold: float = 0.5) -> tuple[pd.DataFrame, dict]:
    """Each run's binary ``head`` on its stored predictions of ``split``, by scikit-learn:
    sensitivity (recall of the positive class), specificity (recall of the negative class) and
    F1 of the positive class at ``threshold`` (positive when ``P(positive) >= threshold``), and
    ROC AUC. Returns the table (one row per run, naming its dataset and split) and the ROC
    curves ``{run_id: {fpr, tpr, auc}}``. A run without stored predictions of ``split`` gets a
    row saying why and no curve."""
    from faceml.evaluation.classification import roc_curves, threshold_metrics
    from faceml.evaluation.predictions import MetricsInputError
    from faceml.evaluation.stored import stored_predictions

    rows, curves = [], {}
    for r in runs:
        row = {"run_id": r.id, "dataset": (r.config.get("data") or {}).get("dataset"),
               "split": split, "head": head, "positive class": None, "n": 0,
               "threshold": float(threshold), "sensitivity": None, "specificity": None,
               "f1": None, "auc": None, "note": ""}
        try:
            spec = next((h for h in r.heads() if h.name == head and h.kind == "binary"), None)
            frame = stored_predictions(r)
            if spec is None or frame is None:
                row["note"] = "no stored predictions of this head (still training?)"
                rows.append(row)
                continue
            m = threshold_metrics(frame, spec, threshold, split=split)
            roc = roc_curves(frame, spec, split=split, drop_intermediate=True)
        except (MetricsInputError, RunDamaged) as e:
            row["note"] = str(e)
            rows.append(row)
            continue
        row.update({"positive class": m["positive_class"], "n": m["n"],
                    "sensitivity": m["sensitivity"], "specificity": m["specificity"],
                    "f1": m["f1"]})
        curve = roc.get(spec.classes[1])
        if curve is None:
            row["note"] = f"no ROC curve: the {split} split holds one class only"
        else:
            row["auc"] = curve["auc"]
            curves[r.id] = curve
        rows.append(row)
    return pd.DataFrame(rows), curves
