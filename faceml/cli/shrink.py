"""``python -m faceml shrink [--dataset fairface] --path ORIGINAL --out COPY``: a copy at model
size (UTKFace or FairFace)."""

from __future__ import annotations

from faceml.cli.common import bar


def add_arguments(s) -> None:
    s.add_argument("--dataset", default="utkface", help="utkface or fairface")
    s.add_argument("--path", required=True, help="the original folder")
    s.add_argument("--out", required=True, help="the folder to write (same file names)")
    s.add_argument("--size", type=int, default=64)
    s.add_argument("--color", default="rgb", choices=["rgb", "gray"])
    s.add_argument("--quality", type=int, default=95, help="JPEG quality")


def run(a) -> int:
    from faceml.data.shrink import shrink

    cb, close = bar("shrink")
    try:
        r = shrink(a.path, a.out, a.size, a.color, dataset=a.dataset, quality=a.quality,
                   progress=cb)
    finally:
        close()
    for name, reason in r["skipped"]:
        print(f"skipped {name}: {reason}")
    print(f"{r['written']} faces written to {r['out']} at {r['size']} px "
          f"({r['bytes'] / 1e6:.1f} MB)")
    return 0
