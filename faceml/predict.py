"""Predict on a photo: decode it safely, find the faces, and answer every head of a model.

    img = read_upload(data)                                # bytes → RGB PIL image (in memory)
    predictor = Predictor.from_run(RunStore().get(run_id))  # or Predictor.from_file(path)
    faces = predict_faces(img, predictor, FaceDetector())   # [] when no face is found
    faces[0].crop                  # the uint8 pixels the model got (its size and colour)
    faces[0].heads["age"].years, faces[0].heads["age"].interval

What the model sees
-------------------
A face's crop box (square, see :mod:`faceml.detect`) is cut from the decoded RGB photo and
turned into pixels by :func:`faceml.data.imageio.to_pixels` with the model's own
``image_size`` and ``color`` (from its ``FacePreprocessing`` layer), exactly as its training
faces were; :meth:`Predictor.crop_as_model_sees` *is* that array, and it is what the page shows.

Decoding uploads (:func:`read_upload`)
--------------------------------------
Everything happens in memory: the bytes go through :func:`faceml.data.imageio.open_image`
(``exif=True``: EXIF orientation applied; decompression bombs refused above
``Image.MAX_IMAGE_PIXELS``), an uploaded file's name is never used. Only JPEG/MPO, PNG, WebP,
GIF and BMP content is decoded (whatever the extension says); an animated GIF gives its first
frame; 16-bit images are scaled by their maximum, transparency is composited on white and
CMYK/palette/gray images are converted to RGB (the same rules as ``to_pixels``). Anything
else is a :class:`~faceml.errors.DataError` with one clear sentence.

Age interval
------------
From the run's stored validation predictions (``predictions.csv``, split ``val``): the
residuals ``age_true - age_pred`` of the validation faces whose *predicted* age falls in the
same decade as this face's prediction give an 80 % interval (their 10th and 90th percentiles
added to the prediction, clipped at 0). With fewer than ``MIN_BUCKET`` = 30 such faces the
residuals of all validation faces are used (said in ``interval_note``); without stored
predictions (a bare ``.keras`` file) there is no interval.

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

A weak detection (see :mod:`faceml.detect`) also gets a warning.

``python -m faceml predict IMAGE… [--model FILE.keras | --run RUN_ID] [--json]`` is
:func:`add_cli`. Module-level imports stay light (no Keras, no OpenCV).
"""

from __future__ import annotations

import io
import json
import sys
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from faceml import paths
from faceml.errors import DataError, FaceMLError
from faceml.heads import HeadSpec

if TYPE_CHECKING:
    import pandas as pd

    from faceml.detect import Detection, FaceDetector
    from faceml.runs import Run

__all__ = ["ALLOWED_FORMATS", "FaceResult", "HeadAnswer", "Predictor", "Reference", "add_cli",
           "as_rgb", "bundled_models", "default_model", "predict_all", "predict_box",
           "predict_faces", "read_upload", "UPLOAD_TYPES"]

ALLOWED_FORMATS = ("JPEG", "MPO", "PNG", "WEBP", "GIF", "BMP")
UPLOAD_TYPES = ["jpg", "jpeg", "png", "webp"]
RARE_SHARE = 0.05
MIN_BUCKET = 30
INTERVAL_Q = (10.0, 90.0)


# --- decoding -------------------------------------------------------------------------------------

def _sniff(data: bytes) -> str | None:
    """The format Pillow sees in the header (nothing decoded), or None when it sees none."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as probe:
                return probe.format
    except Exception:  # noqa: BLE001 - open_image gives the precise reason
        return None


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


def read_upload(data: bytes, max_bytes: int | None = None) -> Image.Image:
    """Uploaded bytes → an RGB PIL image, EXIF orientation applied, or a clear DataError.

    Nothing touches the disk and no file name is used."""
    from faceml.data.imageio import open_image

    if data is None or len(data) == 0:
        raise DataError("the file is empty (0 bytes): not an image")
    if max_bytes is not None and len(data) > max_bytes:
        raise DataError(f"the file is {len(data) / 1e6:.1f} MB; the limit is "
                        f"{max_bytes / 1e6:.0f} MB")
    fmt = _sniff(bytes(data))
    if fmt is not None and fmt not in ALLOWED_FORMATS:
        raise DataError(f"{fmt} images are not accepted: use a JPEG, PNG, WebP or GIF photo")
    try:
        img = open_image(bytes(data), exif=True)
        if img.width < 1 or img.height < 1:
            raise DataError("the image has no pixels")
        return as_rgb(img)
    except FaceMLError:
        raise
    except MemoryError:
        raise DataError("the image is too large to decode in memory") from None
    except Exception as e:  # noqa: BLE001 - a stranger's file must never give a traceback
        raise DataError(f"image cannot be decoded ({type(e).__name__}: "
                        f"{str(e).splitlines()[0] if str(e) else 'no detail'})") from None


def read_image_file(path: str | Path) -> Image.Image:
    """A local image file (the CLI) through :func:`read_upload`; errors name the file."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: no such image file")
    try:
        return read_upload(p.read_bytes())
    except FaceMLError as e:
        raise DataError(f"{p.name}: {e}") from None


# --- what a model's stored predictions tell -------------------------------------------------------

def _decade(years: float) -> int:
    return int(max(0.0, years) // 10)


def _decade_name(d: int) -> str:
    return f"{d * 10}–{d * 10 + 9}"


@dataclass
class Reference:
    """Validation residuals and label shares of one model (see the module docstring)."""

    source: str
    residuals: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)

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
                ok = np.isfinite(yt) & np.isfinite(yp)
                ref.residuals[h.name] = (yp[ok], yt[ok] - yp[ok])
                dec = pd.Series([_decade_name(_decade(v)) for v in yt[np.isfinite(yt)]])
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
    from faceml.evaluate import run_heads, stored_predictions

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
        from faceml.metrics import read_predictions

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
    box: tuple[int, int, int, int]  # x, y, w, h in the photo's pixels (what was cropped)
    score: float | None  # detector neighbours; None for a whole-image or manual box
    weak: bool
    crop: np.ndarray  # uint8 (size, size, c): exactly the model's input
    heads: dict[str, HeadAnswer]
    warnings: list[str] = field(default_factory=list)
    model: str = ""
    source: str = "detected"  # detected | manual | whole image

    def to_dict(self) -> dict:
        return {"box": [int(v) for v in self.box], "score": self.score, "weak": self.weak,
                "source": self.source, "model": self.model,
                "heads": {k: v.to_dict() for k, v in self.heads.items()},
                "warnings": list(self.warnings)}


class Predictor:
    """A loaded model with its own preprocessing (size, colour) and head class names."""

    def __init__(self, model, name: str = "model", reference: Reference | None = None):
        from faceml.layers import find_preprocessing

        try:
            pre = find_preprocessing(model)
        except LookupError:
            raise FaceMLError(f"{name} has no FacePreprocessing layer: it was not made by "
                              "FaceML, so its image size and colour are unknown") from None
        meta = dict(pre.metadata)
        if meta.get("arch") == "vae":
            raise FaceMLError(f"{name} is a VAE: it reconstructs faces and predicts no labels")
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
        from faceml.layers import find_preprocessing
        from faceml.modelio import load_model

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
        cfg = run.config
        if cfg.get("arch") == "vae":
            raise FaceMLError(f"run {run.id} is a VAE: it reconstructs faces and predicts "
                              "no labels")
        return cls(run.load_model("best"), f"run {run.id}", reference_for_run(run))

    # pixels and outputs -----------------------------------------------------------------------
    def crop_as_model_sees(self, img: Image.Image, box) -> np.ndarray:
        """The uint8 ``(size, size, c)`` array the model gets for ``box`` of ``img``."""
        from faceml.data.imageio import to_pixels

        x, y, w, h = (int(v) for v in box)
        return to_pixels(img.crop((x, y, x + w, y + h)), self.size, self.color)

    def outputs(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Raw model outputs for uint8 pixels ``(n, size, size, c)``, one array per head."""
        x = np.asarray(x, dtype=np.uint8)
        if x.ndim == 3:
            x = x[None]
        with self._lock:  # one model serves every session: one call at a time
            out = self.model.predict_on_batch(x)
        if not isinstance(out, dict):
            names = list(getattr(self.model, "output_names", None) or [h.name for h in self.heads])
            out = dict(zip(names, out if isinstance(out, list | tuple) else [out]))
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

def _warn(pred: Predictor, answers: dict[str, HeadAnswer], weak: bool, score) -> list[str]:
    out = []
    if weak:
        out.append(f"weak detection (score {score:g}): the detector is unsure this is a face; "
                   "check the box")
    if pred.reference is not None:
        for h in pred.heads:
            w = pred.reference.rare(h, answers[h.name])
            if w:
                out.append(w)
    return out


def _answer(img: Image.Image, pred: Predictor, boxes: list[tuple], scores: list, weaks: list,
            source: str) -> list[FaceResult]:
    if not boxes:
        return []
    crops = np.stack([pred.crop_as_model_sees(img, b) for b in boxes])
    answers = pred.answers(crops)
    return [FaceResult(tuple(int(v) for v in b), s, w, c, a, _warn(pred, a, w, s), pred.name,
                       source)
            for b, s, w, c, a in zip(boxes, scores, weaks, crops, answers)]


def predict_faces(img: Image.Image, predictor: Predictor, detector: FaceDetector,
                  detections: list[Detection] | None = None) -> list[FaceResult]:
    """Every face the detector finds, answered by ``predictor``; ``[]`` when none is found
    (then offer :func:`predict_box` on the whole image or a box the user draws)."""
    dets = detector.detect(img) if detections is None else detections
    return _answer(img, predictor, [d.box for d in dets], [d.score for d in dets],
                   [d.weak for d in dets], "detected")


def predict_box(img: Image.Image, predictor: Predictor, box=None) -> FaceResult:
    """One face in a box the user chose (``None``: the whole image, centre-cropped square)."""
    from faceml.detect import clip_box

    if box is None:
        box, source = (0, 0, img.width, img.height), "whole image"
    else:
        box, source = clip_box(box, img.width, img.height), "manual"
    return _answer(img, predictor, [box], [None], [False], source)[0]


def predict_all(img: Image.Image, predictors: dict[str, Predictor],
                detector: FaceDetector) -> tuple[list[Detection], dict[str, list[FaceResult]]]:
    """One photo through several models side by side: the faces are detected once and every
    model answers them with its own preprocessing (``results[name][i]`` is face ``i``)."""
    dets = detector.detect(img)
    return dets, {name: predict_faces(img, p, detector, dets) for name, p in predictors.items()}


# --- models on disk -------------------------------------------------------------------------------

def bundled_models() -> list[Path]:
    d = paths.models_dir()
    return sorted(p for p in d.glob("*.keras") if p.is_file()) if d.is_dir() else []


def default_model() -> Path | None:
    """The bundled model used when none is named (the first by name), or None."""
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


# --- CLI ------------------------------------------------------------------------------------------

def add_cli(sub) -> None:
    """``python -m faceml predict IMAGE… [--model FILE.keras | --run RUN_ID] [--json]``"""
    s = sub.add_parser("predict", help="find the faces in photos and predict their labels",
                       description="Detect faces (OpenCV Haar cascade) and answer every head "
                       "of a model, with the model's own preprocessing.")
    s.add_argument("images", nargs="+", metavar="IMAGE", help="JPEG, PNG, WebP, GIF or BMP")
    g = s.add_mutually_exclusive_group()
    g.add_argument("--model", default=None, metavar="FILE.keras", help="a FaceML model file")
    g.add_argument("--run", default=None, metavar="RUN_ID", help="a run's best model")
    s.add_argument("--whole", action="store_true",
                   help="when no face is found, answer for the whole image")
    s.add_argument("--json", action="store_true",
                   help="one JSON line per image: {image, faces: [...]}")
    s.set_defaults(fn=cmd_predict)


def cmd_predict(a) -> int:
    from faceml.detect import FaceDetector

    images = [(str(p), read_image_file(p)) for p in a.images]  # bad input fails before Keras
    predictor = load_predictor(a.model, a.run)
    detector = FaceDetector()
    for name, img in images:
        faces = predict_faces(img, predictor, detector)
        if not faces and a.whole:
            faces = [predict_box(img, predictor, None)]
        if a.json:
            print(json.dumps({"image": name, "width": img.width, "height": img.height,
                              "model": predictor.name,
                              "faces": [f.to_dict() for f in faces]}))
            continue
        print(f"{name}: {len(faces)} face(s)" + ("" if faces else
              " — none found; --whole answers for the whole image"))
        for i, f in enumerate(faces, 1):
            x, y, w, h = f.box
            score = ("" if f.score is None else
                     f", score {f.score:g}" + (" (weak)" if f.weak else ""))
            print(f"  face {i} at x={x} y={y} {w}×{h}{score}: "
                  + "; ".join(ans.text() for ans in f.heads.values()))
            for wmsg in f.warnings:
                print(f"    warning: {wmsg}")
    sys.stdout.flush()
    return 0
