"""Predict widgets: pick a model, and show what it says about the faces in one photo.

Privacy (the hosted copy is used by strangers): an uploaded photo lives only in local
variables of the script run that handles it (and in Streamlit's own per-session upload
store). Nothing here writes it to disk, puts it in ``st.session_state`` or in any
``st.cache_*`` (those are process-wide: shared by every session). Only the model and the
detector are cached, once per process, with ``st.cache_resource``; per-photo results are
recomputed on every rerun (about 0.1–0.2 s, see ``bench/predict.py --photos``; the whole
rerun of the page for a 20 MP upload costs the server about 0.2 s of CPU, measured in
``tests/browser/test_predict_flow.py``, once Streamlit's own per-run clean-up is tamed:
:func:`ui.common.keep_keras_between_runs`, :func:`_freeze_heap`). The only
per-photo things in ``st.session_state`` are the widgets' choices and a box the user entered
(four numbers), under keys made from the upload's id.

Images are shown as inline ``data:`` URIs (``st.image`` passes a ``data:`` URL through
untouched), never through Streamlit's media store: a media file's ``/media/…`` URL can be
fetched by any client while it lives, a ``data:`` URI exists only in this session's page. The
photo shown is a JPEG of a downscaled copy (at most ``DISPLAY_WIDTH`` × ``MAX_PHOTO_HEIGHT``
px): the browser never receives the full-size photo, and no full-size image is encoded.
"""

from __future__ import annotations

import base64
import gc
import hashlib
import io
import json
import logging
from dataclasses import dataclass

import numpy as np
import streamlit as st
from PIL import Image, ImageDraw

from faceml.serving.detect import FaceDetector
from faceml.errors import FaceMLError
from faceml.modeling import kinds
from faceml.serving.predict import (FaceResult, Photo, Predictor, bundled_models, predict_all,
                                    predict_box, read_photo, too_small)
from faceml.runs import RunDamaged, RunStore
from ui.common import hosted

log = logging.getLogger(__name__)
ALL = "All models side by side"
MAX_ALL = 6  # side by side compares at most this many models (the user picks them)
COMPARE_DEFAULT = 3  # ... by default the first three (bundled first, then the newest runs)
COMPARE_COLUMNS = 3  # models a row: each gets a third of the page, its crop at full size
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
        pred = Predictor.from_run(RunStore(root).get(ident))
    else:
        pred = Predictor.from_file(ident)
    _freeze_heap()
    return pred


def _freeze_heap() -> None:
    """Move every object alive now (TensorFlow, Keras, the loaded models: long-lived) out of
    the garbage collector's sight (``gc.freeze``). Streamlit runs a full ``gc.collect(2)``
    after every script run (``runner.postScriptGC``); over TensorFlow's objects it was three
    quarters of the server's CPU per upload (profiled with py-spy in the served app: with
    this and :func:`ui.common.keep_keras_between_runs`, 0.73 → 0.23 s per 20 MP upload).
    Unfrozen and collected first, so that a model evicted from the cache since the last load
    is freed."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


@dataclass(frozen=True)
class Choice:
    kind: str  # "bundled" | "run"
    ident: str  # a path or a run id
    label: str
    root: str = ""

    def stamp(self) -> tuple:
        from pathlib import Path

        try:
            if self.kind == "run":
                run = RunStore(self.root).get(self.ident)
                return tuple(run.checkpoint_version(run.saved_checkpoint("best") or "best")
                             or (0, 0))
            st_ = Path(self.ident).stat()
            return (st_.st_mtime_ns, st_.st_size)
        except (OSError, FaceMLError):
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
        if state != "done" or not kinds.for_arch(cfg.get("arch")).predicts_labels \
                or not cfg.get("heads"):
            continue
        if run.saved_checkpoint() is None:
            continue
        created = run.status().get("created") or 0
        runs.append((created, Choice("run", run.id, f"Run {run.id} · {cfg['data']['dataset']} · "
                                     f"{cfg['arch']} · {', '.join(cfg['heads'])}",
                                     store.location)))
    out += [c for _, c in sorted(runs, key=lambda t: t[0], reverse=True)]
    return out


def model_picker(store: RunStore) -> list[Choice]:
    """The chosen model(s): one, or the ones picked (at most MAX_ALL) to compare side by side.
    Empty when there is none (or none is picked)."""
    choices = model_choices(store)
    if not any(c.kind == "bundled" for c in choices):
        st.info("No bundled model in models/ yet" + (": choose one of your finished runs."
                                                     if choices else "."))
    if not choices:
        st.warning("There is no model to predict with: train one on the **Train** page (or "
                   "bundle a finished run with `python -m faceml bundle RUN_ID --name NAME`).")
        return []
    labels = [c.label for c in choices]
    options = labels + ([ALL] if len(choices) > 1 else [])
    ss = st.session_state
    if ss.get("pr_model") not in options:
        ss["pr_model"] = options[0]
    picked = st.selectbox("Model", options, key="pr_model")
    if picked == ALL:
        return _compared(choices)
    return [choices[labels.index(picked)]]


def _compared(choices: list[Choice]) -> list[Choice]:
    """The models to compare, picked by the user (default: the first COMPARE_DEFAULT, i.e.
    the bundled ones first, then the newest runs)."""
    labels = [c.label for c in choices]
    ss = st.session_state
    kept = [v for v in ss.get("pr_compare") or [] if v in labels][:MAX_ALL]
    if "pr_compare" not in ss or kept != ss["pr_compare"]:
        ss["pr_compare"] = kept or labels[:COMPARE_DEFAULT]
    chosen = st.multiselect("Models to compare", labels, key="pr_compare",
                            max_selections=MAX_ALL,
                            help=f"At most {MAX_ALL}; bundled models first, then the newest "
                                 "runs.")
    if not chosen:
        st.info("Choose at least one model to compare.")
    return [choices[labels.index(v)] for v in chosen]


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

def data_uri(img: Image.Image, fmt: str = "JPEG") -> str:
    """An image as an inline ``data:`` URI (no URL any other client could fetch)."""
    buf = io.BytesIO()
    if fmt == "JPEG":
        img.convert("RGB").save(buf, "JPEG", quality=85)
    else:
        img.save(buf, fmt)
    return f"data:image/{fmt.lower()};base64,{base64.b64encode(buf.getvalue()).decode('ascii')}"


def boxed(img: Image.Image | Photo, boxes: list[tuple], width: int = DISPLAY_WIDTH,
          height: int = MAX_PHOTO_HEIGHT) -> Image.Image:
    """A display copy of the photo (at most ``width`` × ``height`` px, from a copy already
    decoded) with numbered boxes; ``boxes`` are in the photo's pixels."""
    from PIL import ImageFont

    photo = Photo.from_image(img)
    shown = photo.preview(width, height)  # a new image: drawing never touches the photo
    fx, fy = shown.width / photo.width, shown.height / photo.height
    draw = ImageDraw.Draw(shown)
    lw = max(2, round(max(shown.size) / 250))
    size = max(12, round(max(shown.size) / 30))
    font = ImageFont.load_default(size=size)
    for i, (x, y, w, h) in enumerate(boxes):
        col = COLORS[i % len(COLORS)]
        r = (x * fx, y * fy, (x + w) * fx, (y + h) * fy)
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


def face_answers(face: FaceResult, predictor: Predictor, stacked: bool = False) -> None:
    """One face as one model sees it: its input, every head's answer, warnings. ``stacked``
    (a model's column, side by side with others): the input above the answers, at its own
    size, rather than in a narrow column beside them."""
    crop = _crop_display(face.crop)
    c1, c2 = (st.container(), st.container()) if stacked else st.columns([1, 3])
    c1.image(data_uri(crop, "PNG"), **({"width": crop.width} if stacked else {}),
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


# --- uploads ------------------------------------------------------------------------------------

# The uploader refuses a file above server.maxUploadSize in the browser, before the script sees
# it, and says why only in a tooltip on the file's chip. This watches the uploader: for each
# file refused since the last accepted one it writes the reason in the page, and it removes
# the previous photo (so its answers go with it) when a newer file was refused. Everything
# else (type, damage, pixels) reaches the script, which says so with st.error.
_NOTICE_JS = """
<div id="pr-upload-notice" data-testid="prUploadNotice"></div>
<script>
(() => {
  const KEY = ".st-key-%(key)s", HINT = %(hint)s;
  const render = () => {
    const box = document.getElementById("pr-upload-notice");
    const up = document.querySelector(KEY);
    if (!box || !up) return;
    const chips = [...up.querySelectorAll('[data-testid="stFileChip"]')];
    const bad = chips.filter(c => c.getAttribute("aria-invalid") === "true");
    const good = chips.filter(c => !bad.includes(c));
    const lastGood = good.length ? chips.indexOf(good[good.length - 1]) : -1;
    const text = bad.filter(c => chips.indexOf(c) > lastGood).map(c => {
      const name = (c.querySelector('[data-testid="stFileChipName"]') || {}).textContent || "";
      const why = ((c.querySelector('[role="alert"]') || {}).textContent || "")
        .replace(/^Error:\\s*/, "");
      return `${name} was not uploaded: ${why}`;
    }).join(" ");
    if (box.dataset.text !== text) {
      box.dataset.text = text;
      box.textContent = "";
      if (text) {
        const div = document.createElement("div");
        div.setAttribute("role", "alert");
        div.style.cssText = "background:#ffecec;color:#7d1a1a;border-radius:0.5rem;" +
          "padding:0.75rem 1rem;margin:0.25rem 0 0.5rem 0;font-size:0.95rem";
        div.textContent = `${text} ${HINT}`;
        box.appendChild(div);
      }
    }
    // a refused file after an accepted one: the accepted photo is no longer the one asked
    // about, so remove it (and with it its answers)
    const last = chips[chips.length - 1];
    if (last && bad.includes(last)) {
      good.forEach(c => {
        const del = c.querySelector('[data-testid="stFileChipDeleteBtn"] button');
        if (del) del.click();
      });
    }
  };
  if (window.__prUploadNotice) window.__prUploadNotice.disconnect();
  const main = document.querySelector('[data-testid="stMain"]') || document.body;
  window.__prUploadNotice = new MutationObserver(render);
  window.__prUploadNotice.observe(main, {subtree: true, childList: true, attributes: true,
                                         attributeFilter: ["aria-invalid"]});
  render();
})();
</script>
"""


def upload_notice(key: str, limit_mb: int) -> None:
    """Under the uploader ``key``: what is accepted (always shown), and the reason for any
    file the browser refused (see ``_NOTICE_JS``)."""
    hint = (f"Photos are accepted as JPEG, PNG, WebP or GIF files up to {limit_mb} MB "
            "(JPEG photos up to 100 megapixels).")
    st.caption(hint)
    st.html(_NOTICE_JS % {"key": key, "hint": json.dumps(hint)}, unsafe_allow_javascript=True)


# --- the photo section: upload or camera, then the answers ---------------------------------------

@st.fragment
def photo_section(predictors: dict[str, Predictor], max_mb: int) -> None:
    """The photo's source, its uploader (or camera) and everything about the photo.

    A fragment: an upload, a new photo or a box reruns only this part of the page, so the
    server does not run the model picker again and the browser redraws only this section
    (in ``bench/hosted_load.py`` the visitors' browsers, redrawing the page, took four times
    the server's CPU per upload)."""
    source = st.radio("Photo", ["Upload", "Camera"], horizontal=True, key="pr_source")
    if source == "Upload":
        # every type reaches the script, which says in the page why a file cannot be used
        # (the uploader's own type filter would say it only in a tooltip); sizes: see
        # upload_notice
        upload = st.file_uploader("A photo with one or more faces", key="pr_upload",
                                  help="JPEG, PNG, WebP or GIF" + (", at most 10 MB"
                                                                   if hosted() else ""))
        upload_notice("pr_upload", max_mb)
    else:
        upload = st.camera_input("Take a photo", key="pr_camera")
    if upload is None:
        st.info("Upload a photo (or take one with the camera) to see the predictions.")
        return
    show_prediction(upload.getvalue(), predictors, detector(),
                    max_bytes=max_mb * 1024 * 1024, token=getattr(upload, "file_id", None))


# --- one photo ------------------------------------------------------------------------------------

WHOLE, BOX = "the whole photo", "a box I enter"
TURNED = {90: "turned a quarter turn counter-clockwise", 180: "turned upside down",
          270: "turned a quarter turn clockwise"}


def _box_form(photo: Photo, token: str) -> tuple[int, int, int, int] | None:
    """Four sliders for a box in the photo's pixels and an "Answer for this box" button; the
    box is kept (four numbers in ``st.session_state``, keyed by the upload) once entered.
    Returns the entered box, or None before the user has entered one."""
    w, h = photo.size
    side = min(w, h)
    key = f"pr_box_{token}"
    with st.form(f"pr_boxform_{token}", border=False):
        c = st.columns(4)
        x = c[0].slider("Left", 0, max(0, w - 1), (w - side) // 2, key=f"pr_bx_{token}")
        y = c[1].slider("Top", 0, max(0, h - 1), (h - side) // 2, key=f"pr_by_{token}")
        bw = c[2].slider("Width", 1, w, side, key=f"pr_bw_{token}")
        bh = c[3].slider("Height", 1, h, side, key=f"pr_bh_{token}")
        if st.form_submit_button("Answer for this box", key=f"pr_boxgo_{token}"):
            st.session_state[key] = (int(x), int(y), int(bw), int(bh))
    return st.session_state.get(key)


def show_prediction(data: bytes, predictors: dict[str, Predictor], det: FaceDetector,
                    max_bytes: int | None = None,
                    token: str | None = None) -> list[FaceResult] | None:
    """Everything about one photo given as bytes: decode, detect, answer, draw.

    Bad input is an ``st.error`` (never an exception). When no face is found the photo is
    shown and nothing is answered until the user picks the whole photo or enters a box.
    ``token`` names this upload's widgets (default: a hash of the bytes). Returns the faces
    answered (the first model's; ``[]`` while waiting for a choice), or None when the photo
    cannot be used."""
    try:
        photo = read_photo(data, max_bytes=max_bytes)
    except FaceMLError as e:
        st.error(f"This file cannot be used: {e}")
        return None
    if not predictors:
        st.error("No model could be loaded.")
        return None
    token = token or hashlib.sha256(data).hexdigest()[:12]  # widget keys only; not the photo
    tiny = next((m for m in (too_small(photo.size, p) for p in predictors.values()) if m), None)
    if tiny:
        st.error(f"This photo cannot be answered: {tiny}.")
        return None
    note = ""
    try:
        dets, results = predict_all(photo, predictors, det)
        if dets and dets[0].turn:
            photo = photo.turned(dets[0].turn)
            note = f" · faces found with the photo {TURNED[dets[0].turn]}"
        manual = st.checkbox("Choose the box myself", key=f"pr_manual_{token}",
                             value=False) if dets else False
        how = BOX if manual else None
        if not dets:
            st.warning("No face found in this photo, upright or turned (the detector looks "
                       "for frontal faces at least about 4 % of the photo's size). Nothing "
                       "is answered until you choose: the whole photo, or a box you enter "
                       "around the face.")
            how = st.radio("Answer for", [WHOLE, BOX], horizontal=True, index=None,
                           key=f"pr_how_{token}")
        if how == WHOLE:
            results = {n: [predict_box(photo, p, None)] for n, p in predictors.items()}
        elif how == BOX:
            box = _box_form(photo, token)
            results = ({n: [predict_box(photo, p, box)] for n, p in predictors.items()}
                       if box else {n: [] for n in predictors})
        elif not dets:
            results = {n: [] for n in predictors}
    except FaceMLError as e:
        st.error(str(e))
        return None
    except Exception:  # noqa: BLE001 - a stranger's photo must never show a traceback
        log.exception("prediction failed")
        st.error("Something went wrong while reading the faces in this photo; try another "
                 "photo. (The details are in the server log.)")
        return None
    first = next(iter(results.values()))
    shown = boxed(photo, [f.box for f in first])
    st.image(data_uri(shown), width=shown.width,
             caption=f"{photo.width}×{photo.height} px · "
                     + (f"{len(dets)} face(s) found" if dets else "no face found")
                     + note + " · processed in memory, never stored")
    if not dets and not first:
        st.info("Choose **the whole photo** or **a box I enter** above to get an answer.")
    for i, face in enumerate(first):
        score = ("" if face.score is None else
                 f" · detector score {face.score:g}" + (" (weak)" if face.weak else ""))
        st.subheader({"detected": f"Face {i + 1}", "manual": "Your box"}.get(
            face.source, "The whole photo"), divider="gray")
        st.caption(f"box x={face.box[0]}, y={face.box[1]}, {face.box[2]}×{face.box[3]} px{score}")
        if len(results) == 1:
            face_answers(face, next(iter(predictors.values())))
        else:  # at most COMPARE_COLUMNS models a row, each readable
            items = list(results.items())
            for r in range(0, len(items), COMPARE_COLUMNS):
                cols = st.columns(COMPARE_COLUMNS, gap="medium")
                for col, (name, faces) in zip(cols, items[r:r + COMPARE_COLUMNS]):
                    with col:
                        st.markdown(f"**{name}**")
                        face_answers(faces[i], predictors[name], stacked=True)
    return first
