"""``python -m faceml runs``: list the runs."""

from __future__ import annotations

from faceml.cli.common import print_json


def add_arguments(p) -> None:
    p.add_argument("--json", action="store_true")


def run(a) -> int:
    from faceml.runs import RunStore

    table = RunStore().table()
    if a.json:
        print_json(table.to_dict(orient="records"))
    elif table.empty:
        print("no runs yet")
    else:
        cols = [c for c in ("run_id", "state", "dataset", "arch", "heads", "epochs_done",
                            "sec_per_epoch", "reason") if c in table]
        print(table[cols].to_string(index=False))
    return 0
