"""Synthetic cartoon faces: the built-in dataset, drawn on the fly, nothing downloaded.

Every face is a deterministic function of ``(seed, index)`` (its look and its labels) and of
the output ``size`` (pixel noise), so any subset of a dataset reads exactly the same pixels as
in the full set, and a dataset is as big as asked without a single file on disk.

Labels and how they are shown:

* ``age`` (years, 1–90): hair greyness (random natural colour when young, grey then white with
  a random onset; some older people dye their hair), wrinkles (forehead lines from about 40,
  crow's feet, nose-to-mouth folds, eye bags, growing with age), proportions (children have a
  rounder head, larger eyes and a lower eye line under a bigger forehead; shorter nose), and
  receding or bald heads for some older faces.
* ``expression`` (neutral / smiling / frowning): the mouth curve, with a random intensity, so
  weak smiles and frowns are hard to tell from neutral; strong smiles sometimes show teeth,
  smiling eyes narrow a little and a frown pulls the inner brows down.
* ``eyewear`` (none / glasses): frames of varying shape, colour and thickness (sometimes thin
  and light), sometimes tinted lenses. Glasses are more common with age (about 6 % of small
  children, 22 % at 15, 47 % at 90): a real correlation between two labels, on purpose.

Nuisance variation keeps the task honest: background colour and gradient, head size, position
and tilt, skin tone, hair style, a hair fringe that may hide the forehead or an eye, lighting,
contrast, colour cast and pixel noise. ``label_noise`` additionally replaces a fraction of the
categorical labels with a *different* random class (so that fraction of labels is wrong).

:func:`draw_face` draws one face from an attribute dict (see :func:`random_attrs`), e.g. for
the app to show "a smiling 70-year-old with glasses".
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from faceml.data.registry import register
from faceml.data.base import BadItem, DatasetAdapter, LabelSpec, Progress, Scan, check_color
from faceml.data.imageio import to_pixels
from faceml.errors import DataError

VERSION = 2
"""Bumped whenever the drawing changes, so cached arrays of older faces are not reused."""

EXPRESSIONS = ("neutral", "smiling", "frowning")
EYEWEAR = ("none", "glasses")
AGE_RANGE = (1, 90)
MIN_SIZE, MAX_SIZE = 8, 512
"""Sizes :meth:`SyntheticAdapter.read` draws (the range the preprocessing options allow)."""
MAX_N = 1_000_000

LABELS = {
    "age": LabelSpec("age", "years", (), "Age in years (1–90): hair greyness, wrinkles, "
                     "proportions, balding."),
    "expression": LabelSpec("expression", "categorical", EXPRESSIONS,
                            "Mouth curve with random intensity (weak smiles are hard)."),
    "eyewear": LabelSpec("eyewear", "binary", EYEWEAR,
                         "Glasses frames of varying shape, colour and thickness."),
}

_N_U = 72
"""Uniform numbers drawn per face; the last four are reserved for label noise."""
_NOISE_U = _N_U - 4

# palettes ---------------------------------------------------------------------------------
_SKIN = np.array([(255, 226, 200), (241, 196, 162), (226, 176, 128), (198, 140, 90),
                  (160, 104, 62), (112, 72, 44), (80, 52, 34)], float)
_HAIR = np.array([(22, 18, 16), (48, 34, 24), (82, 56, 36), (120, 84, 52), (160, 122, 78),
                  (205, 168, 104), (228, 204, 146), (128, 56, 28), (176, 86, 40)], float)
_HAIR_P = np.array([0.22, 0.2, 0.16, 0.1, 0.08, 0.08, 0.04, 0.06, 0.06])
_GREY = np.array((150, 148, 146), float)
_WHITE = np.array((236, 236, 232), float)
_IRIS = np.array([(86, 52, 28), (44, 30, 20), (70, 112, 164), (78, 118, 72), (128, 98, 50)],
                 float)
_FRAME = np.array([(18, 18, 20), (18, 18, 20), (66, 42, 28), (118, 78, 40), (200, 168, 84),
                   (184, 184, 190), (160, 32, 40), (40, 58, 140), (214, 214, 220)], float)
_CIRCLE = np.stack([np.cos(t := np.linspace(0, 2 * np.pi, 30, endpoint=False)), np.sin(t)], 1)


def _pick(palette: np.ndarray, u: float, p: np.ndarray | None = None) -> np.ndarray:
    if p is None:
        return palette[min(int(u * len(palette)), len(palette) - 1)]
    return palette[min(int(np.searchsorted(np.cumsum(p), u * p.sum())), len(palette) - 1)]


def _clip01(v: float) -> float:
    return 0.0 if v < 0 else 1.0 if v > 1 else float(v)


def _lerp(a, b, t):
    return np.asarray(a, float) + (np.asarray(b, float) - np.asarray(a, float)) * t


# attributes -------------------------------------------------------------------------------
def _labels_from_u(u: np.ndarray) -> tuple[float, str, str]:
    age = float(AGE_RANGE[0] + min(int(u[0] * (AGE_RANGE[1] - AGE_RANGE[0] + 1)),
                                   AGE_RANGE[1] - AGE_RANGE[0]))
    expression = "neutral" if u[1] < 0.38 else "smiling" if u[1] < 0.72 else "frowning"
    p_glasses = 0.06 + 0.016 * age if age < 15 else 0.22 + 0.25 * (age - 15) / 75
    eyewear = "glasses" if u[2] < p_glasses else "none"
    return age, expression, eyewear


def _attrs_from_u(u: np.ndarray, age: float | None = None, expression: str | None = None,
                  eyewear: str | None = None) -> dict:
    """The full description of one face from ``_N_U`` uniforms; given labels override."""
    a0, e0, g0 = _labels_from_u(u)
    age = a0 if age is None else float(age)
    expression = e0 if expression is None else expression
    eyewear = g0 if eyewear is None else eyewear
    if expression not in EXPRESSIONS:
        raise DataError(f"expression must be one of {', '.join(EXPRESSIONS)}, not {expression!r}")
    if eyewear not in EYEWEAR:
        raise DataError(f"eyewear must be one of {', '.join(EYEWEAR)}, not {eyewear!r}")
    if not 0 <= age <= 120:
        raise DataError(f"age must be between 0 and 120 years, not {age}")

    nx = iter(u[3:_NOISE_U].tolist()).__next__  # always drawn in the same order

    child = _clip01((16.0 - age) / 14.0 + (nx() - 0.5) * 0.2)
    d: dict = {"age": age, "expression": expression, "eyewear": eyewear, "child": child}

    # head geometry
    d["cx"] = 0.5 + (nx() - 0.5) * 0.10
    d["cy"] = 0.47 + (nx() - 0.5) * 0.07
    d["scale"] = 0.235 + nx() * 0.055
    d["tilt"] = (nx() - 0.5) * 2 * math.radians(12)
    d["aspect"] = 1.26 - 0.2 * child + (nx() - 0.5) * 0.14
    d["skin"] = _skin(nx()) + (np.array([nx(), nx(), nx()]) - 0.5) * 16
    # eyes (children: larger eyes, lower eye line under a bigger forehead)
    d["eye_y"] = -0.02 + 0.17 * child + (nx() - 0.5) * 0.08
    d["eye_dx"] = 0.37 + (nx() - 0.5) * 0.08
    d["eye_r"] = 0.14 + 0.07 * child + (nx() - 0.5) * 0.03
    d["eye_open"] = 0.5 + 0.25 * nx() - 0.08 * max(0.0, (age - 55) / 35)
    d["iris"] = _pick(_IRIS, nx())
    d["gaze"] = (nx() - 0.5) * 0.5
    d["brow_w"] = 0.045 + 0.04 * nx()
    d["brow_h"] = 0.23 + 0.06 * nx()
    d["nose_len"] = 0.26 + 0.14 * (1 - child) + (nx() - 0.5) * 0.06
    d["nose_style"] = nx()
    # mouth and expression
    d["mouth_w"] = 0.3 + 0.12 * nx() - 0.04 * child
    d["mouth_t"] = 0.06 + 0.035 * nx()
    d["mouth_skew"] = (nx() - 0.5) * 0.05
    s = nx()
    if expression == "neutral":
        d["smile"] = (s - 0.5) * 2 * 0.18
    else:
        d["smile"] = (0.12 + 0.88 * s ** 0.7) * (1 if expression == "smiling" else -1)
    d["open_mouth"] = expression == "smiling" and d["smile"] > 0.35 and nx() < 0.6
    # hair: natural colour, greyness with age (random onset and pace), some dye it
    base = _pick(_HAIR, nx(), _HAIR_P)
    onset, pace, dyed = 28 + 27 * nx(), 18 + 27 * nx(), nx() < 0.12 and age > 50
    grey = 0.0 if dyed else _clip01((age - onset) / pace)
    d["grey"] = grey
    d["hair"] = _hair_colour(base, grey)
    d["brow"] = _hair_colour(base * 0.85, grey * 0.8)
    style = nx()
    d["hair_style"] = "short" if style < 0.45 else "long" if style < 0.8 else "curly"
    d["hair_vol"] = 1.04 + 0.14 * nx()
    d["hairline"] = -0.55 + (nx() - 0.5) * 0.15
    p_bald = _clip01((age - 40) / 45) * 0.55
    b1, b2 = nx(), nx()
    d["bald"] = 0 if b1 >= p_bald else 1 if b2 < 0.5 else 2
    f1, f2, f3 = nx(), nx(), nx()
    d["fringe"] = f1 < 0.22 and d["bald"] == 0
    d["fringe_y"] = d["eye_y"] - 0.5 + 0.6 * f2 ** 1.5
    d["fringe_slope"] = (f3 - 0.5) * 0.5
    # wrinkles grow after a random onset around 40
    w_on, w_pace, w_k = 34 + 14 * nx(), 28 + 20 * nx(), 0.6 + 0.4 * nx()
    d["wrinkles"] = _clip01((age - w_on) / w_pace) * w_k
    # glasses
    d["glasses_shape"] = 2.0 + 3.0 * nx()       # superellipse exponent: round .. rectangular
    d["glasses_t"] = 0.022 + 0.07 * nx() ** 1.4
    d["glasses_color"] = _pick(_FRAME, nx())
    d["glasses_size"] = 0.95 + 0.2 * nx()
    t1, t2 = nx(), nx()
    d["glasses_tint"] = 60 + 90 * t2 if t1 < 0.12 else 0.0
    # background, clothes
    d["bg0"] = 30 + 210 * np.array([nx(), nx(), nx()])
    d["bg1"] = 30 + 210 * np.array([nx(), nx(), nx()])
    d["bg_angle"] = nx() * 2 * math.pi
    d["shirt"] = 20 + 220 * np.array([nx(), nx(), nx()])
    # photo nuisance: lighting, contrast, colour cast, noise
    d["contrast"] = 0.72 + 0.4 * nx()
    d["brightness"] = (nx() - 0.5) * 50
    d["light"] = 0.4 * nx()
    d["light_angle"] = nx() * 2 * math.pi
    d["cast"] = 1 + (np.array([nx(), nx(), nx()]) - 0.5) * 0.16
    d["noise"] = 1.5 + 7.5 * nx()
    return d


def _skin(u: float) -> np.ndarray:
    x = u * (len(_SKIN) - 1)
    i = min(int(x), len(_SKIN) - 2)
    return _lerp(_SKIN[i], _SKIN[i + 1], x - i)


def _hair_colour(base: np.ndarray, grey: float) -> np.ndarray:
    g2 = grey * 2
    return _lerp(base, _GREY, min(g2, 1.0)) if g2 <= 1 else _lerp(_GREY, _WHITE, g2 - 1)


def random_attrs(rng: np.random.Generator, age: float | None = None,
                 expression: str | None = None, eyewear: str | None = None) -> dict:
    """A random face description; pass ``age``/``expression``/``eyewear`` to fix labels."""
    return _attrs_from_u(rng.random(_N_U), age, expression, eyewear)


def _face_u(seed: int, index: int) -> np.ndarray:
    return np.random.default_rng([seed, index]).random(_N_U)


def face_attrs(seed: int, index: int) -> dict:
    """The (true) description of face ``index`` of the dataset drawn with ``seed``."""
    return _attrs_from_u(_face_u(seed, index))


# drawing ----------------------------------------------------------------------------------
class _Pen:
    """Records shapes in face units (head half-width 1, centre 0,0), with colours from
    :meth:`col`, then places them on the canvas (scaled, tilted, moved) with one transform and
    draws them in order."""

    def __init__(self, canvas: int, d: dict):
        unit = canvas * d["scale"]
        c, s = math.cos(d["tilt"]), math.sin(d["tilt"])
        self.m = np.array([[c, s], [-s, c]]) * unit
        self.off = np.array([d["cx"], d["cy"]]) * canvas
        self.unit = unit
        self.ops: list[tuple[str, np.ndarray, tuple, int]] = []
        # the photo's contrast, colour cast and brightness, applied to every colour drawn (the
        # same as applying them to the pixels afterwards: drawing and averaging are linear)
        self.gain = (d["contrast"] * np.asarray(d["cast"], float)).tolist()
        self.bias = [128.0 * (1 - g) + d["brightness"] for g in self.gain]

    def col(self, c) -> tuple[int, int, int]:
        """A colour as the photo shows it."""
        r, g, b = (c.tolist() if isinstance(c, np.ndarray) else c)[:3]
        (gr, gg, gb), (br, bg, bb) = self.gain, self.bias
        return (int(min(255.0, max(0.0, r * gr + br)) + 0.5),
                int(min(255.0, max(0.0, g * gg + bg)) + 0.5),
                int(min(255.0, max(0.0, b * gb + bb)) + 0.5))

    def poly(self, pts, fill) -> None:
        self.ops.append(("poly", np.asarray(pts, float), fill, 0))

    def tint(self, pts, rgba: tuple) -> None:
        self.ops.append(("tint", np.asarray(pts, float), self.col(rgba) + (int(rgba[3]),), 0))

    def ellipse(self, x, y, rx, ry, fill) -> None:
        self.poly(_CIRCLE * (rx, ry) + (x, y), fill)

    def line(self, pts, fill, w) -> None:
        self.ops.append(("line", np.asarray(pts, float), fill,
                         max(1, int(round(w * self.unit)))))

    def circle(self, x, y, r, fill) -> None:
        """A circle (unchanged by the tilt, so Pillow draws it directly)."""
        self.ops.append(("circle", np.array([(x, y)], float), fill, r * self.unit))

    def flush(self, img: Image.Image) -> None:
        xy = (np.concatenate([op[1] for op in self.ops]) @ self.m + self.off).ravel().tolist()
        draw, tint = ImageDraw.Draw(img), None
        k = 0
        for kind, pts, fill, width in self.ops:
            seg = xy[k:k + 2 * len(pts)]
            k += 2 * len(pts)
            if kind == "poly":
                draw.polygon(seg, fill=fill)
            elif kind == "line":
                draw.line(seg, fill=fill, width=width, joint="curve")
            elif kind == "circle":
                x, y = seg
                draw.ellipse((x - width, y - width, x + width, y + width), fill=fill)
            else:
                tint = tint or ImageDraw.Draw(img, "RGBA")
                tint.polygon(seg, fill=fill)
        self.ops = []


_GRID: dict[int, tuple[np.ndarray, np.ndarray]] = {}
_RAMPS: dict[tuple[int, int], Image.Image] = {}
_N_ANGLES = 32


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates in [-0.5, 0.5] (x along a row, y down a column)."""
    if size not in _GRID:
        g = ((np.arange(size, dtype=np.float32) + 0.5) / size - 0.5)
        _GRID[size] = (g[None, :], g[:, None])
    return _GRID[size]


def _ramp(size: int, angle: float) -> Image.Image:
    """An "L" image going from 0 to 255 along ``angle`` (quantised; cached)."""
    k = int(round(angle / (2 * math.pi) * _N_ANGLES)) % _N_ANGLES
    ramp = _RAMPS.get((size, k))
    if ramp is None:
        a = 2 * math.pi * k / _N_ANGLES
        x, y = _grid(size)
        t = np.clip((x * math.cos(a) + y * math.sin(a)) * 1.2 + 0.5, 0, 1)
        ramp = Image.fromarray((t * 255 + 0.5).astype(np.uint8), "L")
        if len(_RAMPS) > 16 * _N_ANGLES:
            _RAMPS.clear()
        _RAMPS[size, k] = ramp
    return ramp


def _gradient(size: int, c0, c1, angle: float) -> Image.Image:
    """A linear gradient from c0 to c1 along ``angle``, as an RGB image."""
    img = Image.new("RGB", (size, size), c0)
    img.paste(c1, (0, 0, size, size), _ramp(size, angle))
    return img


_UX = {n: np.linspace(-1, 1, n) for n in (5, 7, 9, 13)}


def _arc(x0, x1, y, bend, n=9) -> np.ndarray:
    """Points of a gentle arc from x0 to x1 at height y, its middle raised by ``bend``."""
    ux = _UX[n]
    pts = np.empty((n, 2))
    pts[:, 0] = (x0 + x1) / 2 + (x1 - x0) / 2 * ux
    pts[:, 1] = y - bend * (1 - ux * ux)
    return pts


_PHI_CAP = np.linspace(0.08, -math.pi - 0.08, 40)
_PHI_SIDE = np.linspace(0.12, -0.75, 14)
_PHI_BACK = np.linspace(0, -math.pi, 24)
_X_HAIRLINE = np.linspace(-0.96, 0.96, 25)
_X_FRINGE = np.linspace(0.92, -0.92, 11)
_CURLS = 1 + 0.045 * np.abs(np.sin(9 * _PHI_CAP))


def _xy(x, y) -> np.ndarray:
    return np.stack([np.broadcast_to(x, np.shape(y)) if np.ndim(x) == 0 else x,
                     np.broadcast_to(y, np.shape(x)) if np.ndim(y) == 0 else y], 1)


def _hair_cap(d: dict, h: float) -> list[np.ndarray]:
    """Hair polygons drawn over the head (top cap, or side patches when bald)."""
    vol, y0 = d["hair_vol"], -0.03
    A, B = vol, h * (1 + (vol - 1) * 1.3)
    r = _CURLS if d["hair_style"] == "curly" else 1.0
    side_y = d["eye_y"] - 0.12
    if d["bald"] == 2:  # hair on the sides only
        ph = _PHI_SIDE
        o = _xy(A * np.cos(ph), y0 + B * np.sin(ph))
        i = _xy(0.84 * np.cos(ph[::-1]), y0 + 0.88 * h * np.sin(ph[::-1]))
        right = np.concatenate([o, i])
        return [right, right * (-1, 1)]
    outer = _xy(A * r * np.cos(_PHI_CAP), y0 + B * r * np.sin(_PHI_CAP))
    top, p = d["hairline"] * h, 2.6
    if d["bald"] == 1:  # receding
        top, p = -0.9 * h, 1.3
    x = _X_HAIRLINE
    y = side_y + (top - side_y) * (1 - np.abs(x / 0.96) ** p)
    return [np.concatenate([outer, _xy(x, y)])]


def _draw(d: dict, canvas: int, size: int | None = None) -> Image.Image:
    """The face on a ``canvas``-pixel square; the background gradient is made at the final
    ``size`` and scaled up without interpolation (so it is exact once the canvas is reduced)."""
    pen = _Pen(canvas, d)
    col = pen.col
    size = size or canvas
    img = _gradient(size, col(d["bg0"]), col(d["bg1"]), d["bg_angle"])
    if size != canvas:
        img = img.resize((canvas, canvas), Image.Resampling.NEAREST)
    h = d["aspect"]
    skin = d["skin"]
    skin_c, hair_c = col(skin), col(d["hair"])
    ey, edx, er = d["eye_y"], d["eye_dx"], d["eye_r"]
    long_hair = d["hair_style"] == "long" and d["bald"] == 0

    # behind the head: shoulders, long hair, neck, ears
    pen.ellipse(0, h + 1.25, 1.95, 0.95, col(d["shirt"]))
    if long_hair:
        vol = d["hair_vol"]
        back = _xy(1.12 * vol * np.cos(_PHI_BACK), -0.03 + h * 1.06 * vol * np.sin(_PHI_BACK))
        back = np.concatenate([back, [(-1.15 * vol, h + 0.45), (1.15 * vol, h + 0.45)]])
        pen.poly(back, col(d["hair"] * 0.9))
    pen.poly([(-0.36, 0.4 * h), (0.36, 0.4 * h), (0.4, h + 0.55), (-0.4, h + 0.55)],
             col(skin * 0.86))
    if not long_hair:
        ear = col(skin * 0.93)
        for sx in (-1, 1):
            pen.ellipse(sx * 0.97, ey + 0.12, 0.13, 0.22, ear)
    pen.ellipse(0, 0, 1.0, h, skin_c)

    # wrinkles (before the hair and the eyes, which may cover them)
    w = d["wrinkles"]
    mouth_y = ey + d["nose_len"] + 0.34 + 0.06 * (1 - d["child"])
    nose_y = ey + 0.12 + d["nose_len"]
    if w > 0.03:
        dark = col(_lerp(skin, skin * 0.45, 0.35 + 0.65 * w))
        lw = 0.022 + 0.025 * w
        n_lines = 1 + int(w * 3.2)
        for j in range(min(n_lines, 4)):
            y = ey - d["brow_h"] - 0.17 - 0.09 * j
            half = 0.42 - 0.05 * j
            pen.line(_arc(-half, half, y, 0.04), dark, lw)
        if w > 0.25:
            for sx in (-1, 1):
                x0 = sx * (edx + er + 0.05)
                for k in (-1, 0, 1):
                    if k == 0 and w < 0.55:
                        continue
                    pen.line([(x0, ey + 0.02 * k), (x0 + sx * (0.08 + 0.06 * w), ey + 0.07 * k)],
                             dark, lw * 0.9)
        if w > 0.15:
            for sx in (-1, 1):
                pen.line([(sx * 0.2, nose_y - 0.06),
                          (sx * (d["mouth_w"] * 0.8 + 0.06), mouth_y - 0.04),
                          (sx * (d["mouth_w"] + 0.1), mouth_y + 0.1)], dark, lw)
        if w > 0.4:
            for sx in (-1, 1):
                pen.line(_arc(sx * edx - er * 0.8, sx * edx + er * 0.8, ey + er * 0.95, -0.04, 5),
                         dark, lw * 0.8)

    # hair over the head
    for poly in _hair_cap(d, h):
        pen.poly(poly, hair_c)

    # eyes
    eo = d["eye_open"] * (1 - 0.25 * max(0.0, d["smile"]))  # smiling eyes narrow
    lid, white, pupil = col(skin * 0.35), col((246, 244, 238)), col((12, 10, 10))
    iris, glint = col(d["iris"]), col((250, 250, 250))
    for sx in (-1, 1):
        x = sx * edx
        pen.ellipse(x, ey, er, er * eo, white)
        ir = er * eo * 0.95
        gx = x + d["gaze"] * er * 0.5
        pen.circle(gx, ey, ir, iris)
        pen.circle(gx, ey, ir * 0.5, pupil)
        pen.circle(gx + ir * 0.3, ey - ir * 0.35, ir * 0.22, glint)
        pen.line(_arc(x - er * 1.05, x + er * 1.05, ey - er * eo * 0.3, er * eo * 0.75, 7),
                 lid, 0.035)
    # eyebrows: a frown pulls the inner ends down
    frown = max(0.0, -d["smile"])
    brow = col(d["brow"])
    for sx in (-1, 1):
        x_in, x_out = sx * (edx - er - 0.02), sx * (edx + er + 0.04)
        y = ey - d["brow_h"] - er * 0.4
        pen.line([(x_in, y + 0.09 * frown), (sx * edx, y - 0.035), (x_out, y + 0.015)],
                 brow, d["brow_w"])
    # nose
    nose_c = col(skin * 0.68)
    if d["nose_style"] < 0.5:
        pen.line([(0.05, ey + 0.14), (0.1, nose_y - 0.02), (0.02, nose_y + 0.03)], nose_c, 0.035)
    pen.line(_arc(-0.09, 0.09, nose_y, -0.035, 5), nose_c, 0.035)
    # mouth: corners raised by `smile`
    mw, k = d["mouth_w"], d["smile"] * 0.28
    xn = _UX[13]
    x = xn * mw
    y = mouth_y - k * xn ** 2 + d["mouth_skew"] * xn + 0.5 * k
    lip = col(_lerp(skin * 0.4, (140, 30, 40), 0.3))
    if d["open_mouth"]:
        lower = y + (0.05 + 0.12 * d["smile"]) * (1 - xn ** 2)
        pen.poly(np.concatenate([_xy(x, y), _xy(x, lower)[::-1]]), col((120, 30, 36)))
        teeth_y = y + 0.4 * (lower - y)
        pen.poly(np.concatenate([_xy(x, y), _xy(x, teeth_y)[::-1]]), col((238, 236, 228)))
        pen.line(_xy(x, lower), lip, d["mouth_t"] * 0.7)
    pen.line(_xy(x, y), lip, d["mouth_t"])

    # a fringe of hair over the forehead (sometimes over an eye)
    if d["fringe"]:
        top = d["hairline"] * h - 0.15
        fx = _X_FRINGE
        fy = d["fringe_y"] + d["fringe_slope"] * fx + 0.05 * (np.arange(11) % 2)
        fy = np.minimum(fy, ey + 0.25)
        pen.poly(np.concatenate([[(-0.95, top), (0.95, top)], _xy(fx, fy)]), hair_c)

    # glasses
    if d["eyewear"] == "glasses":
        frame, t = col(d["glasses_color"]), d["glasses_t"]
        lw = (er + 0.09) * d["glasses_size"]
        lh = lw * 0.82
        n = d["glasses_shape"]
        c, s = _CIRCLE[:, 0], _CIRCLE[:, 1]
        ring = _xy(np.sign(c) * np.abs(c) ** (2 / n), np.sign(s) * np.abs(s) ** (2 / n))
        gy = ey + 0.02
        if d["glasses_tint"] > 0:
            for sx in (-1, 1):
                pen.tint(ring * (lw, lh) + (sx * edx, gy), (30, 30, 40, d["glasses_tint"]))
        closed = np.concatenate([ring, ring[:1]]) * (lw, lh)
        for sx in (-1, 1):
            pen.line(closed + (sx * edx, gy), frame, t)
            pen.line([(sx * (edx + lw), gy - lh * 0.3), (sx * 0.99, gy - 0.02)], frame, t)
        pen.line(_arc(-edx + lw, edx - lw, gy - lh * 0.25, 0.05, 5), frame, t)
    pen.flush(img)
    return img


def draw_face(attrs: dict, size: int, rng: np.random.Generator | None = None) -> Image.Image:
    """Draw one face as an RGB image of ``size``×``size``.

    ``attrs`` is a full description from :func:`random_attrs`/:func:`face_attrs`, or just
    some labels (``{"age": 70, "expression": "smiling", "eyewear": "glasses"}``), in which case
    the rest is drawn from ``rng`` (other keys given override what is drawn). ``rng`` also
    draws the pixel noise. ``size`` may be 8 to 512.
    """
    rng = np.random.default_rng(0) if rng is None else rng
    if "skin" not in attrs:  # a partial description: draw the rest, keep what was given
        known = {k: attrs[k] for k in ("age", "expression", "eyewear") if k in attrs}
        attrs = {**random_attrs(rng, **known), **attrs}
    size = int(size)
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise DataError(f"face size must be between {MIN_SIZE} and {MAX_SIZE} pixels, not {size}")
    # drawn at 2x or more, then box-averaged down: anti-aliased edges, cheaply
    factor = max(2, -(-64 // size))
    img = _draw(attrs, size * factor, size).reduce(factor)
    return _photo(img, attrs, rng)


_LIGHT: dict[tuple[int, int], np.ndarray] = {}
_POOL: list[np.ndarray] = []


def _noise_pool() -> np.ndarray:
    """2^21 standard normal float32 numbers, the same on every machine (seeded)."""
    if not _POOL:
        _POOL.append(np.random.default_rng(20240607).standard_normal(1 << 21, dtype=np.float32))
    return _POOL[0]


def _light_map(size: int, angle: float) -> np.ndarray:
    """float32 ``(size, size, 3)``: position along ``angle`` (quantised) in [-0.7, 0.7]."""
    k = int(round(angle / (2 * math.pi) * _N_ANGLES)) % _N_ANGLES
    m = _LIGHT.get((size, k))
    if m is None:
        a = 2 * math.pi * k / _N_ANGLES
        x, y = _grid(size)
        m = np.repeat((x * math.cos(a) + y * math.sin(a))[..., None], 3, axis=2)
        if size <= 160:
            if len(_LIGHT) > 8 * _N_ANGLES:
                _LIGHT.clear()
            _LIGHT[size, k] = m
    return m


def _photo(img: Image.Image, d: dict, rng: np.random.Generator) -> Image.Image:
    """Photo nuisance at the final resolution (contrast, cast and brightness are already in
    the colours drawn): a side light and Gaussian sensor noise (a window at a random offset of
    a fixed pool: much faster than drawing it). Same-shape float32 arrays only."""
    size = img.width
    arr = np.asarray(img, dtype=np.float32)
    light = _light_map(size, d["light_angle"]) * np.float32(d["light"])
    arr += arr * light
    pool = _noise_pool()
    start = int(rng.integers(0, len(pool) - arr.size))
    arr += pool[start:start + arr.size].reshape(arr.shape) * np.float32(d["noise"])
    np.clip(arr, 0, 255, out=arr)
    return Image.fromarray(arr.astype(np.uint8), "RGB")


def render(seed: int, indices: Sequence[int], size: int, color: str,
           progress: Progress | None = None, every: int = 250) -> np.ndarray:
    """Faces ``indices`` of dataset ``seed`` as uint8 ``(n, size, size, c)``."""
    channels = check_color(color)
    n = len(indices)
    out = np.zeros((n, size, size, channels), dtype=np.uint8)
    if progress:
        progress(0, n)
    for j, i in enumerate(indices):
        i = int(i)
        rng = np.random.default_rng([seed, i])
        img = draw_face(_attrs_from_u(rng.random(_N_U)), size, rng)  # noise: same generator
        out[j] = to_pixels(img, size, color)
        if progress and ((j + 1) % every == 0 or j + 1 == n):
            progress(j + 1, n)
    return out


# the adapter ------------------------------------------------------------------------------
def _check_int(name: str, value, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        elif isinstance(value, str) and value.strip().lstrip("-").isdigit():
            value = int(value)
        else:
            raise DataError(f"synthetic: {name} must be a whole number, not {value!r}")
    value = int(value)
    if not lo <= value <= hi:
        raise DataError(f"synthetic: {name} must be between {lo:,} and {hi:,}, not {value:,}")
    return value


def _source(seed: int, i: int) -> str:
    return f"synthetic-s{seed}-{i:05d}"


@register
class SyntheticAdapter(DatasetAdapter):
    name = "synthetic"
    title = "Synthetic faces (built in)"
    description = ("Cartoon faces drawn on the fly (nothing to download). Age shows in hair "
                   "greyness, wrinkles and proportions; expression in the mouth curve; eyewear "
                   "as glasses frames. Options: n, seed, label_noise.")
    needs_path = False
    default_path = None

    def label_specs(self) -> dict[str, LabelSpec]:
        return dict(LABELS)

    def scan(self, path=None, n: int = 3000, seed: int = 0, label_noise: float = 0.0,
             version: int | None = None, **unknown) -> Scan:
        """``n`` faces drawn with ``seed``; ``label_noise`` (0–0.5) is the fraction of each
        categorical label replaced by a different random class. ``path`` is ignored."""
        if unknown:
            raise DataError(f"synthetic: unknown option(s) {', '.join(sorted(unknown))}; "
                            "known: n, seed, label_noise")
        n = _check_int("n", n, 1, MAX_N)
        seed = _check_int("seed", seed, 0, 2**63 - 1)
        try:
            noise = float(label_noise)
        except (TypeError, ValueError):
            raise DataError(f"synthetic: label_noise must be a number, not {label_noise!r}") \
                from None
        if not 0.0 <= noise <= 0.5:  # also rejects NaN
            raise DataError(f"synthetic: label_noise must be between 0 and 0.5, not {label_noise}")
        if version is not None and version != VERSION:
            raise DataError(f"synthetic: faces of generator version {version} cannot be drawn "
                            f"any more (this is version {VERSION}); scan again")

        ages = np.empty(n)
        expr = np.empty(n, dtype=object)
        eyew = np.empty(n, dtype=object)
        for i in range(n):
            u = _face_u(seed, i)
            age, e, g = _labels_from_u(u)
            nu = u[_NOISE_U:]
            if nu[0] < noise:  # a different expression
                others = [c for c in EXPRESSIONS if c != e]
                e = others[min(int(nu[1] * len(others)), len(others) - 1)]
            if nu[2] < noise:
                g = EYEWEAR[1 - EYEWEAR.index(g)]
            ages[i], expr[i], eyew[i] = age, e, g
        frame = pd.DataFrame({
            "source": [_source(seed, i) for i in range(n)],
            "age": ages,
            "expression": expr,
            "eyewear": eyew,
            "_index": np.arange(n, dtype=np.int64),
        })
        return Scan(self.name, None, frame, self.label_specs(),
                    options={"n": n, "seed": seed, "label_noise": noise, "version": VERSION})

    def read(self, scan: Scan, rows: pd.DataFrame, size: int, color: str,
             progress: Progress | None = None) -> tuple[np.ndarray, list[BadItem]]:
        check_color(color)
        size = _check_int("size", size, MIN_SIZE, MAX_SIZE)
        seed = int(scan.options.get("seed", 0))
        if "_index" in rows.columns:
            indices = rows["_index"].to_numpy(dtype=np.int64)
        else:
            try:
                indices = [int(str(s).rsplit("-", 1)[1]) for s in rows["source"]]
            except (IndexError, ValueError, KeyError):
                raise DataError("synthetic: rows must come from a synthetic scan") from None
        return render(seed, indices, size, color, progress), []
