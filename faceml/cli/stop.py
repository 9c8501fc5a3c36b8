"""``python -m faceml stop RUN_ID``: stop a queued or running run."""

from __future__ import annotations


def add_arguments(p) -> None:
    p.add_argument("run_id")


def run(a) -> int:
    from faceml import hosting
    from faceml.training import jobs
    from faceml.runs import RunStore

    jobs.stop(RunStore().get(a.run_id), hosting.OPERATOR)
    return 0
