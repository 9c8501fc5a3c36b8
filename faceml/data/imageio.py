"""Decoding images into model pixels: the one place where size and colour are applied.

:func:`to_pixels` is used by every dataset adapter, by cross-dataset evaluation and by the
Predict page, so a face is turned into an array the same way everywhere.
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageOps, UnidentifiedImageError

from faceml.data.base import NATIVE_BOX, BadItem, DatasetAdapter, Progress, Scan, check_color
from faceml.errors import DataError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")

# Refuse absurd images before decoding them (Pillow raises DecompressionBombError above 2x this).
Image.MAX_IMAGE_PIXELS = 40_000_000


def is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_SUFFIXES)


def face_crop(img: Image.Image, box: tuple[float, float]) -> Image.Image:
    """The square ``box = (side, down)`` of ``img`` (an adapter's
    :attr:`~faceml.data.base.DatasetAdapter.face_box`): ``side`` times the shorter side, centred,
    moved ``down`` times its side below the centre and kept inside the image."""
    side_f, down = (float(v) for v in box)
    if (side_f, down) == NATIVE_BOX:
        return img
    w, h = img.size
    side = max(1, int(round(min(w, h) * min(side_f, 1.0))))
    x = int(round((w - side) / 2))
    y = int(round((h - side) / 2 + down * side))
    y = min(max(y, 0), h - side)
    return img.crop((x, y, x + side, y + side))


def to_pixels(img: Image.Image, size: int, color: str,
              face_box: tuple[float, float] = NATIVE_BOX) -> np.ndarray:
    """A PIL image → uint8 ``(size, size, c)``: the face box (:func:`face_crop`; default the
    whole image), centre-crop to square, bilinear resize, colour.

    Gray uses Pillow's ITU-R 601-2 luma ("L"); any mode (palette, CMYK, 16-bit, alpha) is
    converted first, so every source gives the same kind of array.
    """
    img = face_crop(img, face_box)
    channels = check_color(color)
    mode = "L" if channels == 1 else "RGB"
    if img.mode not in ("L", "RGB"):
        if img.mode in ("I;16", "I;16B", "I;16L", "I"):
            arr = np.asarray(img, dtype=np.float64)
            top = arr.max() if arr.size and arr.max() > 255 else 255.0
            img = Image.fromarray((arr * (255.0 / top)).clip(0, 255).astype(np.uint8), "L")
        elif img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
            img = img.convert("RGBA")
            bg = Image.new("RGBA", img.size, (255, 255, 255, 255))
            img = Image.alpha_composite(bg, img)
        img = img.convert("RGB")
    if img.mode != mode:
        img = img.convert(mode)
    if img.size != (size, size):
        img = ImageOps.fit(img, (size, size), method=Image.Resampling.BILINEAR)
    arr = np.asarray(img, dtype=np.uint8)
    return arr[..., None] if channels == 1 else arr


def open_image(source: str | Path | bytes, size: int | None = None, color: str = "rgb",
               exif: bool = False) -> Image.Image:
    """Open and fully decode an image, using JPEG draft mode when a target size is known.

    Raises :class:`DataError` with a clear reason for anything that is not a readable image.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            fp = io.BytesIO(source) if isinstance(source, bytes | bytearray) else source
            img = Image.open(fp)
            if getattr(img, "n_frames", 1) > 1:
                img.seek(0)
            if size is not None and img.format == "JPEG":
                img.draft("L" if color == "gray" else "RGB", (size, size))
            img.load()
            if exif:
                img = ImageOps.exif_transpose(img)
            return img
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise DataError(f"image too large to decode safely ({e})") from None
    except FileNotFoundError:
        raise DataError(
            "image file is missing (moved or deleted since the dataset was scanned)") from None
    except UnidentifiedImageError:
        raise DataError("not an image file (or an image format Pillow cannot read)") from None
    except OSError as e:  # truncated JPEG, broken PNG, zero bytes...
        raise DataError(f"image is damaged or truncated ({e})") from None
    except (ValueError, SyntaxError, EOFError) as e:
        raise DataError(f"image cannot be decoded ({e})") from None


def load_pixels(source: str | Path | bytes, size: int, color: str,
                face_box: tuple[float, float] = NATIVE_BOX) -> np.ndarray:
    draft = size if tuple(face_box) == NATIVE_BOX else None  # a crop wants the full pixels
    return to_pixels(open_image(source, draft, color), size, color, face_box)


def read_files(paths: Sequence[Path], size: int, color: str, progress: Progress | None = None,
               names: Sequence[str] | None = None, workers: int | None = None,
               chunk: int = 256, face_box: tuple[float, float] = NATIVE_BOX
               ) -> tuple[np.ndarray, list[BadItem]]:
    """Decode many image files in parallel (Pillow releases the GIL while decoding and resizing).

    Returns ``(pixels, bad)``: damaged files are reported in ``bad`` (by ``names`` when given,
    else by path) and their rows are left at zero.
    """
    channels = check_color(color)
    n = len(paths)
    out = np.zeros((n, size, size, channels), dtype=np.uint8)
    bad: list[BadItem] = []
    names = [str(p) for p in paths] if names is None else list(names)
    workers = workers or min(8, (os.cpu_count() or 1) * 2)

    def work(lo: int) -> list[BadItem]:
        errs = []
        for i in range(lo, min(lo + chunk, n)):
            try:
                out[i] = load_pixels(paths[i], size, color, face_box)
            except DataError as e:
                errs.append(BadItem(names[i], str(e)))
        return errs

    done = 0
    if progress:
        progress(0, n)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for errs in pool.map(work, range(0, n, chunk)):
            bad.extend(errs)
            done = min(done + chunk, n)
            if progress:
                progress(done, n)
    return out, bad


def map_progress(progress: Progress | None, lo: float, hi: float) -> Callable[[int, int], None]:
    """A progress callback that reports into the ``[lo, hi]`` fraction of a larger one."""

    def inner(done: int, total: int) -> None:
        if progress:
            frac = lo + (hi - lo) * (done / total if total else 1.0)
            progress(int(frac * 1000), 1000)

    return inner


class FileAdapter(DatasetAdapter):
    """An adapter whose scan lists image files (``_path``, named by ``source``): reading them
    is the same for all of them."""

    def read(self, scan: Scan, rows: pd.DataFrame, size: int, color: str,
             progress: Progress | None = None, face_box: tuple[float, float] = NATIVE_BOX
             ) -> tuple[np.ndarray, list[BadItem]]:
        return read_files(list(rows["_path"]), size, color, progress,
                          names=list(rows["source"]), face_box=face_box)
