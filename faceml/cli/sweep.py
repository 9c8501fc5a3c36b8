"""``python -m faceml sweep <train flags…> --grid KEY=V1,V2 [--grid …] [--json] [--no-wait]
[--backend local|ray] [--address HOST:PORT]``

A grid of training runs around the configuration the train flags make: one queued run per cell
(a cell whose configuration already ran is reused, with the run id the Compare page's sweep
gives it), trained by the background worker, or by Ray with ``--backend ray`` (one actor per
new cell, on the cluster at ``--address`` or a local Ray). Waits for them with a progress bar
(unless ``--no-wait``), then prints one row per cell with its validation metrics; ``--json``
prints a list of ``{run_id, state, params, metrics, backend}``.
"""

from __future__ import annotations

import argparse
import sys
import time

from faceml.cli.common import (add_backend_args, add_train_args, backend_executor, print_json,
                               train_values)
from faceml.errors import ConfigError


def add_arguments(p) -> None:
    add_train_args(p)  # the base configuration: every flag of `train`
    p.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2",
                   help="a hyperparameter and its values, e.g. lr=0.01,0.001 or "
                        "batch-size=8,16; KEY is a train flag (lr, batch-size, epochs, "
                        "optimizer, arch, size…) or its config key (batch_size, data.size); "
                        "several --grid make a grid of every combination")
    p.add_argument("--no-wait", action="store_true",
                   help="queue the cells and return (the worker trains them)")
    p.add_argument("--json", action="store_true")
    add_backend_args(p)


def _flags() -> list[argparse.Action]:
    """The train parser's actions that fill a config key (faceml.flags)."""
    p = argparse.ArgumentParser(add_help=False)
    add_train_args(p)
    return [a for a in p._actions if hasattr(a, "faceml_config") and a.option_strings]


def _name(action: argparse.Action) -> str:
    return action.option_strings[0].lstrip("-")


def _sweepable(action: argparse.Action) -> bool:
    """A flag that takes one plain value (not a list, KEY=VALUE pairs or an on/off switch)."""
    _, kind, _ = action.faceml_config
    return kind == "value" and action.nargs in (None, "?") and action.const is None \
        and not isinstance(action, argparse._AppendAction)


def parse_grid(items: list[str]) -> dict[str, tuple[argparse.Action, list]]:
    """``["lr=0.01,0.001", "batch-size=8,16"]`` → ``{config key: (flag, [values])}``, each
    value typed as its flag types it; one clear ConfigError for anything else."""
    if not items:
        raise ConfigError("give the grid: --grid KEY=V1,V2 (e.g. --grid lr=0.01,0.001)")
    flags = _flags()
    by_name: dict[str, argparse.Action] = {}
    # a flag's own name first (--seed is the training seed, --data-seed the split's), then
    # config keys in full (data.size), then their last part where it is free (size)
    for names in (lambda a: (_name(a), _name(a).replace("-", "_")),
                  lambda a: (a.faceml_config[0],),
                  lambda a: (a.faceml_config[0].split(".")[-1],)):
        for a in flags:
            for n in names(a):
                by_name.setdefault(n, a)
    names = ", ".join(_name(a) for a in flags if _sweepable(a))
    out: dict[str, tuple[argparse.Action, list]] = {}
    for item in items:
        key, eq, text = item.partition("=")
        key = key.strip().lstrip("-")
        if not eq or not key:
            raise ConfigError(f"--grid takes KEY=V1,V2, not {item!r}")
        action = by_name.get(key)
        if action is None:
            raise ConfigError(f"--grid {key}: unknown key; sweep one of {names}")
        if not _sweepable(action):
            raise ConfigError(f"--grid {key}: --{_name(action)} does not take a single value, "
                              f"so it cannot be swept; sweep one of {names}")
        ckey = action.faceml_config[0]
        if ckey in out:
            raise ConfigError(f"--grid {key}: given twice")
        words = [w.strip() for w in text.split(",") if w.strip()]
        if not words:
            raise ConfigError(f"--grid {key}: give at least one value")
        values = []
        for w in words:
            try:
                v = action.type(w) if action.type else w
            except (TypeError, ValueError):
                kind = getattr(action.type, "__name__", "value")
                raise ConfigError(f"--grid {key}: {w!r} is not a valid {kind}") from None
            if action.choices is not None and v not in action.choices:
                raise ConfigError(f"--grid {key}: {w!r} is not one of "
                                  f"{', '.join(map(str, action.choices))}")
            values.append(v)
        if len(set(values)) != len(values):
            raise ConfigError(f"--grid {key}: values repeat: {text!r}")
        out[ckey] = (action, values)
    return out


def _number(v):
    """NaN (no value) as None, for JSON."""
    return None if isinstance(v, float) and v != v else v


def _rows(sweep: dict, store, backend: str = "local") -> list[dict]:
    from faceml.errors import FaceMLError
    from faceml.training import sweeps

    keys = list(sweep["axes"])
    out = []
    for cell in sweep["cells"]:
        try:
            run = store.get(cell["run_id"])
            summ = sweeps.run_curve_summary(run)
            dataset = (run.config.get("data") or {}).get("dataset")
        except FaceMLError:
            summ, dataset = {"state": "missing", "epochs": 0}, None
        metrics = {k: _number(v) for k, v in summ.items() if k not in ("state",)}
        out.append({"run_id": cell["run_id"], "state": summ.get("state"),
                    "params": {k: cell[k] for k in keys},
                    "metrics": {"dataset": dataset, "split": "val", **metrics},
                    "backend": backend})
    return out


def _wait(sweep: dict, store, show: bool, check=None) -> None:
    """Block until every cell's run has finished, with a bar of finished cells on stderr;
    ``check(runs)`` (every few seconds) fails the runs its executor lost."""
    from faceml.runs import FINISHED

    ids = [c["run_id"] for c in sweep["cells"]]
    bar, shown, checked = None, None, time.monotonic()
    if show:
        from tqdm import tqdm

        bar = tqdm(total=len(ids), desc="sweep", unit="run", file=sys.stderr, leave=False)
    try:
        while True:
            states = {i: store.get(i).status() for i in ids}
            done = sum(s.get("state") in FINISHED for s in states.values())
            if bar is not None:
                running = [(i, s) for i, s in states.items() if s.get("state") == "running"]
                text = (f"training {running[0][0]} epoch {running[0][1].get('epoch') or 1}"
                        if running else "")
                if (done, text) != shown:
                    shown = (done, text)
                    bar.n = done
                    bar.set_postfix_str(text)  # refreshes
            if done == len(ids):
                return
            if check is not None and time.monotonic() - checked > 5:
                checked = time.monotonic()
                check([store.get(i) for i, s in states.items() if s.get("state") == "queued"])
            time.sleep(0.5)
    finally:
        if bar is not None:
            bar.close()


def run(a) -> int:
    from faceml import hosting
    from faceml.config import TrainConfig
    from faceml.runs import RunStore
    from faceml.training import sweeps

    grid = parse_grid(a.grid)  # bad input: before anything is built or queued
    base = TrainConfig.from_dict(train_values(a))
    axes = {key: values for key, (_, values) in grid.items()}
    ex = backend_executor(a, wait=not a.no_wait)
    store = RunStore()
    # every cell is validated (TrainConfig.validate) and the executor connected (a Ray cluster
    # that does not answer) before the first is queued
    sweep = sweeps.launch_grid(base, axes, store, start_worker=True, visitor=hosting.OPERATOR,
                               executor=ex)
    new = sum(not c["reused"] for c in sweep["cells"])
    on = f" on {ex.name}" if ex.name != "local" else ""
    print(f"sweep {sweep['id']}: {len(sweep['cells'])} runs, {new} new, "
          f"{len(sweep['cells']) - new} reused from the run store{on}", file=sys.stderr)
    if not a.no_wait:
        check = None
        if ex.name == "ray":
            from faceml.training import ray_executor

            check = ray_executor.check
        _wait(sweep, store, show=not a.json, check=check)
    rows = _rows(sweep, store, ex.name)
    if a.json:
        print_json(rows)
    else:
        _print_table(rows, list(sweep["axes"]))
    failed = any(r["state"] == "failed" for r in rows)
    return 1 if failed and not a.no_wait else 0


def _print_table(rows: list[dict], keys: list[str]) -> None:
    import pandas as pd

    table = pd.DataFrame([{**r["params"], "run_id": r["run_id"], "state": r["state"],
                           "epochs": r["metrics"].get("epochs"),
                           "best val acc": r["metrics"].get("highest_val_acc"),
                           "at epoch": r["metrics"].get("best_epoch"),
                           "val loss there": r["metrics"].get("val_loss_at_highest_val_acc"),
                           "final val loss": r["metrics"].get("final_val_loss")}
                          for r in rows])
    dataset = next((r["metrics"]["dataset"] for r in rows if r["metrics"].get("dataset")), "?")
    print(f"validation split of {dataset}; 'val loss there' is the val loss at the epoch of "
          "the best val accuracy")
    print(table.to_string(index=False, na_rep="—", float_format=lambda v: f"{v:.4f}"))
