"""``python -m faceml worker``: train the queued runs (the app starts it)."""

from __future__ import annotations


def add_arguments(p) -> None:
    p.add_argument("--idle-exit", type=float, default=2.0)
    p.add_argument("--wait", type=float, default=0.0, help="seconds to wait for the lock")


def run(a) -> int:
    from faceml import hosting
    from faceml.training.jobs import work

    hosting.current().yield_to_visitors()  # hosted: the visitors' pages come first
    work(idle_exit=a.idle_exit, wait=a.wait)
    return 0
