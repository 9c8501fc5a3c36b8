"""Predict on a photo: decode it safely, find the faces, and answer every head of a model.

    photo = read_photo(data)                               # bytes → Photo (in memory)
    predictor = Predictor.from_run(RunStore().get(run_id))  # or Predictor.from_file(path)
    faces = predict_faces(photo, predictor, FaceDetector()) # [] when no face is found
    faces[0].crop                  # the uint8 pixels the model got (its size and colour)
    faces[0].heads["age"].years, faces[0].heads["age"].interval

Every function that takes a photo also takes a decoded PIL image (``read_upload(data)``).

What the model sees
-------------------
A face's crop box (square, see :mod:`faceml.serving.detect`) is cut from the decoded RGB photo and
turned into pixels by :func:`faceml.data.imageio.to_pixels` with the model's own
``image_size`` and ``color`` (from its ``FacePreprocessing`` layer), exactly as its training
faces were; :meth:`Predictor.crop_as_model_sees` *is* that array, and it is what the page shows.
For a big JPEG the box is cut from the coarsest copy in which it still has at least the
model's input size (``CROP_DETAIL`` = 1.0 × 64 px for the bundled model): measured on the
shared portraits upscaled to 12–26 MP, such a crop differs from the crop of the full-size
decode by 0.1–1.0 grey levels on average (1–2 when the face just fills the model's input).

Decoding uploads (:func:`read_photo`)
-------------------------------------
Everything happens in memory; an uploaded file's name is never used. Only JPEG/MPO, PNG,
WebP, GIF and BMP content is decoded (whatever the extension says), by the format's own
Pillow class; an animated GIF gives its first frame; 16-bit images are scaled by their
maximum, transparency is composited on white and CMYK/palette/gray images are converted to
RGB (the same rules as ``to_pixels``); EXIF orientation is applied
(``ImageOps.exif_transpose``). Anything else is a :class:`~faceml.errors.DataError` with one
sentence in plain words — never Pillow's own text.

*Size limits, before any pixel is decoded.* A JPEG photo may have up to ``MAX_PHOTO_PIXELS``
(100 MP): it is decoded at reduced scale (below). Other formats are decoded at full size, so
they keep ``Image.MAX_IMAGE_PIXELS`` (40 MP, set in :mod:`faceml.data.imageio`). A header
claiming more (a 30000×30000 PNG, a PNG whose few kilobytes inflate to 64 MP) is refused
naming its size and the limit; so is a compressed PNG text chunk inflating past Pillow's
``MAX_TEXT_CHUNK`` (a decompression bomb).

*Reduced-scale JPEG decoding* (:class:`Photo`). A JPEG is first decoded at the smallest of
1/8, 1/4, 1/2 that keeps ``FIRST_SIDE`` (480 px) on its long side (libjpeg's DCT scaling,
Pillow's ``draft``): a 12–100 MP photo at 1/8, 354–1250 px. The detector works on that copy
(it needs at most 512 px), the page shows it downscaled, and a face is cut from it when it
has enough pixels there (for a 64 px model: a face of 512 px or more); otherwise the 1/4 or 1/2
copy (never more than ``MAX_DECODE_PIXELS`` = 25 MP) is decoded once for it. A progressive
JPEG — what most phones and editors write — spends most of its decoding time Huffman-decoding its AC
scans, which a 1/8 decode of the luma never uses: they are dropped before decoding (see
:func:`_dc_only`; the luma of the 1/8 copy is bit-for-bit Pillow's own). Measured with
``bench/predict.py --photos`` on the shared portraits upscaled to 12–45 MP as progressive
JPEGs with camera-like noise (2.1–5.6 MB), on the 2-core machine when quiet: Pillow's 1/8
draft decode takes 105–390 ms, without the AC scans 17–126 ms; the whole path (decode,
detect, crop, answer with the bundled model) 64–161 ms, median 109 ms (91–191 ms of CPU),
against 0.27–2.5 s when decoding at full size. libjpeg still holds the whole photo's
coefficients while it decodes a progressive JPEG (about 3 bytes a pixel: 150 MB for 48 MP),
a baseline JPEG only a few rows.

Age interval
------------
From the run's stored validation predictions (``predictions.csv``, split ``val``): the
residuals ``age_true - age_pred`` of the validation faces whose *predicted* age falls in the
same decade as this face's prediction give an 80 % interval (their 10th and 90th percentiles
added to the prediction, clipped at 0). With fewer than ``MIN_BUCKET`` = 30 such faces the
residuals of all validation faces are used (said in ``interval_note``); without stored
predictions (a bare ``.keras`` file) there is no interval. Only faces with an exact age count:
a model trained on several datasets has validation faces whose true age is a bin (FairFace's
``20-29``, stored as its midpoint, with the bin in ``age_bin`` / ``group_age_bin``); their
errors against a midpoint are not errors in years, so they are left out, and the note says how
many. For the rare-age warning such a face counts in its decade when its bin lies inside one.

Rare-group warning
------------------
Training labels are not stored with a run, so the reference distribution is the run's
*validation* labels (``{head}_true`` on split ``val`` of ``predictions.csv``): the split is a
random (stratified, seeded) sample of the same data, so its class shares estimate the training
shares. A face whose predicted class — or, for age in years, whose predicted decade — makes up
less than ``RARE_SHARE`` = 5 % of those faces gets a warning: the model saw few such faces, so
its answer is less reliable. A bundled model (``models/NAME.keras``) uses the predictions of
the run it was made from when that run is still in the run store (its id is in the model's
metadata), or ``models/NAME.predictions.csv`` when one is shipped beside it.

A weak detection (see :mod:`faceml.serving.detect`) also gets a warning.

``python -m faceml predict IMAGE… [--model FILE.keras | --run RUN_ID] [--json]`` is
:mod:`faceml.cli.predict`. Module-level imports stay light (no Keras, no OpenCV).
"""

from __future__ import annotations

import io
import math
import re
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import ExifTags, Image, ImageOps

from faceml import paths
from faceml.errors import DataError, FaceMLError
from faceml.data.heads import HeadSpec
from faceml.modeling import kinds
from faceml.modeling.modelio import named_outputs

if TYPE_CHECKING:
    import pandas as pd

    from faceml.serving.detect import Detection, FaceDetector
    from faceml.runs import Run

__all__ = ["ALLOWED_FORMATS", "FaceResult", "HeadAnswer", "Photo", "Predictor", "Reference",
           "as_rgb", "bundled_models", "default_model", "find_faces", "predict_all",
           "predict_box", "predict_faces", "read_photo", "read_upload", "too_small",
           "UPLOAD_TYPES"]

ALLOWED_FORMATS = ("JPEG", "MPO", "PNG", "WEBP", "GIF", "BMP")
UPLOAD_TYPES = ["jpg", "jpeg", "png", "webp"]
RARE_SHARE = 0.05
MIN_BUCKET = 30
INTERVAL_Q = (10.0, 90.0)
MAX_PHOTO_PIXELS = 100_000_000  # a JPEG photo (decoded at reduced scale); others: 40 MP
MAX_DECODE_PIXELS = 25_000_000  # the largest copy of a JPEG ever decoded
FIRST_SIDE = 480  # a JPEG's first copy: the smallest scale with at least this long side
DETECT_SIDE = 512  # the detector's second pass works at this long side
CROP_DETAIL = 1.0  # a face is cut from a copy where it has >= this × the model's input pixels


# --- decoding -------------------------------------------------------------------------------------

_MAGIC = ((b"\xff\xd8\xff", "JPEG"), (b"\x89PNG\r\n\x1a\n", "PNG"), (b"GIF87a", "GIF"),
          (b"GIF89a", "GIF"), (b"BM", "BMP"))


def _sniff(data: bytes) -> str | None:
    """The format Pillow sees in the header (nothing decoded), or None when it sees none."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as probe:
                return probe.format
    except Exception:  # noqa: BLE001 - the caller gives the precise reason
        return None


def _format_of(data: bytes) -> str | None:
    for magic, fmt in _MAGIC:
        if data.startswith(magic):
            return fmt
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


def _header(data: bytes, fmt: str) -> Image.Image:
    """The format's own Pillow class reading the header only (no pixels): unlike
    ``Image.open`` it applies no pixel limit, so :func:`read_photo` applies its own."""
    from PIL import BmpImagePlugin, GifImagePlugin, JpegImagePlugin, PngImagePlugin

    if fmt == "WEBP":
        from PIL import WebPImagePlugin

        cls = WebPImagePlugin.WebPImageFile
    else:
        cls = {"JPEG": JpegImagePlugin.JpegImageFile, "PNG": PngImagePlugin.PngImageFile,
               "GIF": GifImagePlugin.GifImageFile, "BMP": BmpImagePlugin.BmpImageFile}[fmt]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cls(io.BytesIO(data))


def _plain(e: BaseException) -> DataError:
    """A Pillow/zlib exception while reading a stranger's file → one sentence in plain words."""
    text = str(e)
    if isinstance(e, MemoryError):
        return DataError("the image is too large to decode in memory")
    if "Decompressed data too large" in text or "MAX_TEXT_MEMORY" in text:
        return DataError("the image carries compressed data that inflates far beyond its size "
                         "(a decompression bomb): refused")
    if isinstance(e, (OSError, EOFError)) or "truncated" in text:
        return DataError("the image is damaged or truncated: its pixels cannot all be read")
    return DataError("the image is damaged: its file does not follow the "
                     f"{'format it claims' if text else 'image format'}")


def _too_large(w: int, h: int, fmt: str) -> DataError:
    limit = MAX_PHOTO_PIXELS if fmt == "JPEG" else int(Image.MAX_IMAGE_PIXELS or 0)
    what = ("a JPEG photo" if fmt == "JPEG" else
            f"a {fmt} image (JPEG photos may have {MAX_PHOTO_PIXELS / 1e6:.0f})")
    return DataError(f"the image is {w}×{h} pixels ({w * h / 1e6:,.0f} megapixels): too large "
                     f"to open safely; the limit for {what} is {limit / 1e6:.0f} megapixels")


_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")  # the end of a scan's entropy-coded data


def _dc_only(data: bytes) -> bytes | None:
    """A progressive JPEG without its AC scans, for decoding at 1/8 scale; None when the file
    is not a complete progressive gray/YCbCr JPEG (then it is decoded as it is).

    At 1/8 scale libjpeg makes each luma pixel from its block's DC coefficient alone, but a
    progressive file's AC scans are still Huffman-decoded first, which is most of its decoding
    time. They are dropped, and the AC entries of the quantisation tables set to zero so that
    libjpeg does not "smooth" the blocks it then believes unfinished. The luma of the 1/8 copy
    is bit-for-bit Pillow's own; the chroma of a 4:2:0 photo (which libjpeg would make from
    each chroma block's 2×2 lowest frequencies) becomes one value per 2×2 pixels of the copy
    (on the shared portraits at 26–33 MP: 0.2–0.3 grey levels from Pillow's on average)."""
    n, pos = len(data), 2
    segs: list[tuple[int, int, str, Any]] = []  # (start, end, kind, info)
    comps = None
    while True:
        if pos + 2 > n or data[pos] != 0xFF:
            return None
        m = data[pos + 1]
        if m == 0xFF:  # fill byte
            pos += 1
            continue
        if m == 0xD9:  # EOI
            break
        if pos + 4 > n:
            return None
        end = pos + 2 + int.from_bytes(data[pos + 2:pos + 4], "big")
        if end > n:
            return None
        if m in _SOF:
            if m != 0xC2 or comps is not None:
                return None
            nc = data[pos + 9]
            comps = [(data[pos + 10 + 3 * i], data[pos + 11 + 3 * i], data[pos + 12 + 3 * i])
                     for i in range(nc)]  # (id, sampling, quant table)
        if m == 0xDA:
            if comps is None:
                return None
            ns = data[pos + 4]
            ids = tuple(data[pos + 5:pos + 5 + 2 * ns:2])
            found = _MARKER.search(data, end)
            if found is None:
                return None
            segs.append((pos, found.start(), "scan", (ids, data[pos + 5 + 2 * ns])))
            pos = found.start()
            continue
        segs.append((pos, end, "dqt" if m == 0xDB else "", None))
        pos = end
    if not comps or len(comps) not in (1, 3) or any(
            c[1] >> 4 > comps[0][1] >> 4 or c[1] & 15 > comps[0][1] & 15 for c in comps):
        return None  # CMYK, or a luma that is not the most sampled: decode as it is
    out, dropped = [data[:2]], 0
    for start, end, kind, info in segs:
        if kind == "scan" and info[1] > 0:  # spectral selection from 1: an AC scan
            dropped += 1
            continue
        seg = data[start:end]
        if kind == "dqt":
            seg, q = bytearray(seg), 4
            while q < len(seg):
                step = 2 if seg[q] >> 4 else 1  # 16-bit or 8-bit entries
                seg[q + 1 + step:q + 1 + 64 * step] = bytes(63 * step)
                q += 1 + 64 * step
            seg = bytes(seg)
        out.append(seg)
    return b"".join(out) + b"\xff\xd9" if dropped else None


def _jpeg_decode(data: bytes, factor: int) -> Image.Image:
    """JPEG bytes decoded at ``1/factor`` scale (1, 2, 4 or 8; libjpeg's DCT scaling)."""
    from PIL import JpegImagePlugin

    stripped = _dc_only(data) if factor == 8 else None
    for stream in (stripped, data) if stripped else (data,):
        im = JpegImagePlugin.JpegImageFile(io.BytesIO(stream))
        w, h = im.size
        im.draft(None, (max(1, w // factor), max(1, h // factor)))
        try:
            im.load()
            return im
        except Exception:  # noqa: BLE001 - the stripped stream failed: decode the file itself
            if stream is data:
                raise
    raise AssertionError("unreachable")


def _oriented(img: Image.Image, turn: int) -> Image.Image:
    """EXIF orientation (``ImageOps.exif_transpose``), then a turn, then RGB."""
    from faceml.serving.detect import TRANSPOSE

    ImageOps.exif_transpose(img, in_place=True)
    img = as_rgb(img)
    return img.transpose(TRANSPOSE[turn]) if turn else img


def as_rgb(img: Image.Image) -> Image.Image:
    """Any mode → RGB with :func:`faceml.data.imageio.to_pixels`' rules (16-bit scaled by its
    maximum, transparency on white, CMYK/palette/gray converted)."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = arr.max() if arr.size and arr.max() > 255 else 255.0
        img = Image.fromarray((arr * (255.0 / top)).clip(0, 255).astype(np.uint8), "L")
    elif img.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (
            img.mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
        bg = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(bg, img)
    return img.convert("RGB")


class Photo:
    """A photo as the Predict path uses it: decoded at reduced scale, in its upright frame.

    ``width``/``height`` are the photo's full size after EXIF orientation (and ``turn``), and
    every box is in those pixels. A JPEG is decoded at 1/8, 1/4, 1/2 or full scale only when
    something needs that much detail, each copy at most once (see the module docstring); any
    other format is decoded at full size (it is at most ``Image.MAX_IMAGE_PIXELS``)."""

    def __init__(self, width: int, height: int, fmt: str, levels: dict[int, Image.Image],
                 data: bytes | None = None, turn: int = 0):
        self.width, self.height, self.format = int(width), int(height), fmt
        self.turn = turn
        self._levels = levels  # reduction factor -> RGB image in this frame
        self._data = data  # JPEG bytes to decode more detail from; None: the levels are all
        self._turned: dict[int, Photo] = {}

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height

    @classmethod
    def from_image(cls, img: Image.Image) -> Photo:
        """A decoded PIL image as a photo (its only copy is itself, converted to RGB)."""
        if isinstance(img, Photo):
            return img
        rgb = as_rgb(img)
        return cls(rgb.width, rgb.height, img.format or "", {1: rgb})

    # copies -------------------------------------------------------------------------------
    def factors(self) -> list[int]:
        """The reduction factors this photo can be had at, finest first."""
        if self._data is None:
            return sorted(self._levels)
        return [f for f in (1, 2, 4, 8)
                if self.width * self.height / (f * f) <= MAX_DECODE_PIXELS] or [8]

    def level(self, factor: int) -> Image.Image:
        """The photo reduced ``factor`` times (decoded now if it was not yet)."""
        if factor not in self._levels:
            if self._data is None:
                raise KeyError(factor)
            try:
                img = _jpeg_decode(self._data, factor)
            except Exception as e:  # noqa: BLE001 - decoded once already: unlikely, but plain
                raise _plain(e) from None
            self._levels[factor] = _oriented(img, self.turn)
        return self._levels[factor]

    def decoded(self) -> list[int]:
        return sorted(self._levels)

    def coarsest(self, min_side: int = 0) -> Image.Image:
        """The smallest copy decoded so far whose long side is at least ``min_side`` (else the
        largest): nothing new is decoded."""
        levels = [self._levels[f] for f in sorted(self._levels, reverse=True)]
        return next((im for im in levels if max(im.size) >= min_side), levels[-1])

    def _factor_for(self, side: float) -> int:
        """The coarsest factor at which ``side`` photo pixels are at least ``side`` / factor
        ≥ the wanted pixels (the finest possible when none is); decoded copies first."""
        ok = [f for f in self.factors() if side / f >= 1] or self.factors()[:1]
        best = max(ok)
        done = [f for f in self._levels if f <= best]
        return max(done) if done else best

    def region(self, box, pixels: int) -> Image.Image:
        """The ``(x, y, w, h)`` region cut from the coarsest copy where its shorter side still
        has at least ``pixels`` pixels (``CROP_DETAIL`` × the model's input)."""
        x, y, w, h = (int(v) for v in box)
        factor = self._factor_for(min(w, h) / max(1.0, float(pixels)))
        img = self.level(factor)
        if img.size == self.size:
            return img.crop((x, y, x + w, y + h))
        kx, ky = img.width / self.width, img.height / self.height
        x0, y0 = min(int(round(x * kx)), img.width - 1), min(int(round(y * ky)), img.height - 1)
        x1 = max(x0 + 1, min(img.width, int(round((x + w) * kx))))
        y1 = max(y0 + 1, min(img.height, int(round((y + h) * ky))))
        return img.crop((x0, y0, x1, y1))

    def preview(self, max_width: int, max_height: int | None = None) -> Image.Image:
        """A display copy fitting ``max_width × max_height`` from a copy already decoded (never
        enlarged, never the full-size photo unless the photo is that small)."""
        src = self.coarsest(max(max_width, max_height or 0))
        f = min(1.0, max_width / src.width, (max_height or src.height) / src.height)
        if f >= 1.0:
            return src.copy()
        return src.resize((max(1, round(src.width * f)), max(1, round(src.height * f))),
                          Image.Resampling.BILINEAR, reducing_gap=2.0)

    def detection_copy(self) -> Image.Image:
        """The copy the detector gets: the smallest decoded with a long side of 512 px (the
        detector reduces it to 256 and 512 px itself)."""
        return self.coarsest(DETECT_SIDE)

    def turned(self, turn: int) -> Photo:
        """This photo turned ``turn`` degrees counter-clockwise (0, 90, 180, 270) on top of its
        own turn; boxes of the result are in the turned frame."""
        from faceml.serving.detect import TRANSPOSE

        turn %= 360
        if turn == 0:
            return self
        if turn not in self._turned:
            w, h = (self.height, self.width) if turn in (90, 270) else self.size
            levels = {f: im.transpose(TRANSPOSE[turn]) for f, im in self._levels.items()}
            self._turned[turn] = Photo(w, h, self.format, levels, self._data,
                                       (self.turn + turn) % 360)
        return self._turned[turn]

    def image(self) -> Image.Image:
        """The photo as one RGB image: full size, or the finest copy allowed
        (``MAX_DECODE_PIXELS``) for a larger JPEG."""
        return self.level(self.factors()[0])


def read_photo(data: bytes, max_bytes: int | None = None) -> Photo:
    """Uploaded bytes → a :class:`Photo` (EXIF orientation applied), or a clear DataError.

    Nothing touches the disk and no file name is used; a JPEG is decoded at the smallest
    scale that still gives the detector and the page enough pixels (``FIRST_SIDE``)."""
    import faceml.data.imageio  # noqa: F401 - sets Image.MAX_IMAGE_PIXELS (other formats)

    if data is None or len(data) == 0:
        raise DataError("the file is empty (0 bytes): not an image")
    data = bytes(data)
    if max_bytes is not None and len(data) > max_bytes:
        raise DataError(f"the file is {len(data) / 1e6:.1f} MB; the limit is "
                        f"{max_bytes / 1e6:.0f} MB")
    fmt = _format_of(data)
    if fmt is None:
        seen = _sniff(data)
        if seen is not None and seen not in ALLOWED_FORMATS:
            raise DataError(f"{seen} images are not accepted: use a JPEG, PNG, WebP or GIF "
                            "photo")
        raise DataError("not an image file (or an image format Pillow cannot read): use a "
                        "JPEG, PNG, WebP or GIF photo")
    try:
        head = _header(data, fmt)
    except Exception as e:  # noqa: BLE001 - a stranger's file must never give a traceback
        raise _plain(e) from None
    w, h = head.size
    if w < 1 or h < 1:
        raise DataError("the image has no pixels")
    if w * h > (MAX_PHOTO_PIXELS if fmt == "JPEG" else (Image.MAX_IMAGE_PIXELS or w * h)):
        raise _too_large(w, h, fmt)
    try:
        if fmt == "JPEG":
            factor = next((f for f in (8, 4, 2) if max(w, h) / f >= FIRST_SIDE
                           and w * h / (f * f) <= MAX_DECODE_PIXELS), 1)
            img = _jpeg_decode(data, factor)
            if img.getexif().get(ExifTags.Base.Orientation, 1) in (5, 6, 7, 8):
                w, h = h, w  # EXIF turns it a quarter
            levels, keep = {factor: _oriented(img, 0)}, data
        else:
            if getattr(head, "n_frames", 1) > 1:
                head.seek(0)
            head.load()
            levels, keep = {1: _oriented(head, 0)}, None
            w, h = levels[1].size
    except FaceMLError:
        raise
    except Exception as e:  # noqa: BLE001 - a stranger's file must never give a traceback
        raise _plain(e) from None
    return Photo(w, h, fmt, levels, keep)


def read_upload(data: bytes, max_bytes: int | None = None) -> Image.Image:
    """Uploaded bytes → an RGB PIL image, EXIF orientation applied, or a clear DataError: the
    full-size image, or for a JPEG above ``MAX_DECODE_PIXELS`` its finest copy within it.

    Nothing touches the disk and no file name is used."""
    return read_photo(data, max_bytes).image()


def read_image_file(path: str | Path) -> Photo:
    """A local image file (the CLI) through :func:`read_photo`; errors name the file."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: no such image file")
    try:
        return read_photo(p.read_bytes())
    except FaceMLError as e:
        raise DataError(f"{p.name}: {e}") from None


# --- what a model's stored predictions tell -------------------------------------------------------

def _decade(years: float) -> int:
    return int(max(0.0, years) // 10)


def _decade_name(d: int) -> str:
    return f"{d * 10}–{d * 10 + 9}"


def _bin_decade(name) -> str | None:
    """The decade an age bin lies inside (``"20-29"``, ``"3-9"``), None when it spans more."""
    from faceml.data.ages import age_bin_range

    r = age_bin_range(str(name))
    if r is None or not math.isfinite(r[1]) or _decade(r[0]) != _decade(r[1]):
        return None
    return _decade_name(_decade(r[0]))


AGE_BIN_COLUMNS = ("age_bin", "group_age_bin")
"""Where a face's age bin is (a bundled model's CSV, a run's stored predictions): its true age
is the bin's midpoint, not an exact age."""


def age_bin_names(frame: pd.DataFrame) -> pd.Series | None:
    """Each row's age bin name (None: an exact age), or None when no row has one."""
    col = next((c for c in AGE_BIN_COLUMNS if c in frame.columns), None)
    if col is None:
        return None
    v = frame[col].astype(object)
    v = v.where(v.notna() & ~v.astype(str).isin(["", "nan", "None"]), None)
    return v if v.notna().any() else None


@dataclass
class Reference:
    """Validation residuals and label shares of one model (see the module docstring)."""

    source: str
    residuals: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    binned: dict[str, int] = field(default_factory=dict)
    """Per regression head: validation faces left out of its interval (an age bin, no exact age)."""

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, heads: list[HeadSpec], source: str) -> Reference:
        import pandas as pd

        val = frame[frame["split"].astype(str) == "val"] if "split" in frame else frame
        ref = cls(source=f"{source}, {len(val)} validation faces")
        for h in heads:
            t, p = f"{h.name}_true", f"{h.name}_pred"
            if t not in val:
                continue
            if h.kind == "regression":
                yt = pd.to_numeric(val[t], errors="coerce").to_numpy(float)
                yp = pd.to_numeric(val.get(p), errors="coerce").to_numpy(float) \
                    if p in val else np.full(len(yt), np.nan)
                bins = age_bin_names(val) if h.name == "age" else None
                binned = (bins.notna().to_numpy() if bins is not None
                          else np.zeros(len(yt), dtype=bool))
                ok = np.isfinite(yt) & np.isfinite(yp) & ~binned  # exact ages only
                ref.residuals[h.name] = (yp[ok], yt[ok] - yp[ok])
                if binned.any():
                    ref.binned[h.name] = int(binned.sum())
                decades = [_decade_name(_decade(v)) for v in yt[np.isfinite(yt) & ~binned]]
                if bins is not None:  # a bin inside one decade counts in it
                    decades += [d for d in map(_bin_decade, bins[binned]) if d is not None]
                dec = pd.Series(decades, dtype=object)
                ref.counts[h.name] = {str(k): int(v) for k, v in dec.value_counts().items()}
            else:
                vals = val[t].dropna().astype(str)
                ref.counts[h.name] = {c: int((vals == c).sum()) for c in h.classes}
        return ref

    def interval(self, head: str, years: float) -> tuple[tuple[float, float] | None, str]:
        """80 % interval for a predicted age (see the module docstring) and how it was made."""
        if head not in self.residuals or len(self.residuals[head][0]) < 5:
            return None, "no interval: this model has no stored validation predictions"
        pred, res = self.residuals[head]
        d = _decade(years)
        mask = np.floor(np.maximum(pred, 0) / 10).astype(int) == d
        if mask.sum() >= MIN_BUCKET:
            sel, note = res[mask], (f"80 % interval from the errors on {int(mask.sum())} "
                                    f"validation faces predicted {_decade_name(d)}")
        else:
            sel, note = res, (f"80 % interval from the errors on all {len(res)} validation "
                              f"faces (too few predicted {_decade_name(d)})")
        if self.binned.get(head):
            note += (f"; faces with an exact age only (the {self.binned[head]} whose age is a "
                     "bin, e.g. FairFace's, are left out)")
        lo, hi = np.percentile(sel, INTERVAL_Q)
        return (max(0.0, float(years + lo)), max(0.0, float(years + hi))), note

    def rare(self, head: HeadSpec, answer: HeadAnswer) -> str | None:
        """A warning when the predicted class (age: decade) is rare among the reference faces."""
        counts = self.counts.get(head.name)
        if not counts:
            return None
        total = sum(counts.values())
        if total == 0:
            return None
        if head.kind == "regression":
            if answer.years is None:
                return None
            key = _decade_name(_decade(answer.years))
            what = f"age {key}"
        else:
            key, what = answer.label, f"{head.name} “{answer.label}”"
        k = counts.get(key, 0)
        if k / total < RARE_SHARE:
            return (f"few faces like this in the model's data: {what} is {k} of {total} "
                    f"validation faces ({k / total:.1%}); this answer is less reliable")
        return None


def reference_for_run(run: Run) -> Reference | None:
    from faceml.evaluation.evaluate import run_heads, stored_predictions

    try:
        frame = stored_predictions(run)
        if frame is None:
            return None
        return Reference.from_frame(frame, run_heads(run, frame), f"run {run.id}")
    except FaceMLError:
        return None


def _reference_for_file(path: Path, meta: dict, heads: list[HeadSpec]) -> Reference | None:
    side = path.with_suffix(".predictions.csv")
    if side.is_file():
        from faceml.runs import read_predictions

        try:
            return Reference.from_frame(read_predictions(side, heads), heads, side.name)
        except (OSError, ValueError):
            return None
    run_id = meta.get("run_config")
    if isinstance(run_id, str) and run_id:
        from faceml.runs import RunStore

        try:
            return reference_for_run(RunStore().get(run_id))
        except FaceMLError:
            return None
    return None


# --- answers --------------------------------------------------------------------------------------

@dataclass
class HeadAnswer:
    name: str
    kind: str
    label: str | None = None  # categorical: the predicted class
    probs: dict[str, float] = field(default_factory=dict)  # every class (binary: both)
    years: float | None = None  # regression
    interval: tuple[float, float] | None = None
    interval_note: str = ""

    def to_dict(self) -> dict:
        d: dict[str, Any] = {"kind": self.kind}
        if self.kind == "regression":
            d.update(years=round(self.years, 2) if self.years is not None else None,
                     interval=[round(v, 2) for v in self.interval] if self.interval else None,
                     interval_note=self.interval_note)
        else:
            d.update(label=self.label, probs={k: round(v, 6) for k, v in self.probs.items()})
        return d

    def text(self) -> str:
        if self.kind == "regression":
            iv = f" ({self.interval[0]:.0f}–{self.interval[1]:.0f})" if self.interval else ""
            return f"{self.name} {self.years:.1f} years{iv}"
        return f"{self.name} {self.label} ({self.probs.get(self.label, 0):.0%})"


@dataclass
class FaceResult:
    box: tuple[int, int, int, int]  # x, y, w, h in the (turned) photo's pixels: the crop
    score: float | None  # detector neighbours; None for a whole-image or manual box
    weak: bool
    crop: np.ndarray  # uint8 (size, size, c): exactly the model's input
    heads: dict[str, HeadAnswer]
    warnings: list[str] = field(default_factory=list)
    model: str = ""
    source: str = "detected"  # detected | manual | whole image
    turn: int = 0  # degrees counter-clockwise the photo was turned to find it (box: turned)

    def to_dict(self) -> dict:
        return {"box": [int(v) for v in self.box], "score": self.score, "weak": self.weak,
                "source": self.source, "model": self.model, "turn": self.turn,
                "heads": {k: v.to_dict() for k, v in self.heads.items()},
                "warnings": list(self.warnings)}


class Predictor:
    """A loaded model with its own preprocessing (size, colour) and head class names."""

    def __init__(self, model, name: str = "model", reference: Reference | None = None):
        from faceml.modeling.layers import find_preprocessing

        try:
            pre = find_preprocessing(model)
        except LookupError:
            raise FaceMLError(f"{name} has no FacePreprocessing layer: it was not made by "
                              "FaceML, so its image size and colour are unknown") from None
        meta = dict(pre.metadata)
        kind = kinds.for_arch(meta.get("arch"))
        if not kind.predicts_labels:
            raise FaceMLError(f"{name} is a {kind.title}: {kind.refusal}")
        try:
            heads = [HeadSpec.from_dict(h) for h in meta.get("heads") or []]
        except (TypeError, ValueError) as e:
            raise FaceMLError(f"{name}: its head description is damaged ({e})") from None
        if not heads:
            raise FaceMLError(f"{name} carries no head description: nothing to predict")
        names = list(getattr(model, "output_names", None) or [])
        missing = [h.name for h in heads if names and h.name not in names]
        if missing:
            raise FaceMLError(f"{name}: outputs {names} do not match its heads {missing}")
        self.model = model
        self.name = name
        self.size = int(pre.image_size)
        self.color = pre.color
        self.heads = heads
        self.metadata = meta
        self.reference = reference
        self._lock = threading.Lock()

    # construction ------------------------------------------------------------------------------
    @classmethod
    def from_file(cls, path: str | Path, name: str | None = None) -> Predictor:
        from faceml.modeling.layers import find_preprocessing
        from faceml.modeling.modelio import load_model

        p = Path(path)
        model = load_model(p)
        try:
            meta = dict(find_preprocessing(model).metadata)
        except LookupError:
            meta = {}
        heads = [HeadSpec.from_dict(h) for h in meta.get("heads") or [] if isinstance(h, dict)]
        return cls(model, name or p.stem, _reference_for_file(p, meta, heads))

    @classmethod
    def from_run(cls, run: Run) -> Predictor:
        kind = kinds.for_arch(run.config.get("arch"))
        if not kind.predicts_labels:
            raise FaceMLError(f"run {run.id} is a {kind.title}: {kind.refusal}")
        return cls(run.load_model("best"), f"run {run.id}", reference_for_run(run))

    # pixels and outputs -----------------------------------------------------------------------
    def crop_as_model_sees(self, img: Image.Image | Photo, box) -> np.ndarray:
        """The uint8 ``(size, size, c)`` array the model gets for ``box`` of ``img`` (for a
        :class:`Photo`: cut from its coarsest copy with enough detail, see ``CROP_DETAIL``)."""
        from faceml.data.imageio import to_pixels

        x, y, w, h = (int(v) for v in box)
        if isinstance(img, Photo):
            return to_pixels(img.region((x, y, w, h), math.ceil(CROP_DETAIL * self.size)),
                             self.size, self.color)
        return to_pixels(img.crop((x, y, x + w, y + h)), self.size, self.color)

    def outputs(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Raw model outputs for uint8 pixels ``(n, size, size, c)``, one array per head."""
        x = np.asarray(x, dtype=np.uint8)
        if x.ndim == 3:
            x = x[None]
        with self._lock:  # one model serves every session: one call at a time
            out = self.model.predict_on_batch(x)
        out = named_outputs(self.model, out, [h.name for h in self.heads])
        return {k: np.asarray(v, dtype=np.float64) for k, v in out.items()}

    def answers(self, x: np.ndarray) -> list[dict[str, HeadAnswer]]:
        out = self.outputs(x)
        n = len(next(iter(out.values()))) if out else 0
        result = []
        for i in range(n):
            row = {}
            for h in self.heads:
                v = np.ravel(out[h.name][i])
                if h.kind == "binary":
                    p1 = float(np.clip(v[0], 0.0, 1.0))
                    probs = {h.classes[0]: 1.0 - p1, h.classes[1]: p1}
                    row[h.name] = HeadAnswer(h.name, h.kind, h.classes[int(p1 >= 0.5)], probs)
                elif h.kind == "multiclass":
                    p = np.clip(v, 0.0, None)
                    p = p / p.sum() if p.sum() > 0 else np.full(len(p), 1 / len(p))
                    probs = {c: float(q) for c, q in zip(h.classes, p)}
                    row[h.name] = HeadAnswer(h.name, h.kind, h.classes[int(np.argmax(p))], probs)
                else:
                    years = float(v[0])
                    iv, note = (self.reference.interval(h.name, years) if self.reference
                                else (None, "no interval: this model has no stored "
                                      "validation predictions"))
                    row[h.name] = HeadAnswer(h.name, h.kind, years=years, interval=iv,
                                             interval_note=note)
            result.append(row)
        return result

    def describe(self) -> str:
        heads = ", ".join(f"{h.name} ({'years' if h.kind == 'regression' else '/'.join(h.classes)})"
                          for h in self.heads)
        return f"{self.name}: {self.size}×{self.size} {self.color}; {heads}"


# --- photos ---------------------------------------------------------------------------------------

def _warn(pred: Predictor, answers: dict[str, HeadAnswer], weak: bool, score,
          side: int) -> list[str]:
    out = []
    if weak:
        out.append(f"weak detection (score {score:g}): the detector is unsure this is a face; "
                   "check the box")
    if side < pred.size:
        out.append(f"the face is only {side} px across, smaller than the model's "
                   f"{pred.size}×{pred.size} input: it was enlarged, so this answer is less "
                   "reliable")
    if pred.reference is not None:
        for h in pred.heads:
            w = pred.reference.rare(h, answers[h.name])
            if w:
                out.append(w)
    return out


def too_small(size: tuple[int, int], predictor: Predictor, what: str = "image") -> str | None:
    """One sentence when an image (or a box) of ``size`` has fewer pixels than the model's
    input, so that any answer would be made up from an enlarged blur; else None."""
    w, h = (int(v) for v in size)
    if min(w, h) >= predictor.size:
        return None
    return (f"the {what} is {w}×{h} pixels, smaller than the model's {predictor.size}×"
            f"{predictor.size} input: too little of a face to answer; "
            + ("use a larger photo" if what == "image" else "enter a larger box"))


def _answer(img: Image.Image | Photo, pred: Predictor, boxes: list[tuple], scores: list,
            weaks: list, source: str, turn: int = 0) -> list[FaceResult]:
    if not boxes:
        return []
    photo = Photo.from_image(img).turned(turn)
    crops = np.stack([pred.crop_as_model_sees(photo, b) for b in boxes])
    answers = pred.answers(crops)
    return [FaceResult(tuple(int(v) for v in b), s, w, c, a,
                       _warn(pred, a, w, s, min(int(b[2]), int(b[3]))), pred.name, source, turn)
            for b, s, w, c, a in zip(boxes, scores, weaks, crops, answers)]


def find_faces(img: Image.Image | Photo, detector: FaceDetector,
               turns: bool = True) -> list[Detection]:
    """The faces in a photo, found on its small copy, boxes in the photo's pixels; when none is
    found upright (and ``turns``), the photo turned 90°, 180° and 270° is tried: detections
    then carry that ``turn`` (see :meth:`faceml.serving.detect.FaceDetector.find`)."""
    photo = Photo.from_image(img)
    copy = photo.detection_copy()
    if turns:
        return detector.find(copy, photo.size)
    return detector.detect(copy, photo.size)


def predict_faces(img: Image.Image | Photo, predictor: Predictor, detector: FaceDetector,
                  detections: list[Detection] | None = None) -> list[FaceResult]:
    """Every face :func:`find_faces` finds, answered by ``predictor``; ``[]`` when none is
    found (then offer :func:`predict_box` on the whole image or a box the user enters). A
    face found on the turned photo is answered on the turned photo (``FaceResult.turn``)."""
    photo = Photo.from_image(img)
    dets = find_faces(photo, detector) if detections is None else detections
    if not dets:
        return []
    turn = dets[0].turn
    return _answer(photo, predictor, [d.box for d in dets], [d.score for d in dets],
                   [d.weak for d in dets], "detected", turn)


def predict_box(img: Image.Image | Photo, predictor: Predictor, box=None) -> FaceResult:
    """One face in a box the user chose (``None``: the whole image, centre-cropped square).

    An image (or a box) smaller than the model's input is a DataError: there is too little
    of a face to answer."""
    from faceml.serving.detect import clip_box

    photo = Photo.from_image(img)
    small = too_small(photo.size, predictor)
    if small:
        raise DataError(small)
    if box is None:
        box, source = (0, 0, photo.width, photo.height), "whole image"
    else:
        box, source = clip_box(box, photo.width, photo.height), "manual"
        small = too_small(box[2:], predictor, "box")
        if small:
            raise DataError(small)
    return _answer(photo, predictor, [box], [None], [False], source)[0]


def predict_all(img: Image.Image | Photo, predictors: dict[str, Predictor],
                detector: FaceDetector) -> tuple[list[Detection], dict[str, list[FaceResult]]]:
    """One photo through several models side by side: the faces are detected once and every
    model answers them with its own preprocessing (``results[name][i]`` is face ``i``)."""
    photo = Photo.from_image(img)
    dets = find_faces(photo, detector)
    return dets, {name: predict_faces(photo, p, detector, dets)
                  for name, p in predictors.items()}


# --- models on disk -------------------------------------------------------------------------------

_RELEASE = re.compile(r"^faceml-v(\d+)$")


def bundled_models() -> list[Path]:
    """The ``.keras`` files in ``models/``: FaceML's releases (``faceml-vN``) first, the newest
    first, then the others by name."""
    d = paths.models_dir()
    if not d.is_dir():
        return []

    def order(p: Path):
        m = _RELEASE.match(p.stem)
        return (0, -int(m[1]), "") if m else (1, 0, p.name)
    return sorted((p for p in d.glob("*.keras") if p.is_file()), key=order)


def default_model() -> Path | None:
    """The bundled model used when none is named (the newest ``faceml-vN``, else the first by
    name), or None."""
    found = bundled_models()
    return found[0] if found else None


def load_predictor(model: str | Path | None = None, run: str | None = None) -> Predictor:
    """``--model FILE`` or ``--run RUN_ID`` or the bundled model."""
    if model and run:
        raise FaceMLError("give --model or --run, not both")
    if run:
        from faceml.runs import RunStore

        return Predictor.from_run(RunStore().get(run))
    if model:
        return Predictor.from_file(model)
    path = default_model()
    if path is None:
        raise FaceMLError(f"no bundled model in {paths.models_dir()}: pass --model FILE.keras or "
                          "--run RUN_ID (see: python -m faceml runs)")
    return Predictor.from_file(path)

