"""``python -m faceml``: the same library from a terminal or a GPU server.

Bad input exits with code 2 and one line ``error: …`` on stderr; runs made here show in the
dashboard when it points at the same runs folder (``FACEML_RUNS_DIR``).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys

from faceml.errors import FaceMLError

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


# Modules that contribute a subcommand through ``add_cli(subparsers)``; each keeps its
# module-level imports light (no Keras) so ``--help`` stays fast.
COMMAND_MODULES: list[str] = ["faceml.evaluate", "faceml.bundle", "faceml.predict",
                              "faceml.data.shrink"]


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's own errors: one line, exit 2
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(2)


def _bar(desc: str, enabled: bool = True):
    """A progress callback drawing a tqdm bar on stderr."""
    if not enabled:
        return None, lambda: None
    from tqdm import tqdm

    bars = []  # made on the first report, so an early error prints no empty bar

    def cb(done, total):
        if not bars:
            bars.append(tqdm(total=total, desc=desc, unit="img", file=sys.stderr, leave=False))
        bars[0].total = total
        bars[0].n = done
        bars[0].refresh()

    return cb, lambda: bars and bars[0].close()


def _print_json(obj) -> None:
    print(json.dumps(obj, indent=None, default=str))


def parse_kv(items: list[str] | None, flag: str) -> dict:
    """``["n=300", "name=x"]`` → ``{"n": 300, "name": "x"}`` (values read as JSON when they are)."""
    out = {}
    for kv in items or []:
        if "=" not in kv:
            raise FaceMLError(f"{flag} takes KEY=VALUE, not {kv!r}")
        k, v = kv.split("=", 1)
        try:
            out[k] = json.loads(v)
        except ValueError:
            out[k] = v
    return out


def _data_options(a) -> dict:
    from faceml.preprocessing import PrepOptions

    ds_opts = parse_kv(a.dataset_option, "--dataset-option")
    try:
        edges = [int(e) for e in a.age_edges.split(",")] if a.age_edges else None
    except ValueError:
        raise FaceMLError(
            f"--age-edges takes whole numbers like 18,40,65, not {a.age_edges!r}") from None
    return PrepOptions(dataset=a.dataset, path=a.path, dataset_options=ds_opts, size=a.size,
                       color=a.color, fraction=a.fraction, seed=a.data_seed, age=a.age,
                       age_edges=edges)


def _add_data_args(p, positional: bool) -> None:
    if positional:
        p.add_argument("dataset")
    else:
        p.add_argument("--dataset", default="synthetic")
    p.add_argument("--path", default=None, help="dataset location (file or folder)")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--color", choices=["gray", "rgb"], default="rgb")
    p.add_argument("--fraction", type=float, default=1.0, help="sample fraction, e.g. 0.05")
    p.add_argument("--age", default="years", help="years | decades | life6 | fairface9 | custom")
    p.add_argument("--age-edges", default=None, help="custom age bin edges, e.g. 18,40,65")
    p.add_argument("--data-seed", type=int, default=0, help="seed of sampling and split")
    p.add_argument("--dataset-option", action="append", metavar="KEY=VALUE",
                   help="adapter option, e.g. n=2000 for synthetic")


def cmd_datasets(a) -> int:
    from faceml import data, hosting

    rows = []
    for name in hosting.current().dataset_names():  # hosted: the operator's allow-list
        ad = data.get(name)
        p = ad.resolve_path(None)
        rows.append({"name": name, "title": ad.title, "needs_path": ad.needs_path,
                     "default_path": str(p) if p else None, "found": ad.found(None),
                     "labels": {k: v.to_dict() for k, v in ad.label_specs().items()}})
    if a.json:
        _print_json(rows)
    else:
        for r in rows:
            where = "built in" if not r["needs_path"] else (r["default_path"] or "path needed")
            print(f"{r['name']:<12} {'found' if r['found'] else 'absent':<7} {where}  "
                  f"labels: {', '.join(r['labels'])}")
    return 0


def cmd_prepare(a) -> int:
    from faceml.preprocessing import prepare

    opts = _data_options(a)
    cb, close = _bar(f"prepare {a.dataset}", not a.json)
    try:
        prep = prepare(opts, progress=cb)
    finally:
        close()
    counts = prep.frame["split"].value_counts().to_dict()
    summary = {"dataset": opts.dataset, "n": int(len(prep.frame)), "size": opts.size,
               "color": opts.color, "splits": {k: int(v) for k, v in counts.items()},
               "labels": list(prep.labels), "bad": len(prep.bad), "cache_hit": prep.cache_hit,
               "seconds": round(prep.seconds, 3), "warnings": prep.warnings}
    if a.json:
        _print_json(summary)
    else:
        print(f"{opts.dataset}: {summary['n']} faces at {opts.size}x{opts.size} {opts.color} "
              f"(train {counts.get('train', 0)}, val {counts.get('val', 0)}, "
              f"test {counts.get('test', 0)}); {len(prep.bad)} skipped; "
              f"{'cache hit' if prep.cache_hit else 'decoded'} in {prep.seconds:.2f} s")
        for b in prep.bad[:10]:
            print(f"  skipped {b.source}: {b.reason}")
        if len(prep.bad) > 10:
            print(f"  … and {len(prep.bad) - 10} more")
        for w in prep.warnings:
            print(f"  warning: {w}")
    return 0


def _train_config(a):
    from faceml.training import TrainConfig

    params = parse_kv(a.param, "--param")
    weights = {}
    for kv in (a.head_weights.split(",") if a.head_weights else []):
        k, _, v = kv.partition("=")
        try:
            weights[k] = float(v)
        except ValueError:
            raise FaceMLError(f"--head-weights takes HEAD=WEIGHT,…; not {kv!r}") from None
    heads = [h for h in (a.heads or "").split(",") if h]
    return TrainConfig(data=_data_options(a), arch=a.arch, arch_params=params, heads=heads,
                       head_weights=weights, age_loss=a.age_loss, class_weights=a.class_weights,
                       optimizer=a.optimizer, lr=a.lr, schedule=a.schedule,
                       batch_size=a.batch_size, epochs=a.epochs, early_stopping=a.early_stopping,
                       augmentation=[x for x in (a.augment or "").split(",") if x],
                       seed=a.seed, mixed_precision=a.mixed_precision)


def cmd_train(a) -> int:
    from faceml import hosting, jobs
    from faceml.runs import RunStore
    from faceml.training import train_run

    cfg = _train_config(a)
    store = RunStore()
    run, new = jobs.submit(cfg, store, again=a.again, start_worker=False,
                           visitor=hosting.OPERATOR)
    state = run.status().get("state")
    if not new and state in ("stopped", "failed") and a.resume:
        jobs.resume(run, store) if a.background else run.set_status(state="queued")
        new = True
    if new and a.background:
        jobs.ensure_worker(store)
    elif new:
        hosting.current().yield_to_visitors()  # hosted: the visitors' pages come first
        cb, close = _bar("prepare data", not a.json)
        try:
            train_run(run, progress=cb)
        finally:
            close()
    st = run.status()
    if a.json:
        _print_json({"run_id": run.id, "cached": not new, "status": st.get("state"),
                     "reason": st.get("reason", ""), "metrics": run.metrics()})
    else:
        print(run.id)
        if not new:
            print(f"(cached: this configuration already ran; status {st.get('state')})",
                  file=sys.stderr)
        elif st.get("state") == "failed":
            print(f"run failed: {st.get('reason')}", file=sys.stderr)
    return 1 if st.get("state") == "failed" else 0


def cmd_runs(a) -> int:
    from faceml.runs import RunStore

    table = RunStore().table()
    if a.json:
        _print_json(table.to_dict(orient="records"))
    elif table.empty:
        print("no runs yet")
    else:
        cols = [c for c in ("run_id", "state", "dataset", "arch", "heads", "epochs_done",
                            "sec_per_epoch", "reason") if c in table]
        print(table[cols].to_string(index=False))
    return 0


def cmd_worker(a) -> int:
    from faceml import hosting
    from faceml.jobs import work

    hosting.current().yield_to_visitors()  # hosted: the visitors' pages come first
    work(idle_exit=a.idle_exit, wait=a.wait)
    return 0


def cmd_stop(a) -> int:
    from faceml import hosting, jobs
    from faceml.runs import RunStore

    jobs.stop(RunStore().get(a.run_id), hosting.OPERATOR)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m faceml", description="FaceML Studio from the command line")
    sub = p.add_subparsers(dest="cmd", required=True, parser_class=_Parser)

    s = sub.add_parser("datasets", help="list dataset adapters and which are on disk")
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=cmd_datasets)

    s = sub.add_parser("prepare", help="decode a dataset into the array cache")
    _add_data_args(s, positional=True)
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=cmd_prepare)

    s = sub.add_parser("train", help="train a model (cached: a known config returns its run)")
    _add_data_args(s, positional=False)
    s.add_argument("--arch", default="default_cnn")
    s.add_argument("--param", action="append", metavar="KEY=VALUE", help="architecture parameter")
    s.add_argument("--heads", default="", help="labels to predict, e.g. gender,race,age")
    s.add_argument("--head-weights", default="", help="loss weights, e.g. age=0.1")
    s.add_argument("--age-loss", choices=["mae", "huber"], default="mae")
    s.add_argument("--class-weights", action="store_true", help="balance classes")
    s.add_argument("--optimizer", default="adam", help="adam | adamw | sgd | rmsprop")
    s.add_argument("--lr", type=float, default=1e-3)
    s.add_argument("--schedule", default="constant", help="constant | cosine | plateau")
    s.add_argument("--batch-size", type=int, default=64)
    s.add_argument("--epochs", type=int, default=10)
    s.add_argument("--early-stopping", type=int, default=0, metavar="PATIENCE")
    s.add_argument("--augment", default="", help="flip,rotation,zoom,contrast")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--mixed-precision", action="store_true")
    s.add_argument("--again", action="store_true", help="train again even if cached")
    s.add_argument("--resume", action="store_true", help="continue a stopped/crashed run")
    s.add_argument("--background", action="store_true", help="queue for the worker and return")
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=cmd_train)

    s = sub.add_parser("runs", help="list runs")
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=cmd_runs)

    s = sub.add_parser("stop", help="stop a queued or running run")
    s.add_argument("run_id")
    s.set_defaults(fn=cmd_stop)

    s = sub.add_parser("worker", help="train queued runs (started by the app)")
    s.add_argument("--idle-exit", type=float, default=2.0)
    s.add_argument("--wait", type=float, default=0.0, help="seconds to wait for the lock")
    s.set_defaults(fn=cmd_worker)

    for mod in COMMAND_MODULES:  # each adds its subcommand: module.add_cli(sub)
        importlib.import_module(mod).add_cli(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    a = parser.parse_args(argv)
    try:
        return a.fn(a)
    except FaceMLError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
