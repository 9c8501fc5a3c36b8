"""A small copy of a UTKFace folder: the same file names, each face already at model size.

    python -m faceml shrink --path ../shared/data/utkface --size 64 --out .data/utkface64

Every face goes through the training pipeline's own decode (:func:`faceml.data.imageio.read_files`:
centre crop, bilinear resize) and is written as a JPEG of that size, so training on the copy
at the same size and colour sees the same pixels up to JPEG rounding, and the seeded split is
the same (it depends on the names and labels only). Made for carrying UTKFace to a GPU server
(20k faces at 64 px are ~40 MB instead of ~150 MB); the bundled model's card names both steps.
Malformed names are reported and skipped, as the adapter does; nothing else is copied.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image

from faceml.io import atomic_file
from faceml.errors import ConfigError, DataError

SHRINKABLE = ("utkface",)  # adapters whose labels live in the file name


def shrink(path: str | Path, out: str | Path, size: int, color: str = "rgb", *,
           dataset: str = "utkface", quality: int = 95, progress=None) -> dict:
    """Write each face of ``path`` at ``size`` into ``out``; returns counts and skipped names."""
    from faceml import data as datasets
    from faceml.data.imageio import read_files

    if dataset not in SHRINKABLE:
        raise ConfigError(f"shrink works on {', '.join(SHRINKABLE)} (labels in the file name), "
                          f"not {dataset!r}")
    if not 8 <= int(size) <= 512:
        raise ConfigError(f"size must be between 8 and 512 pixels, not {size}")
    if not 1 <= int(quality) <= 100:
        raise ConfigError(f"JPEG quality must be 1-100, not {quality}")
    adapter = datasets.get(dataset)
    scan = adapter.scan(path)
    out = Path(out)
    if out.resolve() == Path(scan.path).resolve():
        raise ConfigError("the copy must go to another folder than the original")
    out.mkdir(parents=True, exist_ok=True)
    names = list(scan.frame["source"])
    pixels, bad = read_files(list(scan.frame["_path"]), int(size), color, progress, names=names)
    broken = {b.source for b in bad}
    mode = "L" if pixels.shape[-1] == 1 else "RGB"

    def write(i: int) -> None:
        if names[i] in broken:
            return
        target = out / Path(names[i]).name  # names come from a directory listing, never a user
        img = Image.fromarray(pixels[i].squeeze(-1) if mode == "L" else pixels[i], mode)
        with atomic_file(target) as tmp:
            img.save(tmp, format="JPEG", quality=int(quality), subsampling=0)

    with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 1) * 2)) as pool:
        list(pool.map(write, range(len(names))))
    skipped = [(b.source, b.reason) for b in [*scan.bad, *bad]]
    if len(names) == len(broken):
        raise DataError(f"{dataset}: no face in {scan.path} could be decoded")
    return {"written": len(names) - len(broken), "skipped": skipped, "out": str(out),
            "bytes": sum(f.stat().st_size for f in out.iterdir() if f.is_file())}

