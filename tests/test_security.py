"""Hostile input for the Predict path: crafted models and images from strangers.

Every case ends in a clear :class:`~faceml.errors.FaceMLError` message or a correct answer —
never a traceback — and decoding stays memory-bounded (a 20000×20000 PNG header is refused
before any pixel is allocated). Decompression bombs are refused in plain words, never with
Pillow's own text.
"""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from faceml.errors import DataError, FaceMLError
from faceml.serving.predict import read_upload

ROOT = Path(__file__).resolve().parents[1]


# --- crafted bytes --------------------------------------------------------------------------------

def _chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def png_header(width: int, height: int, depth: int = 8, color_type: int = 2) -> bytes:
    """A valid PNG signature and IHDR claiming ``width × height``, with a tiny IDAT: the
    pixels are never there, so nothing big is allocated by writing it."""
    ihdr = struct.pack(">IIBBBBB", width, height, depth, color_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr)
            + _chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + _chunk(b"IEND", b""))


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _deflate(block: bytes, count: int) -> bytes:
    """``block`` repeated ``count`` times, deflated a block at a time (never all in memory)."""
    co = zlib.compressobj(9)
    return b"".join(co.compress(block) for _ in range(count)) + co.flush()


def inflating_png(width: int, height: int) -> bytes:
    """A real 8-bit gray PNG whose pixel data (all black) inflates to ``width × height`` bytes
    from a file a thousand times smaller."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (PNG_SIGNATURE + _chunk(b"IHDR", ihdr)
            + _chunk(b"IDAT", _deflate(b"\x00" * (width + 1), height)) + _chunk(b"IEND", b""))


def text_bomb_png(megabytes: int = 64) -> bytes:
    """A 16×16 PNG with a compressed text chunk (zTXt) that inflates to ``megabytes`` MB."""
    ihdr = struct.pack(">IIBBBBB", 16, 16, 8, 2, 0, 0, 0)
    ztxt = b"Comment\x00\x00" + _deflate(b"\x00" * (1 << 20), megabytes)
    return (PNG_SIGNATURE + _chunk(b"IHDR", ihdr) + _chunk(b"zTXt", ztxt)
            + _chunk(b"IDAT", zlib.compress(b"\x00" * (16 * 49))) + _chunk(b"IEND", b""))


def jpeg_header(width: int, height: int) -> bytes:
    """A small JPEG whose frame header claims ``width × height`` (its data is for 16×16)."""
    data = bytearray(encoded(Image.new("RGB", (16, 16), (90, 90, 90)), "JPEG"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def encoded(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def face_like(size=(64, 48)) -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))


def animated_gif() -> bytes:
    frames = [Image.new("RGB", (32, 32), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return buf.getvalue()


def sixteen_bit() -> bytes:
    ramp = np.tile(np.linspace(0, 65535, 64).astype(np.uint16), (16, 1))
    return encoded(Image.fromarray(ramp), "PNG")  # mode I;16


BAD = {
    "zero bytes": (b"", "empty"),
    "text renamed .png": (b"hello, I am not a picture\n", "not an image"),
    "truncated JPEG": (encoded(face_like((400, 300)), "JPEG")[:2000], "damaged or truncated"),
    "JPEG start only": (b"\xff\xd8\xff\xe0broken", "damaged or truncated"),
    "20000x20000 PNG header": (png_header(20000, 20000), "too large"),
    "30000x30000 PNG header": (png_header(30000, 30000), "900 megapixels): too large"),
    "8000x8000 PNG inflating to 64 MB from 64 kB": (inflating_png(8000, 8000), "too large"),
    "PNG text chunk inflating to 64 MB": (text_bomb_png(64), "decompression bomb"),
    "30000x30000 JPEG header": (jpeg_header(30000, 30000), "limit for a JPEG photo is 100"),
    "7000x7000 PNG header (over the limit, under 2x)": (png_header(7000, 7000), "too large"),
    "3000x3000 PNG with no pixel data": (png_header(3000, 3000), "damaged or truncated"),
    "TIFF": (encoded(face_like(), "TIFF"), "TIFF images are not accepted"),
    "EPS (would run Ghostscript)": (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n"
                                    b"showpage\n", "not accepted"),
}


# --- images ---------------------------------------------------------------------------------------

def test_decompression_bomb_limit_is_set():
    import faceml.data.imageio  # noqa: F401 - sets the limit

    assert Image.MAX_IMAGE_PIXELS == 40_000_000


@pytest.mark.parametrize("name", list(BAD))
def test_bad_images_give_a_clear_message(name):
    data, needle = BAD[name]
    with pytest.raises(DataError) as e:
        read_upload(data)
    msg = str(e.value)
    assert needle in msg, msg
    assert "\n" not in msg and "Traceback" not in msg


@pytest.mark.parametrize("name", [n for n in BAD if "PNG" in n or "JPEG" in n])
def test_bombs_and_broken_files_are_refused_in_plain_words(name):
    """One sentence of our own: no Pillow wording ("could be decompression bomb DOS attack",
    "Image size (…)", plugin names) and no exception class names."""
    data, _ = BAD[name]
    with pytest.raises(DataError) as e:
        read_upload(data)
    msg = str(e.value)
    for pillow_words in ("DOS attack", "Image size (", "exceeds limit", "PngImagePlugin",
                         "MAX_TEXT_CHUNK", "Error:", "OSError", "SyntaxError", "ValueError"):
        assert pillow_words not in msg, msg
    assert msg[0].islower() and msg.count(". ") == 0, msg


def test_the_size_limits_name_the_size_and_the_limit():
    with pytest.raises(DataError) as e:
        read_upload(png_header(30000, 30000))
    assert str(e.value) == ("the image is 30000×30000 pixels (900 megapixels): too large to "
                            "open safely; the limit for a PNG image (JPEG photos may have 100) "
                            "is 40 megapixels")
    assert len(inflating_png(8000, 8000)) < 100_000  # a small file: the bomb is in its pixels


def test_a_100_megapixel_jpeg_is_accepted_at_an_eighth():
    """At the limit, a JPEG claiming 10000×10000 (its data ends early: libjpeg fills the rest
    with grey) is decoded at 1/8 scale only."""
    from faceml.serving.predict import read_photo

    photo = read_photo(jpeg_header(10000, 10000))
    assert photo.size == (10000, 10000) and photo.decoded() == [8]
    assert photo.coarsest().size == (1250, 1250)


def test_animated_gif_gives_its_first_frame():
    img = read_upload(animated_gif())
    assert img.mode == "RGB" and img.size == (32, 32)
    assert tuple(np.asarray(img)[5, 5]) == (255, 0, 0)


def test_cmyk_jpeg_is_converted_to_rgb():
    cmyk = Image.new("CMYK", (40, 30), (0, 255, 255, 0))  # pure red in CMYK
    img = read_upload(encoded(cmyk, "JPEG", quality=95))
    assert img.mode == "RGB" and img.size == (40, 30)
    r, g, b = np.asarray(img)[15, 20].astype(int)
    assert r > 200 and g < 60 and b < 60


def test_16_bit_png_is_scaled_not_clipped():
    img = read_upload(sixteen_bit())
    arr = np.asarray(img)
    assert img.mode == "RGB" and arr[..., 0].max() == 255 and arr[..., 0].min() == 0
    assert 100 < arr[0, 32, 0] < 160  # the middle of the ramp is mid-grey, not white


def test_transparency_is_composited_on_white():
    rgba = Image.new("RGBA", (20, 20), (0, 0, 0, 0))
    rgba.paste((255, 0, 0, 255), (0, 0, 10, 20))
    img = read_upload(encoded(rgba, "PNG"))
    assert tuple(np.asarray(img)[10, 15]) == (255, 255, 255)
    assert tuple(np.asarray(img)[10, 5]) == (255, 0, 0)
    pal = Image.new("P", (10, 10), 0)
    pal.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    pal.info["transparency"] = 0
    assert tuple(np.asarray(read_upload(encoded(pal, "PNG", transparency=0)))[0, 0]) == (255,) * 3


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "BMP", "GIF"])
def test_accepted_formats_decode(fmt):
    img = read_upload(encoded(face_like().convert("RGB"), fmt))
    assert img.mode == "RGB" and img.size == (64, 48)


def test_a_long_thin_strip_is_answered_not_crashed():
    from faceml.serving.detect import FaceDetector

    img = read_upload(encoded(Image.new("L", (5000, 1), 128), "PNG"))
    assert img.size == (5000, 1)
    assert FaceDetector().detect(img) == []


def test_decoding_hostile_files_is_memory_bounded():
    """In a child process capped at 1 GB of address space (a 20000×20000 RGB image alone
    needs 1.2 GB): every hostile file ends in a DataError and the process stays small."""
    code = r"""
import io, json, sys
from tests.test_security import BAD, animated_gif, sixteen_bit
from faceml.serving.predict import read_upload
from faceml.errors import DataError
out = {}
for name, (data, needle) in BAD.items():
    try:
        read_upload(data); out[name] = "decoded"
    except DataError as e:
        out[name] = str(e)
for name, data in (("gif", animated_gif()), ("16bit", sixteen_bit())):
    out[name] = read_upload(data).mode
# VmHWM: this process's peak resident memory (ru_maxrss would carry the parent's over exec)
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0]
out["maxrss_mb"] = int(hwm.split()[1]) / 1024
print(json.dumps(out))
"""
    limit = ("import resource; resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30)); "
             "exec(open(0).read())")
    env = {"PATH": "/usr/bin:/bin", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(ROOT)}
    p = subprocess.run([sys.executable, "-c", limit], input=code, cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    out = json.loads(p.stdout)
    for name, (_, needle) in BAD.items():
        assert needle in out[name], (name, out[name])
    assert out["gif"] == "RGB" and out["16bit"] == "RGB"
    assert out["maxrss_mb"] < 300, out["maxrss_mb"]


# --- models ---------------------------------------------------------------------------------------

def test_a_keras_file_with_a_lambda_layer_is_refused_and_runs_nothing(tmp_path):
    import keras

    from faceml.modeling.modelio import load_model
    from faceml.serving.predict import Predictor

    marker = tmp_path / "code-ran"
    payload = eval(f"lambda x: (__import__('pathlib').Path({str(marker)!r}).touch(), x)[1]")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Lambda(payload)])
    path = tmp_path / "crafted.keras"
    model.save(path)
    marker.unlink(missing_ok=True)  # building the model ran it once; loading must not
    for load in (load_model, Predictor.from_file):
        with pytest.raises(FaceMLError, match="was refused: it contains code") as e:
            load(path)
        assert "\n" not in str(e.value)
        assert not marker.exists()
    # the file really carries code: an unsafe load would have run it
    keras.saving.load_model(path, safe_mode=False)
    assert marker.exists()


def test_files_that_are_not_models_are_refused_clearly(tmp_path):
    from faceml.serving.predict import Predictor

    text = tmp_path / "notes.keras"
    text.write_text("not a model")
    junk = tmp_path / "junk.keras"
    with zipfile.ZipFile(junk, "w") as z:
        z.writestr("config.json", "{not json")
    for p, needle in ((text, "not a Keras model"), (junk, "could not be loaded"),
                      (tmp_path / "absent.keras", "not found")):
        with pytest.raises(FaceMLError, match=needle):
            Predictor.from_file(p)
