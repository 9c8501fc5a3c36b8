"""Big camera-like photos made in the test (nothing is committed): skimage's astronaut on a
large canvas, and the shared portraits upscaled to 20–45 megapixels as progressive JPEGs."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

# the astronaut's face in skimage.data.astronaut() (512×512), by eye: x 175–275, y 65–190
ASTRO_FACE = (175, 65, 275, 190)


def astronaut(face_scale: float = 1.0) -> Image.Image:
    from skimage import data

    img = Image.fromarray(data.astronaut())
    if face_scale != 1.0:
        side = round(512 * face_scale)
        img = img.resize((side, side), Image.Resampling.BILINEAR)
    return img


def canvas(size: tuple[int, int], side: int, at: tuple[int, int] | None = None,
           background=(120, 118, 110)) -> tuple[Image.Image, tuple[float, float, float, float]]:
    """The astronaut scaled to ``side`` px on a ``size`` canvas (centred unless ``at``);
    returns the image and the face region (x0, y0, x1, y1) in its pixels."""
    w, h = size
    img = Image.new("RGB", size, background)
    x, y = at if at is not None else ((w - side) // 2, (h - side) // 2)
    img.paste(astronaut(side / 512), (x, y))
    k = side / 512
    face = (x + ASTRO_FACE[0] * k, y + ASTRO_FACE[1] * k, x + ASTRO_FACE[2] * k,
            y + ASTRO_FACE[3] * k)
    return img, face


def jpeg(img: Image.Image, progressive: bool = False, quality: int = 90,
         orientation: int | None = None) -> bytes:
    buf = io.BytesIO()
    kw = {}
    if orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = orientation
        kw["exif"] = exif
    img.save(buf, "JPEG", quality=quality, progressive=progressive, **kw)
    return buf.getvalue()


def upscaled(path: Path, megapixels: float, noise: float = 0.0, seed: int = 0) -> bytes:
    """A shared portrait upscaled (bicubic) to about ``megapixels``, a progressive JPEG of
    quality 90; ``noise`` (a standard deviation in grey levels) adds sensor-like noise so that
    it compresses and decodes like a camera photo (an upscaled photo is unusually smooth)."""
    img = Image.open(path).convert("RGB")
    k = (megapixels * 1e6 / (img.width * img.height)) ** 0.5
    big = img.resize((round(img.width * k), round(img.height * k)), Image.Resampling.BICUBIC)
    if noise:
        arr = np.asarray(big).astype(np.int16)
        rng = np.random.default_rng(seed)
        arr += rng.normal(0, noise, arr.shape[:2] + (1,)).astype(np.int16)
        big = Image.fromarray(arr.clip(0, 255).astype(np.uint8))
    return jpeg(big, progressive=True, quality=90)


PORTRAIT_MEGAPIXELS = (20, 26, 33, 40, 45)  # one size per shared portrait, sorted by name


def portraits(photos_dir: Path, noise: float = 0.0) -> list[tuple[str, bytes]]:
    files = sorted(photos_dir.glob("*.jpg"))
    return [(f.name, upscaled(f, mp, noise)) for f, mp in zip(files, PORTRAIT_MEGAPIXELS)]
