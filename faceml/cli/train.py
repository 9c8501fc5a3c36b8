"""``python -m faceml train …``: train a model (a known configuration returns its run)."""

from __future__ import annotations

import sys

from faceml.cli.common import add_train_args, bar, print_json, train_values


def add_arguments(p) -> None:
    add_train_args(p)  # every flag of the configuration (faceml.flags)
    p.add_argument("--again", action="store_true", help="train again even if cached")
    p.add_argument("--resume", action="store_true", help="continue a stopped/crashed run")
    p.add_argument("--background", action="store_true", help="queue for the worker and return")
    p.add_argument("--json", action="store_true")


def train_config(a):
    """The parsed ``train`` flags as a ``TrainConfig``."""
    from faceml.config import TrainConfig

    return TrainConfig.from_dict(train_values(a))


def run(a) -> int:
    return train(train_config(a), again=a.again, resume=a.resume, background=a.background,
                 as_json=a.json)


def train(cfg, again: bool = False, resume: bool = False, background: bool = False,
          as_json: bool = False) -> int:
    """Train ``cfg`` here (or queue it with ``background``), cached like any run; prints its
    id (or JSON) and returns the exit code. ``recipe run`` shares it."""
    from faceml import hosting
    from faceml.training import jobs
    from faceml.runs import RunStore
    from faceml.training.engine import train_run

    store = RunStore()
    run, new = jobs.submit(cfg, store, again=again, start_worker=False,
                           visitor=hosting.OPERATOR)
    state = run.status().get("state")
    if not new and state in ("stopped", "failed") and resume:
        jobs.resume(run, store) if background else run.set_status(state="queued")
        new = True
    if new and background:
        jobs.ensure_worker(store)
    elif new:
        hosting.current().yield_to_visitors()  # hosted: the visitors' pages come first
        cb, close = bar("prepare data", not as_json)
        try:
            train_run(run, progress=cb)
        finally:
            close()
    st = run.status()
    if as_json:
        print_json({"run_id": run.id, "cached": not new, "status": st.get("state"),
                    "reason": st.get("reason", ""), "metrics": run.metrics()})
    else:
        print(run.id)
        if not new:
            print(f"(cached: this configuration already ran; status {st.get('state')})",
                  file=sys.stderr)
        elif st.get("state") == "failed":
            print(f"run failed: {st.get('reason')}", file=sys.stderr)
    return 1 if st.get("state") == "failed" else 0
