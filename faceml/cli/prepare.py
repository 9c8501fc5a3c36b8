"""``python -m faceml prepare DATASET …``: decode a dataset into the array cache."""

from __future__ import annotations

from faceml.cli.common import add_data_args, bar, data_options, print_json


def add_arguments(p) -> None:
    add_data_args(p, positional=True)
    p.add_argument("--json", action="store_true")


def run(a) -> int:
    from faceml.data.prepare import prepare

    opts = data_options(a)
    cb, close = bar(f"prepare {a.dataset}", not a.json)
    try:
        prep = prepare(opts, progress=cb)
    finally:
        close()
    counts = prep.frame["split"].value_counts().to_dict()
    summary = {"dataset": opts.dataset, "n": int(len(prep.frame)), "size": opts.size,
               "color": opts.color, "splits": {k: int(v) for k, v in counts.items()},
               "labels": list(prep.labels), "bad": len(prep.bad), "notes": prep.notes,
               "cache_hit": prep.cache_hit,
               "seconds": round(prep.seconds, 3), "warnings": prep.warnings}
    if a.json:
        print_json(summary)
    else:
        print(f"{opts.dataset}: {summary['n']} faces at {opts.size}x{opts.size} {opts.color} "
              f"(train {counts.get('train', 0)}, val {counts.get('val', 0)}, "
              f"test {counts.get('test', 0)}); {len(prep.bad)} skipped; "
              f"{'cache hit' if prep.cache_hit else 'decoded'} in {prep.seconds:.2f} s")
        for note in prep.notes:
            print(f"  {note}")
        for b in prep.bad[:10]:
            print(f"  skipped {b.source}: {b.reason}")
        if len(prep.bad) > 10:
            print(f"  … and {len(prep.bad) - 10} more")
        for w in prep.warnings:
            print(f"  warning: {w}")
    return 0
