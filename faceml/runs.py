"""The run store: one directory per training run, named by the hash of its canonical config.

    runs/<run_id>/
        config.json        the canonical TrainConfig (what the id is a hash of)
        status.json        state (queued/running/done/failed/stopped), reason, pid, device, progress
        history.json       one row per finished epoch (rewritten atomically each epoch)
        last.keras         the model after the last finished epoch (with optimizer state: resume)
        best.keras         the model with the best validation loss so far
        predictions.csv    per face predictions on val and test (faceml.evaluation.predictions)
        heads.json         the model's heads (names, kinds, classes in output order)
        metrics.json       final metrics per split
        STOP               present while a stop is requested
        log.txt            the worker's output for this run

Only this module spells these names: everyone else asks a :class:`Run` (``checkpoint``,
``heads``, ``predictions``, ``history``, ``metrics``, ``write_results``…).

Every file is written to a temporary name and renamed into place, so a crash or a kill never
leaves a half-written file; a run whose files are damaged anyway is listed as ``damaged`` and
never stops the other runs from working.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from faceml import paths
from faceml.errors import FaceMLError
from faceml.data.heads import HeadSpec
from faceml.io import write_json_atomic, write_text_atomic

STATES = ("queued", "running", "done", "failed", "stopped")
FINISHED = ("done", "failed", "stopped")
RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
"""What a run id may look like (a config hash, or a test's plain name): never a path."""


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except (TypeError, ValueError, OverflowError):  # not a pid (a damaged status.json)
        return False
    try:  # a zombie (finished child not yet reaped) is not alive
        with open(f"/proc/{int(pid)}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


class RunDamaged(FaceMLError):
    pass


def best_epoch(hist: pd.DataFrame) -> tuple[int | None, str | None]:
    """The engine's rule for ``best.keras``: the first epoch of the lowest validation loss
    (training loss without a validation split). ``(epoch, monitor)``; ``(None, None)`` when
    the history has neither."""
    for monitor in ("val_loss", "loss"):
        if monitor in hist and "epoch" in hist:
            losses = pd.to_numeric(hist[monitor], errors="coerce").reset_index(drop=True)
            if losses.notna().any():
                return int(hist["epoch"].iloc[int(losses.idxmin())]), monitor
    return None, None


def read_predictions(path: str | Path, heads: list[HeadSpec]) -> pd.DataFrame:
    """A stored predictions CSV (a run's, or one shipped beside a bundled model), with class
    names kept as text: a class called ``"1"`` stays ``"1"``."""
    text = {"source": str, "split": str}
    for h in heads:
        if h.kind != "regression":
            text[f"{h.name}_true"] = str
            text[f"{h.name}_pred"] = str
    return pd.read_csv(path, dtype=text)


def valid_run_id(run_id) -> bool:
    return isinstance(run_id, str) and RUN_ID.fullmatch(run_id) is not None


@dataclass
class Run:
    dir: Path

    @property
    def id(self) -> str:
        return self.dir.name

    # -- files ------------------------------------------------------------------------------
    def _read_json(self, name: str, default=None, kind: type | None = None):
        p = self.dir / name
        if not p.exists():
            if default is not None:
                return default
            raise RunDamaged(f"run {self.id}: {name} is missing")
        try:
            obj = json.loads(p.read_text())
        except (OSError, ValueError) as e:
            raise RunDamaged(f"run {self.id}: {name} is damaged ({e})") from None
        if kind is not None and not isinstance(obj, kind):
            what = "an object" if kind is dict else "a list"
            raise RunDamaged(f"run {self.id}: {name} is damaged (not {what})")
        return obj

    @property
    def config(self) -> dict:
        return self._read_json("config.json", kind=dict)

    def train_config(self):
        """The run's :class:`~faceml.config.TrainConfig` (RunDamaged when config.json does
        not hold one)."""
        from faceml.config import TrainConfig

        cfg = self.config
        try:
            return TrainConfig.from_dict(cfg)
        except (TypeError, ValueError, AttributeError, KeyError):
            raise RunDamaged(f"run {self.id}: config.json is damaged (not a training "
                             "configuration)") from None

    def status(self) -> dict:
        """The status, with a dead worker's 'running' (or a stale 'stopping') shown as failed."""
        st = self._read_json("status.json", {"state": "queued"}, kind=dict)
        if st.get("state") == "running" and not pid_alive(st.get("pid")):
            st = {**st, "state": "failed", "reason": "the training process died "
                  "(killed or crashed); resume continues from the last saved epoch",
                  "crashed": True}
        return st

    def set_status(self, **fields) -> dict:
        st = self._read_json("status.json", {"state": "queued"}, kind=dict) \
            if (self.dir / "status.json").exists() else {}
        st.update(fields, updated=time.time())
        write_json_atomic(self.dir / "status.json", st)
        return st

    @property
    def state(self) -> str:
        return self.status().get("state", "queued")

    def history(self) -> pd.DataFrame:
        rows = self._read_json("history.json", [])
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise RunDamaged(f"run {self.id}: history.json is not a list of epochs")
        return pd.DataFrame(rows)

    def append_history(self, row: dict) -> None:
        rows = self._read_json("history.json", [])
        rows = [r for r in rows if r.get("epoch") != row.get("epoch")] + [row]
        write_json_atomic(self.dir / "history.json", rows)

    def truncate_history(self, epochs: int) -> None:
        rows = self._read_json("history.json", [])
        write_json_atomic(self.dir / "history.json", [r for r in rows if r["epoch"] <= epochs])

    @property
    def kind(self) -> str:
        """The name of its model kind (:mod:`faceml.modeling.kinds`: ``"classifier"``,
        ``"vae"``…; RunDamaged when config.json holds no configuration)."""
        return self.train_config().kind.name

    def checkpoint(self, which: str = "best") -> Path:
        """Where the ``best`` or ``last`` checkpoint is (or will be written)."""
        if which not in ("best", "last"):
            raise FaceMLError(f"unknown checkpoint {which!r}; choose best or last")
        return self.dir / f"{which}.keras"

    def has_checkpoint(self, which: str = "best") -> bool:
        return self.checkpoint(which).exists()

    def saved_checkpoint(self, prefer: str = "best") -> str | None:
        """``prefer`` when it was saved, else the other one; None before the first epoch."""
        other = "last" if prefer == "best" else "best"
        return next((w for w in (prefer, other) if self.has_checkpoint(w)), None)

    def load_model(self, which: str = "best"):
        """Load a checkpoint with ``safe_mode=True`` (falls back from best to last)."""
        from faceml.modeling.modelio import load_model

        p = self.checkpoint(which)
        if not p.exists() and which == "best":
            p = self.checkpoint("last")
        if not p.exists():
            raise FaceMLError(f"run {self.id} has no saved model yet")
        return load_model(p)

    def heads(self) -> list[HeadSpec]:
        """The model's heads as training stored them (``[]`` before training stored any)."""
        rows = self._read_json("heads.json", [], kind=list)
        try:
            return [HeadSpec.from_dict(h) for h in rows]
        except (TypeError, ValueError, KeyError, AttributeError) as e:
            raise RunDamaged(f"run {self.id}: heads.json is damaged ({e})") from None

    def has_predictions(self) -> bool:
        return self._predictions_path.exists()

    @property
    def _predictions_path(self) -> Path:
        return self.dir / "predictions.csv"

    def predictions_version(self) -> tuple | None:
        """Changes whenever the stored predictions do (None: none stored)."""
        try:
            st = self._predictions_path.stat()
        except FileNotFoundError:
            return None
        return (str(self._predictions_path), st.st_mtime_ns, st.st_size)

    def predictions(self) -> pd.DataFrame | None:
        """The stored predictions on val and test (class names as text), or None before
        training stored any."""
        if not self.has_predictions():
            return None
        heads = self.heads()
        try:
            return read_predictions(self._predictions_path, heads)
        except (OSError, ValueError) as e:  # pandas' ParserError and decode errors included
            raise RunDamaged(f"run {self.id}: predictions.csv is damaged "
                             f"({str(e).splitlines()[0] if str(e) else type(e).__name__})") \
                from None

    def write_results(self, predictions: pd.DataFrame, metrics: dict,
                      heads: list[HeadSpec]) -> None:
        """Store a classifier's predictions on val and test, its metrics and its heads."""
        write_text_atomic(self._predictions_path, predictions.to_csv(index=False))
        self.write_metrics(metrics)
        write_json_atomic(self.dir / "heads.json", [h.to_dict() for h in heads])

    RECORDS = ("config.json", "status.json", "history.json", "metrics.json", "heads.json",
               "predictions.csv")

    def records(self) -> list[Path]:
        """The run's record files that exist (everything but checkpoints, logs and flags):
        what travels back from a GPU server with the chosen checkpoint."""
        return [self.dir / n for n in self.RECORDS if (self.dir / n).exists()]

    def write_metrics(self, metrics: dict) -> None:
        write_json_atomic(self.dir / "metrics.json", metrics)

    def metrics(self) -> dict:
        return self._read_json("metrics.json", {}, kind=dict)

    def stop_requested(self) -> bool:
        return (self.dir / "STOP").exists()

    def request_stop(self) -> None:
        (self.dir / "STOP").touch()

    def clear_stop(self) -> None:
        (self.dir / "STOP").unlink(missing_ok=True)

    def summary(self) -> dict:
        """One row for run lists; never raises (damaged runs say so)."""
        row = {"run_id": self.id, "state": "damaged", "reason": "", "dataset": "", "arch": "",
               "heads": "", "epochs_done": 0, "created": None, "sec_per_epoch": None}
        try:
            cfg = self.config
            st = self.status()
            hist = self.history()
            metrics = self.metrics()
            data = cfg.get("data") or {}
            row.update(state=str(st.get("state", "queued")), reason=str(st.get("reason", "")),
                       dataset=str(data.get("dataset", "")), arch=str(cfg.get("arch", "")),
                       heads=",".join(map(str, cfg.get("heads") or [])),
                       created=st.get("created"),
                       epochs_done=int(hist["epoch"].max()) if "epoch" in hist else 0,
                       epochs=cfg.get("epochs"),
                       sec_per_epoch=float(hist["seconds"].mean()) if "seconds" in hist else None)
            # the test split's results; a run trained without one shows its val results
            split = "test" if metrics.get("test") else "val"
            test = metrics.get(split) or {}
        except RunDamaged as e:
            row["reason"] = str(e)
            return row
        except (TypeError, ValueError, AttributeError, KeyError):  # JSON of the wrong shape
            row.update(state="damaged", reason=f"run {self.id}: its files are damaged (not "
                       "the shape FaceML writes)")
            return row
        for k, v in (test.items() if isinstance(test, dict) else ()):
            if isinstance(v, int | float):
                row[f"{split}_{k}"] = v
        return row


class RunStore:
    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else paths.runs_dir()

    def get(self, run_id: str) -> Run:
        if not valid_run_id(run_id):
            raise FaceMLError(f"not a run id: {str(run_id)[:80]!r}")
        d = self.root / run_id
        if not (d / "config.json").exists():
            raise FaceMLError(f"no run {run_id!r} in {self.root}")
        return Run(d)

    def exists(self, run_id: str) -> bool:
        return valid_run_id(run_id) and (self.root / run_id / "config.json").exists()

    def create(self, run_id: str, config: dict) -> tuple[Run, bool]:
        """The run for ``run_id``; ``created`` is False when it already existed (atomic: two
        launches of one config at once make one run)."""
        self.root.mkdir(parents=True, exist_ok=True)
        d = self.root / run_id
        try:
            tmp = Path(tempfile.mkdtemp(prefix=f".new-{run_id}-", dir=self.root))
        except OSError as e:
            raise FaceMLError(f"cannot write to the runs folder {self.root}: {e}") from None
        write_json_atomic(tmp / "config.json", config)
        write_json_atomic(tmp / "status.json", {"state": "queued", "created": time.time(),
                                                "queued_at": time.time(), "updated": time.time()})
        try:
            os.rename(tmp, d)  # fails if d exists: the other launch won
            return Run(d), True
        except OSError:
            for f in tmp.iterdir():
                f.unlink()
            tmp.rmdir()
            return Run(d), False

    def list(self) -> list[Run]:
        if not self.root.exists():
            return []
        runs = [Run(d) for d in self.root.iterdir()
                if d.is_dir() and not d.name.startswith(".") and (d / "config.json").exists()]

        def made(r: Run) -> float:
            try:
                return (r.dir / "config.json").stat().st_mtime
            except OSError:  # removed meanwhile
                return 0.0

        return sorted(runs, key=made)

    def table(self) -> pd.DataFrame:
        return pd.DataFrame([r.summary() for r in self.list()])

    def find(self, kind: str | None = None, state: str | Sequence[str] | None = None
             ) -> list[Run]:
        """The runs of this ``kind`` (a model kind's name) in this ``state`` (one or
        several), oldest first; damaged runs match no kind and no state."""
        states = (state,) if isinstance(state, str) else state
        out = []
        for r in self.list():
            try:
                if kind in (None, r.kind) and (states is None or r.state in states):
                    out.append(r)
            except RunDamaged:
                continue
        return out

    def queued(self) -> list[Run]:
        """Queued runs, oldest first (the order jobs were launched)."""
        out = []
        for r in self.list():
            try:
                st = r.status()
            except RunDamaged:
                continue
            if st.get("state") == "queued":
                at = st.get("queued_at", 0)
                out.append((at if isinstance(at, int | float) else 0, r))
        return [r for _, r in sorted(out, key=lambda t: t[0])]
