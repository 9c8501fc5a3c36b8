"""Sweeps and run comparison.

A sweep is the CelebA notebook's learning-rate × batch-size grid done properly: every cell is
an ordinary queued run (a cell whose configuration already ran is reused from the run store),
and the grid is summarised as tables of the lowest, highest and final validation accuracy and
loss — numbers first; the page draws them as heatmaps.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import replace

import numpy as np
import pandas as pd

from faceml.errors import ConfigError, FaceMLError
from faceml.io import write_json_atomic
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


def grid(base: TrainConfig, a: str, values_a: list, b: str, values_b: list) -> list[TrainConfig]:
    """One validated config per cell of the ``a`` × ``b`` grid."""
    if a == b:
        raise ConfigError("choose two different hyperparameters to sweep")
    for p in (a, b):
        if p not in SWEEPABLE:
            raise ConfigError(f"cannot sweep {p!r}; choose one of {', '.join(SWEEPABLE)}")
    cfgs = []
    for va, vb in itertools.product(values_a, values_b):
        c = replace(base, **{a: va, b: vb}, repeat=0)
        c.validate()
        cfgs.append(c)
    return cfgs


def sweep_id(base: TrainConfig, a: str, values_a: list, b: str, values_b: list) -> str:
    blob = json.dumps([base.canonical(), a, values_a, b, values_b], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:10]


def launch(base: TrainConfig, a: str, values_a: list, b: str, values_b: list,
           store: RunStore | None = None, start_worker: bool = True,
           visitor: str | None = None) -> dict:
    """Queue every cell (reusing cached runs) and record the sweep so a page can find it."""
    from faceml import hosting
    from faceml.training import jobs

    if not hosting.current().sweeps:
        raise hosting.PolicyError("sweeps are off on this hosted server: launch single runs "
                                  "from the Train page")
    store = store or RunStore()
    cfgs = grid(base, a, values_a, b, values_b)
    cells = []
    for c in cfgs:
        run, new = jobs.submit(c, store, start_worker=False, visitor=visitor)
        cells.append({a: getattr(c, a), b: getattr(c, b), "run_id": run.id, "reused": not new})
    if start_worker:
        jobs.ensure_worker(store)
    sweep = {"id": sweep_id(base, a, values_a, b, values_b), "a": a, "b": b,
             "values_a": values_a, "values_b": values_b, "cells": cells,
             "base": base.canonical()}
    d = store.root / ".sweeps"
    d.mkdir(parents=True, exist_ok=True)
    write_json_atomic(d / f"{sweep['id']}.json", sweep)
    return sweep


def list_sweeps(store: RunStore | None = None) -> list[dict]:
    store = store or RunStore()
    d = store.root / ".sweeps"
    out = []
    found = sorted(d.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True) \
        if d.exists() else []
    for p in found:
        try:
            out.append(json.loads(p.read_text()))
        except (OSError, ValueError):
            continue
    return out


def val_columns(hist: pd.DataFrame, head: str | None = None) -> tuple[str | None, str | None]:
    """The validation accuracy and loss columns of a history (of ``head`` when given)."""
    loss = "val_loss" if "val_loss" in hist else None
    accs = sorted(c for c in hist.columns if c.startswith("val_") and c.endswith("accuracy"))
    if head is not None:
        accs = [c for c in accs if c == f"val_{head}_accuracy"] or \
               [c for c in accs if c == "val_accuracy"]
    return (accs[0] if accs else None), loss


def run_curve_summary(run: Run, head: str | None = None) -> dict:
    """Lowest, highest and final validation accuracy and loss of one run."""
    out = {"state": "damaged", "epochs": 0}
    try:
        hist = run.history()
        out["state"] = run.status().get("state")
    except RunDamaged:
        return out
    out["epochs"] = len(hist)
    acc, loss = val_columns(hist, head)
    for name, col in (("acc", acc), ("loss", loss)):
        if col is None or col not in hist or hist.empty:
            out.update({f"lowest_val_{name}": np.nan, f"highest_val_{name}": np.nan,
                        f"final_val_{name}": np.nan})
            continue
        v = hist[col].astype(float)
        out.update({f"lowest_val_{name}": v.min(), f"highest_val_{name}": v.max(),
                    f"final_val_{name}": v.iloc[-1]})
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
