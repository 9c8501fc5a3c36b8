"""Predict widgets: pick a model, and show what it says about the faces in one photo.

Privacy (the hosted copy is used by strangers): an uploaded photo lives only in local
variables of the script run that handles it (and in Streamlit's own per-session upload
store). Nothing here writes it to disk, puts it in ``st.session_state`` or in any
``st.cache_*`` (those are process-wide: shared by every session). Only the model and the
detector are cached, once per process, with ``st.cache_resource``; per-photo results are
recomputed on every rerun (about 0.1 s, see bench/predict.py).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

import numpy as np
import streamlit as st
from PIL import Image, ImageDraw

from faceml.detect import FaceDetector
from faceml.errors import FaceMLError
from faceml.predict import (FaceResult, Predictor, bundled_models, predict_all, predict_box,
                            read_upload)
from faceml.runs import RunDamaged, RunStore

log = logging.getLogger(__name__)
MAX_ALL = 6  # "all models" compares at most this many (bundled first, then the newest runs)
DISPLAY_WIDTH = 900
MAX_PHOTO_HEIGHT = 560  # a portrait photo is shown at most this tall
CROP_DISPLAY = 128
COLORS = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6",
          "#bfef45"]


# --- cached resources (process-wide; never anything about a photo) --------------------------------

@st.cache_resource(show_spinner=False)
def detector() -> FaceDetector:
    return FaceDetector()


@st.cache_resource(max_entries=MAX_ALL, show_spinner="Loading the model…")
def _predictor(kind: str, ident: str, root: str, stamp: tuple) -> Predictor:
    if kind == "run":
        return Predictor.from_run(RunStore(root).get(ident))
    return Predictor.from_file(ident)


@dataclass(frozen=True)
class Choice:
    kind: str  # "bundled" | "run"
    ident: str  # a path or a run id
    label: str
    root: str = ""

    def stamp(self) -> tuple:
        from pathlib import Path

        p = (Path(self.root) / self.ident / "best.keras") if self.kind == "run" \
            else Path(self.ident)
        try:
            st_ = p.stat()
            return (st_.st_mtime_ns, st_.st_size)
        except OSError:
            return (0, 0)

    def load(self) -> Predictor:
        return _predictor(self.kind, self.ident, self.root, self.stamp())


def model_choices(store: RunStore) -> list[Choice]:
    """Bundled models (models/*.keras) first, then finished runs with a model, newest first."""
    out = [Choice("bundled", str(p), f"Bundled: {p.stem}") for p in bundled_models()]
    runs = []
    for run in store.list():
        try:
            cfg = run.config
            state = run.status().get("state")
        except RunDamaged:
            continue
        if state != "done" or cfg.get("arch") == "vae" or not cfg.get("heads"):
            continue
        if not (run.has_model("best") or run.has_model("last")):
            continue
        created = run.status().get("created") or 0
        runs.append((created, Choice("run", run.id, f"Run {run.id} · {cfg['data']['dataset']} · "
                                     f"{cfg['arch']} · {', '.join(cfg['heads'])}",
                                     str(store.root))))
    out += [c for _, c in sorted(runs, key=lambda t: t[0], reverse=True)]
    return out


def model_picker(store: RunStore) -> list[Choice]:
    """The chosen model(s): one, or up to MAX_ALL side by side. Empty when there is none."""
    choices = model_choices(store)
    if not any(c.kind == "bundled" for c in choices):
        st.info("No bundled model in models/ yet" + (": choose one of your finished runs."
                                                     if choices else "."))
    if not choices:
        st.warning("There is no model to predict with: train one on the **Train** page (or "
                   "bundle a finished run with `python -m faceml bundle RUN_ID --name NAME`).")
        return []
    labels = [c.label for c in choices]
    options = labels + (["All models side by side"] if len(choices) > 1 else [])
    ss = st.session_state
    if ss.get("pr_model") not in options:
        ss["pr_model"] = options[0]
    picked = st.selectbox("Model", options, key="pr_model")
    if picked == "All models side by side":
        if len(choices) > MAX_ALL:
            st.caption(f"Showing the first {MAX_ALL} of {len(choices)} models (bundled first, "
                       "then the newest runs).")
        return choices[:MAX_ALL]
    return [choices[labels.index(picked)]]


def load_predictors(choices: list[Choice]) -> dict[str, Predictor]:
    """Loaded predictors by label; a model that cannot be loaded is an ``st.error`` and left out."""
    out = {}
    for c in choices:
        try:
            out[c.label] = c.load()
        except FaceMLError as e:
            st.error(f"{c.label}: {e}")
        except Exception as e:  # noqa: BLE001 - a damaged model file is a message, not a crash
            log.exception("loading %s failed", c.label)
            st.error(f"{c.label} could not be loaded ({type(e).__name__}); choose another model.")
    return out


# --- drawing --------------------------------------------------------------------------------------

def boxed(img: Image.Image, boxes: list[tuple], width: int = DISPLAY_WIDTH) -> Image.Image:
    """A display copy of the photo (at most ``width`` px wide) with numbered boxes."""
    from PIL import ImageFont

    f = min(1.0, width / img.width)
    shown = img.resize((max(1, round(img.width * f)), max(1, round(img.height * f))),
                       Image.Resampling.BILINEAR) if f < 1 else img.copy()
    draw = ImageDraw.Draw(shown)
    lw = max(2, round(max(shown.size) / 250))
    size = max(12, round(max(shown.size) / 30))
    font = ImageFont.load_default(size=size)
    for i, (x, y, w, h) in enumerate(boxes):
        col = COLORS[i % len(COLORS)]
        r = (x * f, y * f, (x + w) * f, (y + h) * f)
        draw.rectangle(r, outline=col, width=lw)
        label = str(i + 1)
        tx, ty = r[0], max(0.0, r[1] - size - 4)
        draw.rectangle((tx, ty, tx + size * 0.7 * len(label) + 8, ty + size + 4), fill=col)
        draw.text((tx + 4, ty + 1), label, fill="white", font=font)
    return shown


def _crop_display(crop: np.ndarray) -> Image.Image:
    """The model's input, enlarged with nearest-neighbour so its pixels stay visible."""
    arr = crop[..., 0] if crop.shape[-1] == 1 else crop
    im = Image.fromarray(arr, "L" if arr.ndim == 2 else "RGB")
    scale = max(1, CROP_DISPLAY // im.width)
    return im.resize((im.width * scale, im.height * scale), Image.Resampling.NEAREST)


def face_answers(face: FaceResult, predictor: Predictor) -> None:
    """One face as one model sees it: its input, every head's answer, warnings."""
    c1, c2 = st.columns([1, 3])
    c1.image(_crop_display(face.crop),
             caption=f"what the model sees: {predictor.size}×{predictor.size} "
                     f"{'gray' if predictor.color == 'gray' else 'RGB'}")
    with c2:
        for h in predictor.heads:
            a = face.heads[h.name]
            if a.kind == "regression":
                iv = (f" · 80 % interval {a.interval[0]:.0f}–{a.interval[1]:.0f} years"
                      if a.interval else "")
                st.markdown(f"**{h.name}**: {a.years:.0f} years{iv}")
                st.caption(a.interval_note)
            else:
                st.markdown(f"**{h.name}**: {a.label}")
                for cls, p in sorted(a.probs.items(), key=lambda t: -t[1]):
                    st.progress(float(min(max(p, 0.0), 1.0)), text=f"{cls} — {p:.1%}")
    for w in face.warnings:
        st.warning(w, icon=":material/warning:")


# --- one photo ------------------------------------------------------------------------------------

def _manual_box(img: Image.Image, token: str) -> tuple[int, int, int, int]:
    """Sliders for a box (reset for every new photo: their keys carry the photo's token)."""
    w, h = img.size
    side = min(w, h)
    c = st.columns(4)
    x = c[0].slider("Left", 0, max(0, w - 1), (w - side) // 2, key=f"pr_bx_{token}")
    y = c[1].slider("Top", 0, max(0, h - 1), (h - side) // 2, key=f"pr_by_{token}")
    bw = c[2].slider("Width", 1, w, side, key=f"pr_bw_{token}")
    bh = c[3].slider("Height", 1, h, side, key=f"pr_bh_{token}")
    return x, y, bw, bh


def show_prediction(data: bytes, predictors: dict[str, Predictor], det: FaceDetector,
                    max_bytes: int | None = None) -> list[FaceResult] | None:
    """Everything about one photo given as bytes: decode, detect, answer, draw.

    Bad input is an ``st.error`` (never an exception); returns the faces shown (the first
    model's), or None when the photo could not be read."""
    try:
        img = read_upload(data, max_bytes=max_bytes)
    except FaceMLError as e:
        st.error(f"This file cannot be used: {e}")
        return None
    if not predictors:
        st.error("No model could be loaded.")
        return None
    token = hashlib.sha256(data).hexdigest()[:12]  # widget keys only; not the photo
    can_box = min(img.size) >= 2  # sliders need a range
    try:
        dets, results = predict_all(img, predictors, det)
        manual = st.checkbox("Choose the box myself", key=f"pr_manual_{token}",
                             value=False) if dets else False
        if not dets or manual:
            if not dets:
                st.warning("No face found in this photo (the detector looks for frontal faces "
                           "at least about 8 % of the photo's size). Use the whole image, or "
                           "draw a box around the face.")
            how = st.radio("Answer for", ["the whole image", "a box I choose"], horizontal=True,
                           key=f"pr_how_{token}", index=1 if manual else 0,
                           disabled=not can_box)
            box = _manual_box(img, token) if how == "a box I choose" and can_box else None
            results = {n: [predict_box(img, p, box)] for n, p in predictors.items()}
    except FaceMLError as e:
        st.error(str(e))
        return None
    except Exception:  # noqa: BLE001 - a stranger's photo must never show a traceback
        log.exception("prediction failed")
        st.error("Something went wrong while reading the faces in this photo; try another "
                 "photo. (The details are in the server log.)")
        return None
    first = next(iter(results.values()))
    boxes = [f.box for f in first]
    shown = boxed(img, boxes)
    st.image(shown, width=min(shown.width, round(MAX_PHOTO_HEIGHT * shown.width / shown.height)),
             caption=f"{img.width}×{img.height} px · "
                     + (f"{len(dets)} face(s) found" if dets else "no face found")
                     + " · processed in memory, never stored")
    for i, face in enumerate(first):
        score = ("" if face.score is None else
                 f" · detector score {face.score:g}" + (" (weak)" if face.weak else ""))
        st.subheader({"detected": f"Face {i + 1}", "manual": "Your box"}.get(
            face.source, "The whole image"), divider="gray")
        st.caption(f"box x={face.box[0]}, y={face.box[1]}, {face.box[2]}×{face.box[3]} px{score}")
        if len(results) == 1:
            face_answers(face, next(iter(predictors.values())))
        else:
            cols = st.columns(len(results))
            for col, (name, faces) in zip(cols, results.items()):
                with col:
                    st.markdown(f"**{name}**")
                    face_answers(faces[i], predictors[name])
    return first
