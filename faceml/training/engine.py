"""The training engine: ``train_run`` trains a run's :class:`~faceml.config.TrainConfig` with
Keras ``fit`` and FaceML's callbacks (progress, stop, checkpoints), then stores its results."""

from __future__ import annotations

import contextlib
import math
import os
import time

from faceml.config import TrainConfig
from faceml.errors import ConfigError, FaceMLError
from faceml.data.prepare import Prepared, prepare

# --- device ---------------------------------------------------------------------------------
def device_info() -> dict:
    import keras

    backend = keras.backend.backend()
    gpu = None
    try:
        if backend == "jax":
            import jax

            devs = [d for d in jax.devices() if d.platform == "gpu"]
            gpu = devs[0].device_kind if devs else None
        elif backend == "tensorflow":
            import tensorflow as tf

            devs = tf.config.list_physical_devices("GPU")
            if devs:
                gpu = tf.config.experimental.get_device_details(devs[0]).get("device_name", "GPU")
        elif backend == "torch":
            import torch

            gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except Exception:  # device discovery must never stop training
        gpu = None
    return {"backend": backend, "gpu": gpu, "device": gpu or "CPU"}


# --- several devices (--distribute) ---------------------------------------------------------
DISTRIBUTE_ENV = "FACEML_DISTRIBUTE"


def distribute_wanted(distribute: bool | None = None) -> bool:
    """``distribute`` if given, else ``FACEML_DISTRIBUTE`` (1/true/yes) of the training process."""
    if distribute is not None:
        return bool(distribute)
    return os.environ.get(DISTRIBUTE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def distribute_devices(batch_size: int) -> list[str]:
    """The devices ``--distribute`` trains on (Keras's ``DataParallel`` under JAX).

    One device means training plainly (the caller says so). Raises ``ConfigError`` for another
    backend (Keras 3's distribution API is JAX's only) and for a batch size that does not split
    evenly over the devices. How a run trains, not what it trains: it is not part of the config
    and leaves the run id alone.
    """
    import keras

    if keras.backend.backend() != "jax":
        raise ConfigError(f"--distribute needs KERAS_BACKEND=jax (this process uses "
                          f"{keras.backend.backend()})")
    devices = list(keras.distribution.list_devices())
    if len(devices) > 1 and int(batch_size) % len(devices):
        raise ConfigError(f"--distribute over {len(devices)} devices needs a batch size "
                          f"divisible by {len(devices)}, not {batch_size}")
    return devices


def _take(obj, n: int):
    """The first ``n`` rows of an array, or of every array in a dict/list/tuple (None stays)."""
    if obj is None:
        return None
    if isinstance(obj, dict):
        return {k: _take(v, n) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_take(v, n) for v in obj)
    return obj[:n]


def _even(arrays: tuple, n_devices: int) -> tuple[tuple, int]:
    """``(x, y, sw)`` cut to a multiple of the device count: JAX shards every batch, the last
    (partial) one too, evenly over the devices. Returns them and how many rows were dropped."""
    n = len(arrays[0])
    keep = n - n % n_devices
    if keep == n:
        return arrays, 0
    return tuple(_take(a, keep) for a in arrays), n - keep


# --- model ----------------------------------------------------------------------------------
def build_model(cfg: TrainConfig, prep: Prepared, heads):
    """The model for a config, with scaling statistics fitted on the training split."""
    metadata = {"dataset": cfg.data.dataset, "data": cfg.data.canonical(),
                "run_config": cfg.run_id()}
    return cfg.kind.build(cfg, heads, prep, metadata=metadata)


def make_optimizer(cfg: TrainConfig, steps_per_epoch: int):
    import keras

    lr = float(cfg.lr)
    if cfg.schedule == "cosine":
        lr = keras.optimizers.schedules.CosineDecay(
            lr, decay_steps=max(1, steps_per_epoch * cfg.epochs))
    if cfg.optimizer == "adam":
        return keras.optimizers.Adam(lr)
    if cfg.optimizer == "adamw":
        return keras.optimizers.AdamW(lr)
    if cfg.optimizer == "sgd":
        return keras.optimizers.SGD(lr, momentum=0.9)
    return keras.optimizers.RMSprop(lr)


def allow_jax_jit(model) -> None:
    """Let a JAX model with rotation/zoom augmentation be jit-compiled.

    Keras marks ``RandomRotation`` and ``RandomZoom`` as not jittable because TensorFlow's XLA
    has no kernel for their projective transform, and a model holding one is then trained
    without jit. Under JAX they are plain ``jax`` ops that jit fine, while an unjitted JAX model
    runs op by op: 70 s an epoch on an H200 instead of a few. Other backends are left alone.
    """
    import keras

    if keras.backend.backend() != "jax":
        return
    for layer in model.layers:
        if isinstance(layer, keras.layers.RandomRotation | keras.layers.RandomZoom):
            layer.supports_jit = True
    if getattr(model, "compiled", False):
        model.jit_compile = True


def compile_model(model, cfg: TrainConfig, heads, steps_per_epoch: int):
    """Losses and metrics as the model's kind says, with the config's optimizer."""
    allow_jax_jit(model)
    cfg.kind.compile(model, cfg, heads, make_optimizer(cfg, steps_per_epoch))
    return model


def fit_arrays(cfg: TrainConfig, prep: Prepared, heads, split: str):
    """x, targets (and sample weights) of one split, shaped for ``model.fit``."""
    return cfg.kind.targets(cfg, prep, heads, prep.split_index(split))


# --- the engine -----------------------------------------------------------------------------
class CheckpointError(FaceMLError):
    """A checkpoint could not be written (a full disk): the run fails with this reason."""


def _os_reason(e: OSError) -> str:
    """An OSError in plain words, without the path (a hosted server's folders stay private)."""
    why = e.strerror or str(e) or type(e).__name__
    return why[:1].lower() + why[1:]


def _engine_callback(run, cfg: TrainConfig, start_epoch: int):
    """Per-epoch history + checkpoints (atomic), Stop within one batch, NaN detection, status."""
    import keras

    class Engine(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.best = math.inf
            hist = run.history()
            if "val_loss" in hist:
                self.best = float(hist["val_loss"].min())
            self.t_epoch = 0.0
            self.last_status = 0.0
            self.nan_epoch = None
            self.stopped = False
            self.steps = 0

        def on_train_begin(self, logs=None):
            self.steps = self.params.get("steps") or 0

        def on_epoch_begin(self, epoch, logs=None):
            self.t_epoch = time.perf_counter()
            run.set_status(phase="training", epoch=epoch + 1, batch=0, batches=self.steps)

        def on_train_batch_end(self, batch, logs=None):
            if run.stop_requested():
                self.model.stop_training = True
                self.stopped = True
            now = time.monotonic()
            if now - self.last_status > 1.0:
                self.last_status = now
                run.set_status(batch=batch + 1)

        def on_epoch_end(self, epoch, logs=None):
            logs = {k: float(v) for k, v in (logs or {}).items()}
            if any(not math.isfinite(v) for k, v in logs.items() if k.endswith("loss")):
                self.nan_epoch = epoch + 1
                self.model.stop_training = True
                return
            if self.stopped:  # partial epoch: keep the last full one
                return
            row = {"epoch": epoch + 1, "seconds": time.perf_counter() - self.t_epoch,
                   "lr": float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)),
                   **logs}
            val = logs.get("val_loss", logs.get("loss", math.inf))
            better = val < self.best
            # last (and best: the same weights) are written aside, then committed with the
            # epoch's history row: a failed write leaves every file at the last epoch
            try:
                run.commit_epoch(self.model, row, best=better)
            except OSError as e:
                kept = (f"the checkpoint of epoch {epoch} is kept" if run.has_checkpoint("last")
                        else "no checkpoint was saved yet")
                raise CheckpointError(
                    f"could not save the checkpoint of epoch {epoch + 1}: {_os_reason(e)}; "
                    f"{kept}. Free some space and resume the run.") from None
            if better:
                self.best = val

    return Engine()


def train_run(run, prep: Prepared | None = None, progress=None,
              distribute: bool | None = None) -> dict:
    """Train (or resume) a run in this process; returns its final status.

    ``run`` is a :class:`faceml.runs.Run` whose config.json holds a TrainConfig. Resuming
    loads ``last.keras`` (weights and optimizer state) and continues after its last epoch.
    ``distribute`` (default ``FACEML_DISTRIBUTE``) trains data-parallel over this process's
    devices (JAX only); the status's ``distribute`` records the devices used. Predictions are
    stored from the checkpoint by a plain model, so they cover every face either way.
    """
    import keras

    try:
        cfg = run.train_config()
    except FaceMLError as e:  # a damaged run fails alone; the worker goes on with the next
        return run.set_status(state="failed", reason=str(e), phase="")
    run.clear_stop()
    run.set_status(state="running", pid=os.getpid(), started=time.time(), reason="",
                   phase="preparing data", device=device_info(), distribute=None)
    try:
        cfg.validate()
        scope, dist = contextlib.nullcontext(), None
        if distribute_wanted(distribute):
            devices = distribute_devices(cfg.batch_size)
            dist = {"devices": [str(d) for d in devices], "n_devices": len(devices)}
            if len(devices) > 1:
                scope = keras.distribution.DataParallel(devices=devices).scope()
            else:
                dist["note"] = "one device: trained plainly"
            run.set_status(distribute=dist)
        keras.utils.set_random_seed(cfg.seed)
        if cfg.mixed_precision and device_info()["gpu"]:
            keras.mixed_precision.set_global_policy("mixed_float16")
        else:
            keras.mixed_precision.set_global_policy("float32")
        if prep is None:
            prep = prepare(cfg.data, progress=progress)
        heads = cfg.kind.heads(cfg, prep)
        x, y, sw = fit_arrays(cfg, prep, heads, "train")
        val = fit_arrays(cfg, prep, heads, "val")
        if len(x) == 0:
            raise FaceMLError("the training split is empty")
        if dist and dist["n_devices"] > 1:
            (x, y, sw), cut_train = _even((x, y, sw), dist["n_devices"])
            val, cut_val = _even(val, dist["n_devices"])
            if cut_train or cut_val:  # at most n_devices - 1 faces of each; stored results
                dist["dropped"] = {"train": cut_train, "val": cut_val}  # keep them all
                run.set_status(distribute=dist)
        steps = math.ceil(len(x) / cfg.batch_size)
        hist = run.history()
        start = int(hist["epoch"].max()) if len(hist) and run.has_checkpoint("last") else 0
        with scope:  # the model's variables and every batch spread over the devices
            if start:
                # compiled load: weights, optimizer state and schedule position all come back
                model = run.load_model("last", compile=True)
                allow_jax_jit(model)
            else:
                run.truncate_history(0)
                model = compile_model(build_model(cfg, prep, heads), cfg, heads, steps)
            run.set_status(phase="training", epochs=cfg.epochs, start_epoch=start,
                           n_train=int(len(x)), n_val=int(len(val[0])))
            engine = _engine_callback(run, cfg, start)
            callbacks = [engine]
            if cfg.schedule == "plateau":
                callbacks.append(keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5,
                                                                   patience=2, min_lr=1e-6))
            if cfg.early_stopping:
                callbacks.append(keras.callbacks.EarlyStopping(monitor="val_loss",
                                                               patience=int(cfg.early_stopping)))
            if start < cfg.epochs:
                model.fit(x, y, sample_weight=sw, batch_size=cfg.batch_size, epochs=cfg.epochs,
                          initial_epoch=start, validation_data=val if len(val[0]) else None,
                          callbacks=callbacks, verbose=0, shuffle=True)
        if engine.nan_epoch:
            return run.set_status(state="failed",
                                  reason=f"loss became NaN at epoch {engine.nan_epoch}")
        done_epochs = int(run.history()["epoch"].max()) if len(run.history()) else 0
        run.set_status(phase="evaluating")
        _store_results(run, cfg, prep, heads)
        if engine.stopped or run.stop_requested():
            return run.set_status(state="stopped", reason=f"stopped by the user after epoch "
                                  f"{done_epochs}; resume continues from there", phase="")
        return run.set_status(state="done", phase="", reason="", finished=time.time())
    except FaceMLError as e:
        return run.set_status(state="failed", reason=str(e), phase="")
    except OSError as e:  # e.g. the runs folder is full: said plainly, without the path
        where = f" ({os.path.basename(e.filename)})" if getattr(e, "filename", None) else ""
        return run.set_status(state="failed", phase="",
                              reason=f"could not read or write a file{where}: {_os_reason(e)}")
    except Exception as e:  # noqa: BLE001 - a run records why it failed instead of crashing
        msg = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        if ("ResourceExhausted" in msg or "out of memory" in msg.lower()
                or isinstance(e, MemoryError)):
            msg = f"out of memory: {msg} — try a smaller batch size or image size"
        return run.set_status(state="failed", reason=msg, phase="")


def results_checkpoint(run) -> dict | None:
    """Which checkpoint a run's stored predictions and metrics come from: ``best`` (the epoch
    with the lowest validation loss, or training loss without a validation split) or ``last``
    when there is no best. ``{"checkpoint", "epoch", "monitor"}``; None before any."""
    which = run.saved_checkpoint("best")
    if which is None:
        return None
    from faceml.runs import best_epoch

    hist = run.history()
    epoch, monitor = best_epoch(hist) if which == "best" else (None, None)
    if epoch is None and "epoch" in hist and len(hist):
        epoch = int(hist["epoch"].max())
    return {"checkpoint": which, "epoch": epoch,
            "monitor": monitor or ("val_loss" if "val_loss" in hist else "loss")}


def _store_results(run, cfg: TrainConfig, prep: Prepared, heads) -> None:
    """What the model's kind stores, from the best model: predictions on val and test and
    their metrics (a kind that predicts labels), or the kind's own metrics per split (a VAE's
    reconstruction error); the status records which checkpoint they come from (``results``)."""
    from faceml.evaluation.interpretation import Interpretation
    from faceml.evaluation.predictions import dataset_rows, has_truth, predictions_frame

    source = results_checkpoint(run)
    if source is None:
        return
    model = run.load_model(source["checkpoint"])
    kind = cfg.kind
    if not kind.predicts_labels:
        run.write_metrics({split: kind.split_metrics(model, cfg, prep, split)
                           for split in ("val", "test") if len(prep.split_index(split))})
        run.set_status(results=source)
        return
    frames, metrics = [], {}
    hidden = ("source", "split", "age_lo", "age_hi")  # the intervals: the loss's own targets
    extra_cols = [c for c in prep.frame.columns if c not in hidden]
    for split in ("val", "test"):
        idx = prep.split_index(split)
        if not len(idx):
            continue
        outputs = kind.outputs(model, prep.x[idx], cfg.batch_size)
        f = predictions_frame(prep.frame["source"].to_numpy()[idx], heads,
                              prep.targets(heads, idx), outputs, split,
                              extra=prep.frame.iloc[idx][extra_cols].reset_index(drop=True))
        frames.append(f)
        metrics[split] = Interpretation.from_frame(f, heads, dataset=cfg.data.dataset,
                                                   split=split).summary()
        if cfg.data.multi:  # several datasets: each one's own numbers too, named
            by = metrics.setdefault("by_dataset", {})
            for d in cfg.data.datasets:
                sub = dataset_rows(f, d)
                mine = [h for h in heads if sub is not None and has_truth(sub, h)]
                if mine:
                    by.setdefault(d, {})[split] = Interpretation.from_frame(
                        sub, mine, dataset=d, split=split).summary()
    import pandas as pd

    run.write_results(pd.concat(frames), metrics, heads)
    run.set_status(results=source)
