"""Benchmark: UTKFace -> 64x64 RGB arrays. Naive PIL loop vs our loader, cold and warm cache.

    python bench/prepare.py [PATH] [--size 64] [--color rgb]

Prints one JSON line: {"n", "naive_s", "cold_s", "warm_s", "cold_vs_naive", ...}. All three are
measured in this process on the same files; the naive baseline decodes one file at a time with
Pillow (open, convert, resize), as the course notebooks did.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image


from faceml.data.cache import ArrayCache  # noqa: E402
from faceml.data.prepare import PrepOptions, prepare  # noqa: E402


def naive(paths: list[Path], size: int, color: str) -> np.ndarray:
    mode = "RGB" if color == "rgb" else "L"
    out = []
    for p in paths:
        with Image.open(p) as img:
            out.append(np.asarray(img.convert(mode).resize((size, size))))
    return np.stack(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    shared = Path(__file__).resolve().parents[2] / "shared" / "data"
    ap.add_argument("path", nargs="?", default=str(shared / "utkface"))
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--color", default="rgb")
    a = ap.parse_args()
    if not Path(a.path).is_dir():
        print(json.dumps({"error": f"no UTKFace folder at {a.path}"}))
        sys.exit(2)
    opts = PrepOptions(dataset="utkface", path=a.path, size=a.size, color=a.color)
    with tempfile.TemporaryDirectory() as tmp:
        cache = ArrayCache(tmp)
        t = time.perf_counter()
        cold = prepare(opts, cache=cache)
        cold_s = time.perf_counter() - t
        t = time.perf_counter()
        warm = prepare(opts, cache=cache)
        warm_s = time.perf_counter() - t
        assert warm.cache_hit and not cold.cache_hit
    paths = [Path(a.path) / s for s in cold.frame["source"]]
    t = time.perf_counter()
    base = naive(paths, a.size, a.color)
    naive_s = time.perf_counter() - t
    # the two pipelines decode the same faces (draft mode differs by a few grey levels)
    diff = float(np.abs(base.astype(int) - cold.x.reshape(base.shape).astype(int)).mean())
    print(json.dumps({"n": len(cold.frame), "naive_s": round(naive_s, 3),
                      "cold_s": round(cold_s, 3),
                      "warm_s": round(warm_s, 3), "cold_vs_naive": round(cold_s / naive_s, 3),
                      "skipped": len(cold.bad), "mean_abs_pixel_diff": round(diff, 2),
                      "cores": os.cpu_count(), "size": a.size, "color": a.color}))


if __name__ == "__main__":
    main()
