"""``python -m faceml recipe list|show|run``: the course notebooks' experiments, exactly.

* ``recipe list [--json]``: every recipe with its notebook, dataset, parameter counts (counted
  for its own input, no training, no weight download) and what the notebook claimed;
* ``recipe show NAME [--json]``: its full configuration, the equivalent ``train`` command and
  its layer table;
* ``recipe run NAME [--path P] [--epochs N] [--fraction F] [--split TRAIN,VAL,TEST]
  [--background] [--json]``: trains it through the engine, cached like any run (a sweep
  recipe queues its grid and waits for it). ``--split`` carves validation faces from train
  instead of using the dataset's official held-out split.
"""

from __future__ import annotations

import sys

from faceml.cli.common import Parser, print_json


def add_arguments(p) -> None:
    sub = p.add_subparsers(dest="action", required=True, parser_class=Parser)
    ls = sub.add_parser("list", help="list the recipes")
    ls.add_argument("--json", action="store_true")
    show = sub.add_parser("show", help="a recipe's configuration and layer table")
    show.add_argument("name")
    show.add_argument("--json", action="store_true")
    run = sub.add_parser("run", help="train a recipe (cached like any run)")
    run.add_argument("name")
    run.add_argument("--path", default=None, help="the dataset's location")
    run.add_argument("--epochs", type=int, default=None, help="train fewer (or more) epochs")
    run.add_argument("--fraction", type=float, default=None, help="sample fraction, e.g. 0.1")
    run.add_argument("--split", default=None, metavar="TRAIN,VAL,TEST",
                     help="carve the validation (and test) faces from train with these "
                          "fractions, e.g. 0.8,0.1,0.1 (instead of the official held-out split)")
    run.add_argument("--background", action="store_true", help="queue for the worker and return")
    run.add_argument("--json", action="store_true")


def run(a) -> int:
    return {"list": _list, "show": _show, "run": _run}[a.action](a)


def _list(a) -> int:
    from faceml.training import recipes

    rows = [recipes.describe(r) for r in recipes.RECIPES]
    if a.json:
        print_json(rows)
        return 0
    for r in rows:
        claims = "; ".join(_claim_text(c) for c in r["claimed"]) or "—"
        print(f"{r['name']:<32} {r['notebook']:<14} {r['params']['total']:>11,} params  "
              f"{r['title']}  [claimed: {claims}]")
    return 0


def _claim_text(c: dict) -> str:
    where = f"{c['split']} {c['head'] + ' ' if c['head'] else ''}{c['metric']}"
    value = "not reported" if c["value"] is None else f"{c['value']:g}"
    fixed = f" (corrected: ≈{c['corrected']:g})" if c["corrected"] is not None else ""
    return f"{where} {value}{fixed}"


def _show(a) -> int:
    from faceml.flags import train_command
    from faceml.training import recipes

    r = recipes.get(a.name)
    cfg = r.config()
    size = recipes.sizes(r)
    out = {**recipes.describe(r, with_size=False),
           "params": {"total": size.total, "trainable": size.trainable},
           "config": cfg.canonical(), "command": train_command(cfg.canonical()),
           "notes": list(r.notes), "grid": r.grid, "evaluate": r.evaluate,
           "layers": size.table.to_dict(orient="records")}
    if a.json:
        print_json(out)
        return 0
    print(f"{r.name}: {r.title} ({recipes.NOTEBOOKS[r.notebook]})")
    for k, v in r.summary().items():
        print(f"  {k}: {v}")
    print(f"  parameters: {size.total:,} total, {size.trainable:,} trainable"
          + ("" if r.params is None else f" (notebook: {r.params[0]:,} / {r.params[1]:,})"))
    for c in out["claimed"]:
        print(f"  claimed: {_claim_text(c)}" + (f" — {c['note']}" if c["note"] else ""))
    for n in r.notes:
        print(f"  note: {n}")
    if r.grid:
        print("  grid: " + " × ".join(f"{k} {v}" for k, v in r.grid.items()))
    if r.evaluate:
        print(f"  evaluation step: {r.evaluate}")
    print(f"  command: {out['command']}")
    print(size.table.to_string(index=False))
    return 0


def _run(a) -> int:
    from faceml.cli.train import train
    from faceml.flags import _parse_floats
    from faceml.training import recipes

    r = recipes.get(a.name)
    split = _parse_floats(a.split, "--split") if a.split else None
    cfg = r.config(path=a.path, epochs=a.epochs, fraction=a.fraction, split=split)
    # an override that breaks the recipe: the architecture's own message, before the data
    cfg.validate(r.sizing_labels())
    recipes.require_data(cfg)
    if r.grid:
        return _sweep(r, cfg, a)
    return train(cfg, background=a.background, as_json=a.json)


def _sweep(r, cfg, a) -> int:
    from faceml import hosting
    from faceml.cli.sweep import _print_table, _rows, _wait
    from faceml.runs import RunStore
    from faceml.training import sweeps

    store = RunStore()
    sweep = sweeps.launch_grid(cfg, r.grid, store, start_worker=True, visitor=hosting.OPERATOR)
    new = sum(not c["reused"] for c in sweep["cells"])
    print(f"recipe {r.name}: sweep {sweep['id']}, {len(sweep['cells'])} runs, {new} new",
          file=sys.stderr)
    if not a.background:
        _wait(sweep, store, show=not a.json)
    rows = _rows(sweep, store)
    print_json(rows) if a.json else _print_table(rows, list(sweep["axes"]))
    return 1 if not a.background and any(x["state"] == "failed" for x in rows) else 0
