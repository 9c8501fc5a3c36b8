"""The run store: one directory per training run, named by the hash of its canonical config.

    runs/<run_id>/
        config.json        the canonical TrainConfig (what the id is a hash of)
        status.json        state (queued/running/done/failed/stopped), reason, pid, host,
                           device, progress
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

Where: ``FACEML_RUNS_DIR`` is a local folder (the default, ``runs/``) or an fsspec URL
(``file:///srv/runs``, ``s3://bucket/runs``, ``gs://bucket/runs``; :mod:`faceml.storage`
opens it, with ``pip install .[scale]``). The dashboard, the CLI and workers on other
machines that name the same URL see the same runs, all through this API.

How writes stay whole. In a local folder (and ``file://``) every file is written to a
temporary name and renamed into place, so a crash or a kill never leaves a half-written
file. An object store has no rename: each file is sent whole in one PUT, which an object store
shows only once complete. A commit of several files, an epoch's checkpoints with the epoch's
history row, works like this in an object store:

1. the checkpoint is uploaded under a new name (``last.<token>.keras``, and the same weights
   as ``best.<token>.keras`` when the epoch is the best so far); nobody reads those names yet;
2. ``history.json`` is written last, whole, as the commit marker: it holds the epochs and which
   object is each checkpoint (``{"epochs": [...], "checkpoints": {"last": {"object", "epoch"},
   …}}``). Readers take the checkpoints only from it;
3. the objects it no longer names are deleted.

A writer interrupted before step 2 leaves the run exactly at its previous epoch (history and
checkpoints agree; its uploads are orphans the next commit deletes), so a reader never sees
half a history nor a checkpoint ahead of it. Keras needs a local file: a checkpoint is saved to
a local temporary file and uploaded, and :meth:`Run.checkpoint` of a run at a URL is a local
copy downloaded once per committed object (under the cache folder). A run's other files
(predictions.csv, heads.json, metrics.json) are written heads, metrics, then predictions, so
predictions are never there without their heads.

A run marked running by a worker on another machine (``host`` in its status) cannot have its
pid checked here: it shows as crashed when its status has not been updated for
:data:`STALE_S` seconds (a worker updates it about every second while it trains). Creating a
run in an object store is not atomic between machines (two launches of one config at the
same moment on two machines may both say they made it; it is still one run, one id).

Every run whose files are damaged anyway is listed as ``damaged`` and never stops the other
runs from working.
"""

from __future__ import annotations

import json
import os
import re
import socket
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from faceml import paths
from faceml.errors import FaceMLError
from faceml.data.heads import HeadSpec
from faceml.io import write_json_atomic
from faceml.storage import Folder, machine_folder, open_folder

STATES = ("queued", "running", "done", "failed", "stopped")
FINISHED = ("done", "failed", "stopped")
STALE_S = 600.0
"""A run marked running on another machine whose status is older than this has crashed."""
STOP_POLL_S = 1.0
"""How often a run at a URL asks whether a stop was requested (locally: every batch)."""
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


def _host() -> str:
    return socket.gethostname()


class Run:
    """One run's folder, local or at a URL (``Run(path_or_url)`` or a
    :class:`~faceml.storage.Folder`)."""

    def __init__(self, where: str | Path | Folder):
        self.folder = where if isinstance(where, Folder) else open_folder(where)
        self._stop_checked = (0.0, False)

    def __repr__(self) -> str:
        return f"Run({self.where!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, Run) and other.where == self.where

    def __hash__(self) -> int:
        return hash(self.where)

    @property
    def where(self) -> str:
        """Its folder's path or URL (for messages and cache keys)."""
        return self.folder.location

    @property
    def remote(self) -> bool:
        return self.folder.remote

    @property
    def dir(self) -> Path:
        """The local folder of a run in a local store (a run at a URL has none: ask the API)."""
        if self.remote:
            raise FaceMLError(f"run {self.id} is at {self.where}, not in a local folder")
        return self.folder.path

    @property
    def id(self) -> str:
        return self.folder.name

    @property
    def store(self) -> RunStore:
        """The store it is in."""
        return RunStore(self.folder.parent())

    # -- files ------------------------------------------------------------------------------
    def _read(self, name: str) -> bytes | None:
        try:
            return self.folder.read_bytes(name)
        except FileNotFoundError:
            return None
        except IsADirectoryError as e:
            raise RunDamaged(f"run {self.id}: {name} is damaged ({e.strerror})") from None

    def _write_json(self, name: str, obj) -> None:
        self.folder.write_bytes(name, json.dumps(obj, indent=1, default=str).encode())

    def _read_json(self, name: str, default=None, kind: type | None = None):
        raw = self._read(name)
        if raw is None:
            if default is not None:
                return default
            raise RunDamaged(f"run {self.id}: {name} is missing")
        try:
            obj = json.loads(raw)
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
        if st.get("state") == "running" and not self._worker_alive(st):
            st = {**st, "state": "failed", "reason": "the training process died "
                  "(killed or crashed); resume continues from the last saved epoch",
                  "crashed": True}
        return st

    @staticmethod
    def _worker_alive(st: dict) -> bool:
        """Its pid on this machine; on another machine (``host``), a recent status."""
        host = st.get("host")
        if host and host != _host():
            updated = st.get("updated")
            return isinstance(updated, int | float) and time.time() - updated < STALE_S
        return pid_alive(st.get("pid"))

    def set_status(self, **fields) -> dict:
        st = self._read_json("status.json", {}, kind=dict)
        if "pid" in fields:  # whose pid: a reader on another machine cannot check it
            fields.setdefault("host", _host() if fields["pid"] else None)
        st.update(fields, updated=time.time())
        self._write_json("status.json", st)
        return st

    @property
    def state(self) -> str:
        return self.status().get("state", "queued")

    def _history_doc(self) -> tuple[list, dict]:
        """``(epochs, checkpoints)``: a local store's history.json is the list of epochs; a
        store at a URL keeps the committed checkpoints' objects beside them (the module's
        docstring)."""
        doc = self._read_json("history.json", [])
        checkpoints: dict = {}
        if isinstance(doc, dict):
            checkpoints = doc.get("checkpoints") or {}
            doc = doc.get("epochs")
            if not isinstance(checkpoints, dict):
                raise RunDamaged(f"run {self.id}: history.json is damaged (its checkpoints)")
        if not isinstance(doc, list) or not all(isinstance(r, dict) for r in doc):
            raise RunDamaged(f"run {self.id}: history.json is not a list of epochs")
        return doc, checkpoints

    def _write_history(self, rows: list, checkpoints: dict | None = None) -> None:
        if self.remote:
            self._write_json("history.json", {"epochs": rows, "checkpoints": checkpoints or {}})
        else:
            self._write_json("history.json", rows)

    def history(self) -> pd.DataFrame:
        return pd.DataFrame(self._history_doc()[0])

    def append_history(self, row: dict) -> None:
        rows, ckpts = self._history_doc()
        rows = [r for r in rows if r.get("epoch") != row.get("epoch")] + [row]
        self._write_history(rows, ckpts)

    def truncate_history(self, epochs: int) -> None:
        rows, ckpts = self._history_doc()
        self._write_history([r for r in rows if r["epoch"] <= epochs], ckpts)

    @property
    def kind(self) -> str:
        """The name of its model kind (:mod:`faceml.modeling.kinds`: ``"classifier"``,
        ``"vae"``…; RunDamaged when config.json holds no configuration)."""
        return self.train_config().kind.name

    @staticmethod
    def _which(which: str) -> str:
        if which not in ("best", "last"):
            raise FaceMLError(f"unknown checkpoint {which!r}; choose best or last")
        return f"{which}.keras"

    def _object(self, which: str) -> str | None:
        """A run at a URL: the committed object of the ``best`` or ``last`` checkpoint."""
        entry = self._history_doc()[1].get(which)
        return entry.get("object") if isinstance(entry, dict) else None

    def checkpoint(self, which: str = "best") -> Path:
        """The ``best`` or ``last`` checkpoint as a local file. In a local store, where it is
        (or will be written); for a run at a URL, a local copy of the committed one
        (downloaded once; FaceMLError when none is saved yet)."""
        name = self._which(which)
        if not self.remote:
            return self.folder.local_path(name)
        obj = self._object(which)
        if obj is None:
            raise FaceMLError(f"run {self.id} has no {which} checkpoint saved yet")
        cache = machine_folder(self.where, paths.cache_dir())
        local = cache / obj
        if not local.exists():
            cache.mkdir(parents=True, exist_ok=True)
            for old in cache.glob(f"{which}.*.keras"):  # older epochs' copies
                old.unlink(missing_ok=True)
            self.folder.get(obj, local)
        return local

    def has_checkpoint(self, which: str = "best") -> bool:
        name = self._which(which)
        return self._object(which) is not None if self.remote else self.folder.exists(name)

    def checkpoint_version(self, which: str = "best") -> tuple | None:
        """Changes whenever that checkpoint does (None: none saved); for cache keys."""
        name = self._which(which)
        if self.remote:
            obj = self._object(which)
            return None if obj is None else (self.where, obj)
        return self.folder.version(name)

    def saved_checkpoint(self, prefer: str = "best") -> str | None:
        """``prefer`` when it was saved, else the other one; None before the first epoch."""
        other = "last" if prefer == "best" else "best"
        return next((w for w in (prefer, other) if self.has_checkpoint(w)), None)

    def load_model(self, which: str = "best", compile: bool = False):
        """Load a checkpoint with ``safe_mode=True`` (falls back from best to last)."""
        from faceml.modeling.modelio import load_model

        if not self.has_checkpoint(which) and which == "best":
            which = "last"
        if not self.has_checkpoint(which):
            raise FaceMLError(f"run {self.id} has no saved model yet")
        return load_model(self.checkpoint(which), compile=compile)

    def commit_epoch(self, model, row: dict, best: bool) -> None:
        """Save ``model`` as the ``last`` checkpoint (and as ``best`` too when ``best``) and
        record the epoch's history ``row`` (its ``time`` set after saving), all or nothing:
        a failed write leaves every file at the previous epoch (the module's docstring)."""
        from faceml.modeling.modelio import staged_checkpoint

        if not self.remote:
            with staged_checkpoint(model, self.checkpoint("last"),
                                   self.checkpoint("best") if best else None):
                row["time"] = time.time()  # wall clock after saving: incl. checkpoints
                self.append_history(row)
            return
        scratch = machine_folder(self.where, paths.cache_dir())
        scratch.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".epoch-", suffix=".keras", dir=scratch)
        os.close(fd)
        try:
            model.save(tmp)
            token = uuid.uuid4().hex[:12]
            rows, ckpts = self._history_doc()
            new = {w: {"object": self._which(w).replace(".", f".{token}."),
                       "epoch": row.get("epoch")}
                   for w in (("last", "best") if best else ("last",))}
            for entry in new.values():
                self.folder.put(tmp, entry["object"])
            row["time"] = time.time()
            rows = [r for r in rows if r.get("epoch") != row.get("epoch")] + [row]
            self._write_history(rows, {**ckpts, **new})  # the commit marker
        finally:
            Path(tmp).unlink(missing_ok=True)
        self._drop_uncommitted({e["object"] for e in {**ckpts, **new}.values()
                                if isinstance(e, dict)})

    def _drop_uncommitted(self, keep: set[str]) -> None:
        """Delete checkpoint objects history.json does not name (replaced ones, and the
        uploads of a writer interrupted before its commit)."""
        for name in self.folder.names():
            stem, _, ext = name.partition(".")
            if stem in ("best", "last") and ext.endswith(".keras") and name not in keep:
                self.folder.remove(name)

    def heads(self) -> list[HeadSpec]:
        """The model's heads as training stored them (``[]`` before training stored any)."""
        rows = self._read_json("heads.json", [], kind=list)
        try:
            return [HeadSpec.from_dict(h) for h in rows]
        except (TypeError, ValueError, KeyError, AttributeError) as e:
            raise RunDamaged(f"run {self.id}: heads.json is damaged ({e})") from None

    def has_predictions(self) -> bool:
        return self.folder.exists("predictions.csv")

    def predictions_version(self) -> tuple | None:
        """Changes whenever the stored predictions do (None: none stored)."""
        return self.folder.version("predictions.csv")

    def predictions(self) -> pd.DataFrame | None:
        """The stored predictions on val and test (class names as text), or None before
        training stored any."""
        raw = self._read("predictions.csv")
        if raw is None:
            return None
        heads = self.heads()
        try:
            import io

            return read_predictions(io.BytesIO(raw), heads)
        except (OSError, ValueError) as e:  # pandas' ParserError and decode errors included
            raise RunDamaged(f"run {self.id}: predictions.csv is damaged "
                             f"({str(e).splitlines()[0] if str(e) else type(e).__name__})") \
                from None

    def write_results(self, predictions: pd.DataFrame, metrics: dict,
                      heads: list[HeadSpec]) -> None:
        """Store a classifier's predictions on val and test, its metrics and its heads
        (predictions last: never there without their heads)."""
        self._write_json("heads.json", [h.to_dict() for h in heads])
        self.write_metrics(metrics)
        self.folder.write_bytes("predictions.csv", predictions.to_csv(index=False).encode())

    RECORDS = ("config.json", "status.json", "history.json", "metrics.json", "heads.json",
               "predictions.csv")

    def records(self) -> list[Path]:
        """The run's record files that exist (everything but checkpoints, logs and flags):
        what travels back from a GPU server with the chosen checkpoint (a local store's)."""
        return [self.dir / n for n in self.RECORDS if (self.dir / n).exists()]

    def write_metrics(self, metrics: dict) -> None:
        self._write_json("metrics.json", metrics)

    def metrics(self) -> dict:
        return self._read_json("metrics.json", {}, kind=dict)

    def stop_requested(self) -> bool:
        """Whether a stop was requested (asked at most every :data:`STOP_POLL_S` s of a run
        at a URL: the engine asks after every batch)."""
        if not self.remote:
            return self.folder.exists("STOP")
        at, said = self._stop_checked
        if time.monotonic() - at >= STOP_POLL_S:
            said = self.folder.exists("STOP")
            self._stop_checked = (time.monotonic(), said)
        return said

    def request_stop(self) -> None:
        self.folder.write_bytes("STOP", b"")

    def clear_stop(self) -> None:
        self.folder.remove("STOP")
        self._stop_checked = (0.0, False)

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
    """The runs at ``root``: a local folder or an fsspec URL (default ``FACEML_RUNS_DIR``)."""

    def __init__(self, root: str | Path | Folder | None = None):
        root = root if root is not None else paths.runs_dir()
        self.folder = root if isinstance(root, Folder) else open_folder(root)
        self.root: str | Path = self.folder.location if self.folder.remote \
            else self.folder.path
        """The local folder (a Path), or the URL (a str)."""

    @property
    def location(self) -> str:
        """Its path or URL, as ``FACEML_RUNS_DIR`` would name it."""
        return self.folder.location

    @property
    def remote(self) -> bool:
        return self.folder.remote

    @property
    def machine_dir(self) -> Path:
        """This machine's own local folder for the store: the store's folder when it is
        local; for a URL, a folder under the cache (a worker's lock, pid and log, which are
        about the processes of this machine)."""
        return machine_folder(self.location, paths.cache_dir())

    def _run(self, run_id: str) -> Run:
        return Run(self.folder.child(run_id))

    def get(self, run_id: str) -> Run:
        if not valid_run_id(run_id):
            raise FaceMLError(f"not a run id: {str(run_id)[:80]!r}")
        run = self._run(run_id)
        if not run.folder.exists("config.json"):
            raise FaceMLError(f"no run {run_id!r} in {self.location}")
        return run

    def exists(self, run_id: str) -> bool:
        return valid_run_id(run_id) and self._run(run_id).folder.exists("config.json")

    def create(self, run_id: str, config: dict) -> tuple[Run, bool]:
        """The run for ``run_id``; ``created`` is False when it already existed (atomic in a
        local folder: two launches of one config at once make one run)."""
        if self.remote:
            run = self._run(run_id)
            if run.folder.exists("config.json"):
                return run, False
            run._write_json("status.json", {"state": "queued", "created": time.time(),
                                            "queued_at": time.time(), "updated": time.time()})
            run._write_json("config.json", config)  # last: the run exists from now on
            return run, True
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
        """Every run (a folder with a config.json), oldest first."""
        made = sorted(self.folder.folders_with("config.json"), key=lambda t: t[1])
        return [self._run(name) for name, _ in made]

    # -- the store's own records beside its runs (sweeps) ------------------------------------
    def write_record(self, kind: str, name: str, obj) -> None:
        """Keep a JSON record ``name`` of ``kind`` (e.g. ``sweeps``) in the store."""
        folder = self.folder.child(f".{kind}")
        if not folder.remote:
            folder.mkdir()
        folder.write_bytes(f"{name}.json", json.dumps(obj, indent=1, default=str).encode())

    def records_of(self, kind: str) -> list:
        """The JSON records of ``kind``, newest first (unreadable ones skipped)."""
        folder = self.folder.child(f".{kind}")
        out = []
        for name, _ in sorted(folder.files(), key=lambda t: t[1], reverse=True):
            if not name.endswith(".json"):
                continue
            try:
                out.append(json.loads(folder.read_bytes(name)))
            except (OSError, ValueError):
                continue
        return out

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
