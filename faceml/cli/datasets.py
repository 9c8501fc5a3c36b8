"""``python -m faceml datasets``: the dataset adapters and which are on disk."""

from __future__ import annotations

from faceml.cli.common import print_json


def add_arguments(p) -> None:
    p.add_argument("--json", action="store_true")


def run(a) -> int:
    from faceml import data, hosting

    rows = []
    for name in hosting.current().dataset_names():  # hosted: the operator's allow-list
        ad = data.get(name)
        p = ad.resolve_path(None)
        rows.append({"name": name, "title": ad.title, "needs_path": ad.needs_path,
                     "default_path": str(p) if p else None, "found": ad.found(None),
                     "labels": {k: v.to_dict() for k, v in ad.label_specs().items()}})
    if a.json:
        print_json(rows)
    else:
        for r in rows:
            where = "built in" if not r["needs_path"] else (r["default_path"] or "path needed")
            print(f"{r['name']:<12} {'found' if r['found'] else 'absent':<7} {where}  "
                  f"labels: {', '.join(r['labels'])}")
    return 0
