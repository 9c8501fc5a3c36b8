"""A run's stored predictions: the frame training wrote once (``predictions.csv``, val and
test), the run's heads, and which checkpoint (best or last) made them. No model and no images are
needed, so this works after the dataset has gone from disk. Light imports: no scikit-learn."""

from __future__ import annotations

import pandas as pd

from faceml.data.cache import MemoryLRU
from faceml.data.heads import HeadSpec
from faceml.errors import ConfigError
from faceml.evaluation.predictions import heads_from_frame
from faceml.runs import Run, RunDamaged, RunStore, best_epoch

__all__ = [
    "EVAL_SPLITS",
    "STORED_SPLITS",
    "as_run",
    "check_split",
    "checkpoint_info",
    "run_heads",
    "stored_predictions",
]

EVAL_SPLITS = ("train", "val", "test", "all")
STORED_SPLITS = ("val", "test")


def check_split(split: str, allowed: tuple[str, ...] = EVAL_SPLITS) -> str:
    """``split`` if it is one of ``allowed``, else a :class:`ConfigError` naming them."""
    if split not in allowed:
        raise ConfigError(f"unknown split {split!r}; choose {', '.join(allowed)}")
    return split


def as_run(run: Run | str, store: RunStore | None = None) -> Run:
    if isinstance(run, Run):
        return run
    return (store or RunStore()).get(str(run))


def run_heads(run: Run, frame: pd.DataFrame | None = None) -> list[HeadSpec]:
    """The run's heads as stored; else recovered from its predictions ``frame``."""
    heads = run.heads()
    if heads or frame is None:
        return heads
    return heads_from_frame(frame)


_FRAMES = MemoryLRU(8)


def stored_predictions(run: Run | str) -> pd.DataFrame | None:
    """The run's ``predictions.csv`` as a predictions frame (cached per file version), or None
    when the run has stored none yet. Class names are read as text (a class called ``"1"`` stays
    ``"1"``)."""
    run = as_run(run)
    key = run.predictions_version()
    if key is None:
        return None
    hit = _FRAMES.get(key)
    if hit is not None:
        return hit
    frame = run.predictions()
    if frame is None:  # removed meanwhile
        return None
    heads = run.heads()
    cfg = run.config
    ckpt = checkpoint_info(run)
    frame.attrs.update(dataset=cfg.get("data", {}).get("dataset", ""), run=run.id,
                       data=cfg.get("data", {}), heads=[h.to_dict() for h in heads],
                       notes=[], checkpoint=ckpt,
                       model=f"run {run.id} (stored predictions of its {ckpt['text']})")
    _FRAMES.put(key, frame)
    return frame


_MONITORS = {"val_loss": "lowest validation loss", "loss": "lowest training loss"}


def _recorded_results(run: Run) -> dict | None:
    """What training recorded about its stored results (``status.json``'s ``results``)."""
    try:
        rec = run.status().get("results")
    except (RunDamaged, AttributeError):
        return None
    return rec if isinstance(rec, dict) and rec.get("checkpoint") in ("best", "last") else None


def checkpoint_info(run: Run, which: str | None = None) -> dict:
    """Which checkpoint of ``run`` its numbers come from, in words the user can read.

    ``which``: ``"best"`` or ``"last"``; ``None``: the one its stored predictions came from
    (what training recorded in the status as ``results``; a run stored before that recorded
    nothing: ``best.keras`` when there is one, as training uses it, else ``last.keras``). Best
    is the first epoch of the lowest validation loss (training loss without a validation
    split). Returns ``{"checkpoint": "best" | "last", "epoch": int | None, "epochs_done": int,
    "text": "best checkpoint (epoch 3 of 5, lowest validation loss)"}``."""
    rec = _recorded_results(run) if which is None else None
    if which is None:
        which = rec["checkpoint"] if rec else (
            "last" if run.saved_checkpoint("best") == "last" else "best")
    if which not in ("best", "last"):
        raise ConfigError(f"unknown checkpoint {which!r}; choose best or last")
    try:
        hist = run.history()
    except RunDamaged:
        hist = pd.DataFrame()
    if "epoch" in hist:
        hist = hist.dropna(subset=["epoch"]).sort_values("epoch", kind="stable")
    done = int(hist["epoch"].max()) if "epoch" in hist and len(hist) else 0
    epoch, monitor = None, None
    if rec and isinstance(rec.get("epoch"), int | float):
        epoch, monitor = int(rec["epoch"]), rec.get("monitor")
    elif which == "last":
        epoch = done or None
    else:  # the engine's rule: the first epoch of the lowest monitored loss
        epoch, monitor = best_epoch(hist)
    if epoch is None:
        text = f"{which} checkpoint"
    elif which == "last":
        text = f"last checkpoint (epoch {epoch})"
    else:
        why = f", {_MONITORS[monitor]}" if monitor in _MONITORS else ""
        also = "; also the last epoch" if epoch == done else ""
        text = f"best checkpoint (epoch {epoch} of {max(done, epoch)}{why}{also})"
    return {"checkpoint": which, "epoch": epoch, "epochs_done": done, "text": text}
