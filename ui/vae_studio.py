"""The VAE studio's panels: which VAE run, its metrics, and the six tabs (reconstructions,
random faces, latent sliders, traversal, interpolation, latent map). app_pages/vae.py lays them
out; the pure helpers (models, latent codes, pictures, labels) are in :mod:`ui.vae`."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.express as px
import streamlit as st

from faceml.modeling import vae
from faceml.errors import FaceMLError
from faceml.data.prepare import PrepOptions
from faceml.runs import Run, RunStore
from ui import vae as uv
from ui.common import load_prepared, user_errors
from ui.pick import run_picker, url_run

W = 88  # display width of a face in strips and grids
VALUES = np.linspace(-3.0, 3.0, 7)


def show(where, images, width: int, caption=None) -> None:
    """Faces as PNG (lossless: JPEG smears a 32-pixel face)."""
    where.image(images, width=width, caption=caption, output_format="PNG")


def need_data() -> None:
    st.info("This needs the run's data, which could not be loaded.")


# --------------------------------------------------------------------------- which run
def _problem(store: RunStore, runs: list[Run], asked: str | None) -> str | None:
    """Why the URL's run is not shown (None when it is, or no run was asked for)."""
    if not asked or asked in [r.id for r in runs]:
        return None
    if not store.exists(asked):
        return f"There is no run {asked!r} in the run store."
    r = store.get(asked)
    if not uv.studio_run(r):
        return uv.not_a_vae_message(r)
    state = r.status().get("state", "queued")
    return (f"VAE run {asked} is {state}, not finished: it appears here once it is done (a "
            "stopped run too, once it has saved an epoch).")


def pick_run(store: RunStore) -> Run:
    """The VAE run to look inside (``?run=`` synced); stops the page when there is none."""
    runs = uv.vae_runs(store)
    problem = _problem(store, runs, url_run())
    if not runs:
        if problem:
            st.error(problem)
        st.info(uv.no_vae_message())
        st.stop()
    if problem:
        st.warning(problem)
    by_id = {r.id: r for r in runs}

    def describe(run_id: str) -> str:
        c = by_id[run_id].config
        p, d = c.get("arch_params", {}), c.get("data", {})
        return (f"{run_id} · {d.get('dataset')} {d.get('size')}px {d.get('color')} · latent "
                f"{p.get('latent_dim', 10)} · β {p.get('beta', vae.DEFAULT_BETA)} · "
                f"{c.get('epochs')} epochs")

    return by_id[run_picker("VAE run", list(by_id), "vae_run", describe)]


# --------------------------------------------------------------------------- the studio's state
@dataclass
class Studio:
    """A loaded VAE run and its validation faces' latent codes (what every panel draws on)."""
    store: RunStore
    run: Run
    model: object
    D: int
    zkeys: list
    opts: PrepOptions
    run_dir: str  # the run's path or URL
    mtime: str  # its model's version (ui.vae.model_key)
    prep: object = None
    xv: np.ndarray | None = None
    frame_v: pd.DataFrame | None = None
    mu: np.ndarray | None = None
    lv: np.ndarray | None = None
    split_name: str = "val"
    data_key: str = ""
    kl: np.ndarray | None = None
    cols: list | None = None

    @property
    def N(self) -> int:
        return 0 if self.xv is None else len(self.xv)

    def caption(self, i: int) -> str:
        return f"#{i} " + uv.face_caption(self.frame_v.iloc[i], self.cols)

    def set_z(self, values) -> None:
        for k, v in zip(self.zkeys, uv.clip_z(values)):
            st.session_state[k] = v

    def face_input(self, label: str, key: str, default: int = 0) -> int:
        """A face index of the validation split (kept in range when the run changes)."""
        ss, n = st.session_state, self.N
        if not 0 <= int(ss.get(key, default)) < n:
            ss[key] = min(default, n - 1)
        ss.setdefault(key, min(default, n - 1))
        return int(st.number_input(label, 0, n - 1, step=1, key=key))


def load(store: RunStore, run: Run) -> Studio:
    """The run's model, and (when its data loads) the validation faces' μ and log σ²."""
    with user_errors():
        model = uv.load(run)
        if not vae.recognise(model):
            raise FaceMLError(uv.not_a_vae_message(run))
    run_dir, mtime = uv.model_key(run)
    D = vae.latent_dim(model)
    s = Studio(store, run, model, D, [f"vae_z_{run.id}_{i}" for i in range(D)],
               PrepOptions.from_dict(run.config["data"]), run_dir, mtime)
    try:
        s.prep = load_prepared(s.opts)
    except FaceMLError as e:
        st.warning(f"The run's data could not be loaded ({e}). Random faces, sliders and "
                   "traversals work without it; reconstructions, interpolation, the map and "
                   "attribute directions need it.")
    if s.prep is not None:
        for s.split_name in ("val", "test", "train"):
            idx = s.prep.split_index(s.split_name)
            if len(idx):
                break
        s.xv = s.prep.x[idx]
        s.frame_v = s.prep.frame.iloc[idx].reset_index(drop=True)
        s.data_key = json.dumps(s.opts.canonical(), sort_keys=True) + s.split_name
        with user_errors():
            s.mu, s.lv = uv.encoded(run_dir, mtime, s.data_key, model, s.xv)
        if len(s.mu) == 0:
            s.xv = s.frame_v = s.mu = s.lv = None
    s.kl = uv.dim_kl(s.mu, s.lv) if s.mu is not None else np.ones(D)
    s.cols = uv.label_columns(s.frame_v, s.prep.labels) if s.frame_v is not None else []
    return s


def metrics_row(s: Studio) -> None:
    m = s.run.metrics()
    split_m = m.get("val") or m.get("test") or {}
    if not split_m.get("mean_image_mse"):
        st.caption("This run has no stored reconstruction metrics (it was stopped before they "
                   "were computed).")
        return
    ratio = split_m["recon_mse"] / split_m["mean_image_mse"]
    c = st.columns(4)
    c[0].metric(f"Reconstruction MSE ({split_m.get('split', 'val')})",
                f"{split_m['recon_mse']:.4f}", help="pixels in [0, 1]; decode of μ")
    c[1].metric("Mean-image MSE", f"{split_m['mean_image_mse']:.4f}",
                help="predicting every face by the training split's per-pixel mean image")
    c[2].metric("Ratio", f"{ratio:.2f}", help="reconstruction / mean-image MSE: lower is "
                "better, 1 = no better than the mean face")
    c[3].metric("Latent size", s.D)


# --------------------------------------------------------------------------- panels
def reconstructions(s: Studio) -> None:
    if s.xv is None:
        need_data()
        return
    ss = st.session_state
    a, b, _ = st.columns([2, 1, 3])
    k = a.slider("Faces", 4, 24, 12, key="vae_rec_k")
    if b.button("Other faces", key="vae_rec_more"):
        ss["vae_rec_seed"] = ss.get("vae_rec_seed", 0) + 1
    pick = uv.sample_faces(s.N, k, ss.get("vae_rec_seed", 0))
    rec = vae.decode(s.model, s.mu[pick])
    err = ((rec.astype("float32") - s.xv[pick]) / 255.0) ** 2
    st.caption(f"{s.split_name.capitalize()} faces (top) and their reconstructions (bottom: "
               "decoded from μ, no sampling).")
    show(st, uv.faces(s.xv[pick]), width=W, caption=[s.caption(i) for i in pick])
    show(st, uv.faces(rec), width=W,
         caption=[f"mse {e:.4f}" for e in err.reshape(len(pick), -1).mean(1)])


def prior_samples(s: Studio) -> None:
    ss = st.session_state
    a, b, c = st.columns([2, 2, 1])
    n = a.slider("Faces", 4, 32, 12, key="vae_prior_n")
    spread = b.slider("Spread (σ of z)", 0.3, 1.5, 1.0, step=0.1, key="vae_prior_t",
                      help="1 = the prior N(0, I) the VAE was trained towards; smaller values "
                      "give more typical, less varied faces")
    if c.button("New faces", key="vae_reseed", type="primary"):
        ss["vae_prior_seed"] = ss.get("vae_prior_seed", 0) + 1
    seed = ss.get("vae_prior_seed", 0)
    z = np.random.default_rng(seed).standard_normal((n, s.D)).astype("float32") * spread
    st.caption(f"z ~ N(0, {spread:g}² I), seed {seed}: decoded directly, z = μ + σ·ε sampling "
               "is what training used; here z comes from the prior itself.")
    show(st, uv.faces(vae.decode(s.model, z)), width=W)


def _attribute(s: Studio, z: np.ndarray):
    """The attribute-direction widgets; returns (α, direction or None, strip or None)."""
    frame_v = s.frame_v
    st.markdown("**Attribute direction** — mean μ of class B minus mean μ of class A, "
                "added to the face above with its own slider.")
    a, b, c, d = st.columns(4)
    label = a.selectbox("Label", s.cols, key="vae_attr_label")
    if uv.is_numeric_label(frame_v, label):
        med = float(np.nanmedian(pd.to_numeric(frame_v[label], errors="coerce")))
        t = b.number_input("Threshold", value=float(round(med)), key=f"vae_thr_{label}",
                           help="A = below, B = at or above")
        classes = uv.attribute_labels(frame_v[label], t)
        ca, cb = uv.threshold_classes(t)
        c.caption(f"A: {label} {ca}")
        d.caption(f"B: {label} {cb}")
    else:
        classes = uv.attribute_labels(frame_v[label])
        labels = s.prep.labels
        present = [x for x in (labels[label].classes if label in labels else [])
                   if x in set(classes)] or sorted(set(classes))
        ca = b.selectbox("Class A", present, key=f"vae_a_{label}")
        rest = [x for x in present if x != ca] or present
        cb = c.selectbox("Class B", rest, key=f"vae_b_{label}")
    try:
        direction = vae.attribute_direction(s.mu, classes, ca, cb)
    except FaceMLError as e:
        st.warning(str(e))
        return 0.0, None, None
    na, nb = int((classes == ca).sum()), int((classes == cb).sum())
    alpha = d.slider(f"A → B ({ca} → {cb})", -2.0, 2.0, 0.0, step=0.05,
                     key=f"vae_alpha_{s.run.id}",
                     help=f"z + α·(mean μ of B − mean μ of A); {na} vs {nb} faces, "
                     f"‖direction‖ = {np.linalg.norm(direction):.2f}")
    strip = vae.decode(s.model, z[None] + np.linspace(-2, 2, 7)[:, None] * direction[None])
    return alpha, direction, strip


def _classifier_readout(s: Studio, face: np.ndarray) -> None:
    store, opts = s.store, s.opts
    clfs = uv.classifiers_for(store, s.run.config["data"])
    if not clfs:
        st.caption(f"No finished classifier on {opts.dataset} {opts.size}px {opts.color}: "
                   "train one on the Train page to see its prediction for this face.")
        return
    clf_id = st.selectbox("Classifier", [r.id for r in clfs], key="vae_clf",
                          format_func=lambda i: f"{i} · "
                          f"{', '.join(store.get(i).config.get('heads', []))}")
    with user_errors():
        clf = next(r for r in clfs if r.id == clf_id)
        lines = uv.describe_outputs(uv.classify(uv.load(clf), face), uv.head_specs(clf))
    st.markdown("  \n".join(lines))


@st.fragment
def sliders(s: Studio) -> None:
    """Latent sliders, the attribute direction and the decoded face: a fragment, so moving a
    slider reruns this panel only."""
    ss = st.session_state
    for k in s.zkeys:
        ss.setdefault(k, 0.0)
    a, b, c, d = st.columns([2, 1, 1, 1])
    if s.N:
        with a:
            i = s.face_input(f"Face ({s.split_name} index)", "vae_start_face")
        b.button("Start from this face", key="vae_from_face", on_click=s.set_z, args=(s.mu[i],),
                 help="Set the sliders to the face's μ")
    c.button("Zero", key="vae_zero", on_click=s.set_z, args=(np.zeros(s.D),),
             help="z = 0: the prior's mean face")
    rnd = np.random.default_rng(ss.get("vae_rand_n", 0)).standard_normal(s.D)
    if d.button("Random", key="vae_rand", on_click=s.set_z, args=(rnd,)):
        ss["vae_rand_n"] = ss.get("vae_rand_n", 0) + 1

    left, right = st.columns([1, 2])
    kl = s.kl
    dims = uv.slider_dims(kl)
    with right:
        if len(dims) < s.D:
            st.caption(f"The {len(dims)} most active of {s.D} dimensions (the others stay "
                       "where they are).")
        grid = st.columns(4)
        for j, i in enumerate(dims):
            inactive = kl[i] < uv.INACTIVE_KL
            grid[j % 4].slider(f"z{i}" + (" · inactive" if inactive else ""), -3.0, 3.0,
                               step=0.05, key=s.zkeys[i],
                               help=f"mean KL {kl[i]:.3f} nats over the {s.split_name} faces"
                               + (": the decoder (almost) ignores it" if inactive else ""))
    z = np.array([ss[k] for k in s.zkeys], "float32")
    alpha, direction, strip = _attribute(s, z) if s.N and s.cols else (0.0, None, None)
    face = vae.decode(s.model, z + alpha * direction if direction is not None else z)
    with left:
        show(st, uv.to_display(face[0]), width=240, caption="Decoded face")
        _classifier_readout(s, face[0])
    if strip is not None:
        show(st, uv.faces(strip), width=W, caption=[f"α {v:+.1f}" for v in np.linspace(-2, 2, 7)])


def traversal(s: Studio) -> None:
    ss, kl, D = st.session_state, s.kl, s.D
    a, b = st.columns([2, 3])
    centre = a.radio("Around", ["zero", "the sliders' face"], horizontal=True,
                     key="vae_trav_centre")
    active_only = b.checkbox("Only active dimensions", key="vae_trav_active",
                             help=f"mean KL ≥ {uv.INACTIVE_KL} nats")
    z0 = (np.array([ss.get(k, 0.0) for k in s.zkeys], "float32") if centre != "zero"
          else np.zeros(D, "float32"))
    grid = vae.traverse(s.model, z0, VALUES)
    st.caption("Each row moves one latent dimension through −3 … +3 (columns), the others "
               "fixed. The sliders' face is the one of the last full page run.")
    shown = [i for i in range(D) if not active_only or kl[i] >= uv.INACTIVE_KL]
    for i in shown:
        lc, r = st.columns([1, 12], vertical_alignment="center")
        lc.markdown(f"**z{i}**" + ("" if kl[i] >= uv.INACTIVE_KL else "  \n*inactive*"))
        show(r, uv.faces(grid[i]), width=int(W / 1.4) if D > 16 else W,
             caption=[f"{v:+g}" for v in VALUES] if i == shown[0] else None)


def interpolation(s: Studio) -> None:
    if s.xv is None:
        need_data()
        return
    xv = s.xv
    g = uv.sample_faces(s.N, 16)
    st.caption("Pick two faces by index (a sample is shown here; the latent map can pick any "
               "face).")
    show(st, uv.faces(xv[g]), width=int(W / 1.4), caption=[f"#{i}" for i in g])
    a, b, c = st.columns(3)
    with a:
        fa = s.face_input("Face A", "vae_interp_a", int(g[0]))
    with b:
        fb = s.face_input("Face B", "vae_interp_b", int(g[-1] if len(g) < 2 else g[1]))
    steps = c.slider("Steps", 3, 12, 8, key="vae_interp_steps")
    path = vae.interpolate(s.model, xv[fa], xv[fb], steps)
    t = np.linspace(0, 1, steps)
    show(st, [uv.to_display(xv[fa])] + uv.faces(path) + [uv.to_display(xv[fb])], width=W,
         caption=[s.caption(fa)] + [f"t {v:.2f}" for v in t] + [s.caption(fb)])
    st.caption("Straight line between the two faces' μ (endpoints included), between the "
               "originals.")


def latent_map(s: Studio) -> None:
    if s.xv is None or s.N < 3:
        need_data()
        return
    xv, N, cols, frame_v = s.xv, s.N, s.cols, s.frame_v
    a, b, c = st.columns([1, 1, 1])
    method = a.radio("Method", ["pca", "tsne"], horizontal=True, key="vae_map_method",
                     format_func=lambda m: {"pca": "PCA", "tsne": "t-SNE"}[m])
    colour = b.selectbox("Colour by", ["none"] + cols, key="vae_map_colour")
    thumbs = c.checkbox("Faces on the map", value=True, key="vae_map_thumbs")
    limit = 3000 if method == "pca" else 1500
    sub = (np.arange(N) if N <= limit
           else np.sort(np.random.default_rng(0).choice(N, limit, replace=False)))
    with user_errors():
        xy = uv.cached_map(s.run_dir, s.mtime, s.data_key + str(len(sub)), method, s.mu[sub])
    df = pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1], "face": sub})
    for col in cols:
        df[col] = frame_v[col].to_numpy()[sub]
    fig = px.scatter(df, x="x", y="y", color=None if colour == "none" else colour,
                     custom_data=["face"], hover_data={"x": False, "y": False, "face": True,
                                                       **{col: True for col in cols}},
                     height=560, opacity=0.75)
    fig.update_traces(marker=dict(size=6))
    if thumbs:
        span = float(max(np.ptp(xy[:, 0]), np.ptp(xy[:, 1]), 1e-6))
        for j in uv.spread_subset(xy, 64):
            fig.add_layout_image(source=uv.data_uri(xv[sub[j]]), x=float(xy[j, 0]),
                                 y=float(xy[j, 1]), xref="x", yref="y", sizex=span / 14,
                                 sizey=span / 14, xanchor="center", yanchor="middle",
                                 layer="above", opacity=0.9)
    fig.update_layout(margin=dict(t=10, b=10, l=10, r=10),
                      xaxis_title=f"{method.upper()} 1", yaxis_title=f"{method.upper()} 2")
    st.caption("μ of every face mapped to 2-D. Hover for its labels; click a point (or "
               "box-select) to see the face.")
    event = st.plotly_chart(fig, on_select="rerun", selection_mode=("points", "box"),
                            key=f"vae_map_{s.run.id}", width="stretch")
    i = uv.selected_index(event)
    if i is not None and 0 <= i < N:
        p, q, r1, r2 = st.columns([1, 1, 2, 2])
        show(p, uv.to_display(xv[i]), width=int(W * 1.5), caption=s.caption(i))
        show(q, uv.to_display(vae.decode(s.model, s.mu[i])[0]), width=int(W * 1.5),
             caption="reconstruction")
        r1.button("Start the sliders from this face", key="vae_map_to_sliders",
                  on_click=s.set_z, args=(s.mu[i],))
        r2.button("Use as interpolation face A", key="vae_map_to_a",
                  on_click=lambda i=i: st.session_state.__setitem__("vae_interp_a", i))
