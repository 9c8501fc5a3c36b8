"""Compare & sweep helpers: run labels that tell runs apart, the sweep's value inputs and what a
launched sweep says."""

from __future__ import annotations

from faceml.runs import Run, RunDamaged

SWEEP_DEFAULTS = {"lr": "0.003, 0.001, 0.0003", "batch_size": "32, 64, 128"}


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
