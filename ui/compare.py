"""Compare & sweep logic: run labels that tell runs apart, the ROC overlay of several runs with
their sensitivity / specificity / F1 / AUC, the sweep's value inputs, what a launched sweep says
and its heatmaps."""

from __future__ import annotations

import streamlit as st

from faceml.evaluation import figures
from faceml.runs import Run, RunDamaged, RunStore
from faceml.training import sweeps

# the CelebA notebook's grid: lr {1e-2, 1e-3, 1e-4} x batch {8, 16, 32, 64}, 12 runs
SWEEP_DEFAULTS = {"lr": "0.01, 0.001, 0.0001", "batch_size": "8, 16, 32, 64"}
HEATMAPS = (("highest_val_acc", "val_loss_at_highest_val_acc"),
            ("lowest_val_acc", "val_loss_at_lowest_val_acc"),
            ("final_val_acc", "final_val_loss"))
"""The sweep's heatmaps in pairs: an accuracy and the validation loss at that same epoch."""


def data_caption(data: dict) -> str:
    """A run's data options in a few words: dataset, faces, size, colour, sample, split seed."""
    opts = data.get("dataset_options") or {}
    bits = [str(data.get("dataset", "?"))]
    if opts.get("n"):
        bits.append(f"{int(opts['n']):,} faces")
    if opts.get("label_noise"):
        bits.append(f"noise {opts['label_noise']:g}")
    bits.append(f"{data.get('size', '?')}px {data.get('color', '?')}")
    if data.get("fraction") not in (None, 1, 1.0):
        bits.append(f"{float(data['fraction']):.0%} sample")
    bits.append(f"split seed {data.get('seed', 0)}")
    return " ".join(bits[:1]) + " · " + ", ".join(bits[1:])


def run_label(run: Run) -> str:
    """``id · data options · arch · heads``: two runs that differ only in their data (faces,
    size, split seed) read differently."""
    try:
        cfg = run.config
    except RunDamaged:
        return f"{run.id} · damaged"
    heads = ", ".join(cfg.get("heads") or []) or "—"
    return (f"{run.id} · {data_caption(cfg.get('data') or {})} · {cfg.get('arch', '?')} · "
            f"{heads}")


def sweep_message(sweep: dict) -> str:
    """What Launch sweep did: how many runs are new, how many were already in the store."""
    cells = sweep["cells"]
    reused = sum(bool(c["reused"]) for c in cells)
    new = len(cells) - reused
    if not new:
        return (f"Sweep {sweep['id']}: nothing new to train; all {len(cells)} runs were "
                "already in the run store (done, training or waiting to train).")
    tail = f"; {reused} reused from the run store" if reused else ""
    return f"Sweep {sweep['id']}: {new} new run(s) queued{tail}."


def roc_section(runs: list[Run], split: str, threshold: float = 0.5) -> None:
    """The chosen runs' ROC curves of a binary head they share, overlaid, and per run the
    sensitivity, specificity and F1 at ``threshold`` and the AUC (scikit-learn, on each run's
    stored predictions of ``split``)."""
    heads = sweeps.shared_binary_heads(runs)
    if not heads:
        st.caption("These runs share no binary head with stored predictions: no ROC overlay.")
        return
    head = st.selectbox("Binary head", heads, key="cmp_roc_head") if len(heads) > 1 else heads[0]
    table, curves = sweeps.binary_comparison(runs, head, split, threshold)
    datasets = ", ".join(sorted({str(d) for d in table["dataset"]}))
    st.caption(f"{head}: each run's stored predictions of its **{split}** split ({datasets}); "
               f"sensitivity = recall of the positive class, specificity = recall of the "
               f"negative class, F1 of the positive class, all at P(positive) ≥ {threshold:g}.")
    if curves:
        fig = figures.roc_figure(curves, title=f"ROC of {head} — {split} split", height=460)
        st.plotly_chart(fig, width="stretch", key="cmp_roc")
    st.dataframe(table, hide_index=True, width="stretch", key="cmp_roc_table")


def sweep_view(sweep: dict, store: RunStore) -> None:
    """A sweep's progress, its heatmaps (each accuracy beside the validation loss AT that
    accuracy's epoch) and its table of cells."""
    table = sweeps.sweep_table(sweep, store)
    done = (table["state"] == "done").sum()
    st.caption(f"{done} of {len(table)} runs done · dataset {sweep['base']['data']['dataset']} · "
               "validation split. Each loss is taken at the epoch of the accuracy beside it, "
               "not at the loss's own extreme.")
    a, b = sweep["a"], sweep["b"]
    for pair in HEATMAPS:
        cols = st.columns(2)
        for col, value in zip(cols, pair):
            if value not in table or table[value].isna().all():
                continue
            grid = sweeps.pivot(table, sweep, value)
            fig = figures.grid_figure(grid.to_numpy(dtype=float), list(grid.index),
                                      list(grid.columns), row_label=a, column_label=b,
                                      title=sweeps.SUMMARY[value],
                                      higher_is_better="acc" in value.split("_at_")[0])
            col.plotly_chart(fig, width="stretch", key=f"sweep_{value}")
    st.dataframe(table, hide_index=True, width="stretch")
