"""``python -m faceml train …``: train a model (a known configuration returns its run)."""

from __future__ import annotations

import sys

from faceml.cli.common import (add_backend_args, add_train_args, backend_executor, bar,
                               print_json, train_values, wait_for)


def add_arguments(p) -> None:
    add_train_args(p)  # every flag of the configuration (faceml.flags)
    p.add_argument("--again", action="store_true", help="train again even if cached")
    p.add_argument("--resume", action="store_true", help="continue a stopped/crashed run")
    p.add_argument("--background", action="store_true", help="queue for the worker and return")
    p.add_argument("--json", action="store_true")
    p.add_argument("--distribute", action="store_true",
                   help="train data-parallel over this machine's devices (KERAS_BACKEND=jax; "
                        "or FACEML_DISTRIBUTE=1); the run id stays the same")
    add_backend_args(p)  # --backend ray: trained by a Ray actor (waited for unless --background)


def train_config(a):
    """The parsed ``train`` flags as a ``TrainConfig``."""
    from faceml.config import TrainConfig

    return TrainConfig.from_dict(train_values(a))


def run(a) -> int:
    cfg = train_config(a)
    ex = None
    if a.background or a.backend or a.address:
        ex = backend_executor(a, wait=not a.background)
    if a.distribute:
        check_distribute(cfg, a, ex)
    return train(cfg, again=a.again, resume=a.resume, background=a.background,
                 as_json=a.json, executor=ex, distribute=a.distribute or None)


def check_distribute(cfg, a, ex) -> None:
    """``--distribute`` before any run is made: JAX, a batch that splits over the devices, and
    this process or its local worker doing the training; says when there is one device."""
    from faceml.errors import ConfigError
    from faceml.training.engine import DISTRIBUTE_ENV, distribute_devices

    if ex is not None and ex.name != "local":
        raise ConfigError("--distribute trains on this machine's devices; it does not go "
                          "with --backend ray")
    devices = distribute_devices(cfg.batch_size)
    if len(devices) == 1:  # stderr: --json's stdout stays one JSON object
        print(f"--distribute: one device ({devices[0]}), training plainly", file=sys.stderr)
    if a.background:  # a worker started by this command trains with it too
        import os

        os.environ[DISTRIBUTE_ENV] = "1"


def train(cfg, again: bool = False, resume: bool = False, background: bool = False,
          as_json: bool = False, executor=None, distribute: bool | None = None) -> int:
    """Train ``cfg`` here (or queue it with ``background``), cached like any run; prints its
    id (or JSON) and returns the exit code. ``recipe run`` shares it. ``executor`` (from
    ``--backend``; default ``FACEML_EXECUTOR`` when ``background``) trains it elsewhere;
    this process then waits for it unless ``background``. ``distribute`` (default
    ``FACEML_DISTRIBUTE``) trains here data-parallel over the devices (JAX)."""
    from faceml import hosting
    from faceml.training import jobs
    from faceml.runs import RunStore
    from faceml.training.engine import train_run

    store = RunStore()
    ex = jobs.get_executor(executor) if (background or executor is not None) else None
    if ex is not None:
        ex.ready()  # a Ray cluster that does not answer: nothing queued
    run, new = jobs.submit(cfg, store, again=again, start_worker=False,
                           visitor=hosting.OPERATOR)
    state = run.status().get("state")
    if not new and state in ("stopped", "failed") and resume:
        if ex is not None:
            jobs.resume(run, store, executor=ex)
        else:
            run.set_status(state="queued")
        new = True
    elif new and ex is not None:
        ex.start(store, [run])
    if new and ex is not None:
        if not background:
            wait_for(run, ex)
    elif new:
        hosting.current().yield_to_visitors()  # hosted: the visitors' pages come first
        cb, close = bar("prepare data", not as_json)
        try:
            train_run(run, progress=cb, distribute=distribute)
        finally:
            close()
    st = run.status()
    if as_json:
        print_json({"run_id": run.id, "cached": not new, "status": st.get("state"),
                    "reason": st.get("reason", ""), "metrics": run.metrics(),
                    **({"distribute": st["distribute"]} if st.get("distribute") else {})})
    else:
        print(run.id)
        if not new:
            print(f"(cached: this configuration already ran; status {st.get('state')})",
                  file=sys.stderr)
        elif st.get("state") == "failed":
            print(f"run failed: {st.get('reason')}", file=sys.stderr)
    return 1 if st.get("state") == "failed" else 0
