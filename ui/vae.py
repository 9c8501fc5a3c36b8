"""VAE studio helpers: finding runs, cached models and latent codes, and small pure functions
(pictures, labels for attribute directions, plot selections, classifier read-outs)."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pandas as pd
import streamlit as st

from faceml.errors import FaceMLError
from faceml.modeling import kinds
from faceml.modeling.modelio import named_outputs
from faceml.runs import Run, RunDamaged, RunStore

TRAIN_HINT = "train one with Architecture = vae on the Train page"
INACTIVE_KL = 0.01
"""A latent dimension whose mean KL (nats) over the validation faces is below this carries
(almost) nothing: the decoder ignores it."""


# --------------------------------------------------------------------------- runs

def _config(run: Run) -> dict:
    try:
        return run.config
    except RunDamaged:
        return {}


def studio_run(run: Run) -> bool:
    """A run of a model kind the studio opens (the VAE); a damaged run is none."""
    return kinds.for_arch(_config(run).get("arch")).studio


def usable(run: Run) -> bool:
    """Finished (done, or stopped with a saved model) and loadable."""
    try:
        state = run.status().get("state")
    except RunDamaged:
        return False
    return state in ("done", "stopped") and run.saved_checkpoint() is not None


def vae_runs(store: RunStore) -> list[Run]:
    """Finished VAE runs, newest first."""
    return [r for r in reversed(store.list()) if studio_run(r) and usable(r)]


def not_a_vae_message(run: Run) -> str:
    kind = "classifier" if _config(run).get("arch") else "damaged run"
    return f"run {run.id} is a {kind}, not a VAE: {TRAIN_HINT}"


def no_vae_message() -> str:
    return f"There is no finished VAE run yet: {TRAIN_HINT} (latent size, β, filters)."


def same_data(a: dict, b: dict) -> bool:
    """Two runs' data options agree on dataset, image size and colour."""
    return all(a.get(k) == b.get(k) for k in ("dataset", "size", "color"))


def classifiers_for(store: RunStore, data: dict) -> list[Run]:
    """Finished classifier runs on the same dataset, size and colour, newest first."""
    out = []
    for r in reversed(store.list()):
        cfg = _config(r)
        if cfg.get("arch") and kinds.for_arch(cfg["arch"]).predicts_labels and usable(r) \
                and same_data(cfg.get("data", {}), data) and _has_heads(r):
            out.append(r)
    return out


def model_key(run: Run) -> tuple[str, str]:
    """What the cached model is keyed by: the run (its path or URL) and its model file's
    version (a new checkpoint is a new key)."""
    which = run.saved_checkpoint("best") or "best"
    return run.where, json.dumps(run.checkpoint_version(which))


@st.cache_resource(max_entries=6, show_spinner="Loading the model…")
def cached_model(run_where: str, stamp: str):
    """The run's best (or last) model; a new checkpoint (new stamp) loads again."""
    return Run(run_where).load_model()


def load(run: Run):
    return cached_model(*model_key(run))


@st.cache_data(max_entries=8, show_spinner="Encoding the validation faces…")
def encoded(run_dir: str, mtime: str, data_key: str, _model, _x: np.ndarray):
    """``(mu, logvar)`` of the faces ``_x`` (the run's validation split)."""
    from faceml.modeling import vae

    return vae.encode(_model, _x)


@st.cache_data(max_entries=8, show_spinner="Computing the map…")
def cached_map(run_dir: str, mtime: str, data_key: str, method: str, _mu: np.ndarray):
    from faceml.modeling import vae

    return vae.latent_map(_mu, method)


# --------------------------------------------------------------------------- latent space

def sample_faces(n: int, k: int, seed: int = 0) -> np.ndarray:
    """``min(k, n)`` distinct face indices out of ``n``, seeded and sorted (datasets are often
    ordered, e.g. UTKFace by age, so the first faces are not a fair sample)."""
    k = max(0, min(int(k), int(n)))
    return np.sort(np.random.default_rng(seed).choice(int(n), k, replace=False))


def dim_kl(mu: np.ndarray, logvar: np.ndarray) -> np.ndarray:
    """Mean KL(q(z_d|x) || N(0, 1)) of every latent dimension over the faces (nats)."""
    mu, logvar = np.asarray(mu, "float64"), np.asarray(logvar, "float64")
    if len(mu) == 0:
        return np.zeros(mu.shape[1] if mu.ndim == 2 else 0)
    return (0.5 * (mu ** 2 + np.exp(logvar) - 1.0 - logvar)).mean(0)


def slider_dims(kl: np.ndarray, limit: int = 64) -> list[int]:
    """The dimensions that get a slider: all of them, or the ``limit`` most active in order."""
    d = len(kl)
    if d <= limit:
        return list(range(d))
    return sorted(np.argsort(-np.asarray(kl), kind="stable")[:limit].tolist())


def clip_z(z, bound: float = 3.0) -> list[float]:
    """Latent values as the sliders can hold them (within ±bound, 2 decimals)."""
    return [round(float(v), 2) for v in np.clip(np.asarray(z, "float64"), -bound, bound)]


# --------------------------------------------------------------------------- labels

def label_columns(frame: pd.DataFrame, labels: dict) -> list[str]:
    """Columns a face can be coloured or split by: the dataset's labels, plus ``age_years`` when
    age is binned (with age in years, ``age_years`` only repeats ``age``)."""
    cols = [n for n in labels if n in frame.columns]
    binned = "age" in cols and not is_numeric_label(frame, "age")
    if "age_years" in frame.columns and "age_years" not in cols and binned:
        cols.append("age_years")
    return cols


def is_numeric_label(frame: pd.DataFrame, col: str) -> bool:
    return pd.api.types.is_numeric_dtype(frame[col])


def attribute_labels(values, threshold: float | None = None) -> np.ndarray:
    """Class of every face for an attribute direction: the value itself for a categorical label;
    for a number (age in years), ``"< T"`` or ``"≥ T"`` around ``threshold``."""
    values = pd.Series(values).reset_index(drop=True)
    if threshold is None:
        return values.astype(str).to_numpy()
    t = float(threshold)
    num = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
    out = np.where(num >= t, f"≥ {t:g}", f"< {t:g}").astype(object)
    out[np.isnan(num)] = "unknown"
    return out


def threshold_classes(threshold: float) -> tuple[str, str]:
    return f"< {float(threshold):g}", f"≥ {float(threshold):g}"


def face_caption(row: pd.Series, cols: list[str]) -> str:
    parts = []
    for c in cols:
        if c == "age_years" and "age" in cols:
            continue
        v = row.get(c)
        if v is None or (isinstance(v, float) and np.isnan(v)):
            continue
        parts.append(f"{v:g}y" if isinstance(v, int | float | np.number) else str(v))
    return " · ".join(parts)


# --------------------------------------------------------------------------- pictures

def to_display(img: np.ndarray) -> np.ndarray:
    """An ``(s, s, c)`` uint8 face as ``st.image`` shows it (gray squeezed to ``(s, s)``)."""
    img = np.asarray(img)
    return img[..., 0] if img.ndim == 3 and img.shape[-1] == 1 else img


def faces(imgs) -> list[np.ndarray]:
    return [to_display(i) for i in imgs]


def data_uri(img: np.ndarray) -> str:
    """A face as a base64 PNG data URI (for Plotly layout images)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(to_display(np.asarray(img, np.uint8))).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def spread_subset(xy: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """Indices of at most ``k`` points spread over a 2-D map: one (random) point from each
    occupied cell of a √k × √k grid, so thumbnails cover the map without piling up."""
    xy = np.asarray(xy, dtype=float)
    if len(xy) == 0 or k <= 0:
        return np.zeros(0, int)
    g = max(1, int(np.ceil(np.sqrt(k))))
    lo, hi = xy.min(0), xy.max(0)
    span = np.where(hi > lo, hi - lo, 1.0)
    cells = np.minimum(((xy - lo) / span * g).astype(int), g - 1)
    cell_id = cells[:, 0] * g + cells[:, 1]
    order = np.random.default_rng(seed).permutation(len(xy))
    _, first = np.unique(cell_id[order], return_index=True)
    picked = np.sort(order[first])
    return picked[:k]


def selected_index(event) -> int | None:
    """The face index (``customdata[0]``) of the first point selected in a Plotly chart
    (``st.plotly_chart(on_select="rerun")``'s return value), or None."""
    try:
        points = event["selection"]["points"]
    except (KeyError, TypeError):
        try:
            points = event.selection.points
        except AttributeError:
            return None
    for p in points or []:
        cd = p.get("customdata")
        if isinstance(cd, list | tuple) and cd:
            cd = cd[0]
        if cd is not None:
            try:
                return int(cd)
            except (TypeError, ValueError):
                continue
    return None


# --------------------------------------------------------------------------- classifier

def _has_heads(run: Run) -> bool:
    try:
        return bool(run.heads())
    except RunDamaged:
        return False


def head_specs(run: Run):
    """The run's heads, as training stored them."""
    heads = run.heads()
    if not heads:
        raise FaceMLError(f"run {run.id} has stored no heads (it never finished training)")
    return heads


def classify(model, img: np.ndarray) -> dict[str, np.ndarray]:
    """Outputs of a classifier for ONE raw uint8 face, calling the model directly (no predict)."""
    from keras import ops

    x = np.asarray(img)[None].astype("float32")
    out = named_outputs(model, model(x, training=False))
    return {k: np.asarray(ops.convert_to_numpy(v))[0] for k, v in out.items()}


def describe_outputs(outputs: dict[str, np.ndarray], heads) -> list[str]:
    """One line per head: the predicted class and its probability, or the predicted years."""
    lines = []
    for h in heads:
        if h.name not in outputs:
            continue
        v = np.asarray(outputs[h.name], dtype=float).reshape(-1)
        if h.kind == "regression":
            lines.append(f"**{h.name}** ≈ {v[0]:.1f}")
        elif h.kind == "binary":
            p = float(v[0])
            cls, prob = (h.classes[1], p) if p >= 0.5 else (h.classes[0], 1.0 - p)
            lines.append(f"**{h.name}**: {cls} ({prob:.0%})")
        else:
            i = int(np.argmax(v))
            lines.append(f"**{h.name}**: {h.classes[i]} ({float(v[i]):.0%})")
    return lines
