"""VAE studio: look inside a trained VAE run — reconstructions, random faces from the prior,
latent sliders with attribute directions, traversals, interpolation and a map of the latent
space."""

import json

import numpy as np
import pandas as pd
import plotly.express as px
import streamlit as st

from faceml.modeling import vae
from faceml.errors import FaceMLError
from faceml.data.prepare import PrepOptions
from faceml.runs import RunStore
from ui import vae as uv
from ui.common import load_prepared, user_errors

W = 88  # display width of a face in strips and grids
VALUES = np.linspace(-3.0, 3.0, 7)


def show(where, images, width: int, caption=None) -> None:
    """Faces as PNG (lossless: JPEG smears a 32-pixel face)."""
    where.image(images, width=width, caption=caption, output_format="PNG")

st.title("VAE studio")
st.caption("Reconstructions, new faces from the prior z ~ N(0, I), latent sliders, traversals, "
           "interpolation and a map of the latent space of a trained variational auto-encoder.")
store = RunStore()
ss = st.session_state

# --------------------------------------------------------------------------- which run
runs = uv.vae_runs(store)
asked = st.query_params.get("run")
problem = None
if asked and asked not in [r.id for r in runs]:
    if not store.exists(asked):
        problem = f"There is no run {asked!r} in the run store."
    else:
        r = store.get(asked)
        if not uv.is_vae_run(r):
            problem = uv.not_a_vae_message(r)
        else:
            state = r.status().get("state", "queued")
            problem = (f"VAE run {asked} is {state}, not finished: it appears here once it is "
                       "done (a stopped run too, once it has saved an epoch).")
if not runs:
    if problem:
        st.error(problem)
    st.info(uv.no_vae_message())
    st.stop()
if problem:
    st.warning(problem)

by_id = {r.id: r for r in runs}
if asked in by_id:
    ss["vae_run"] = asked
elif ss.get("vae_run") not in by_id:
    ss["vae_run"] = runs[0].id


def _describe(run_id: str) -> str:
    c = by_id[run_id].config
    p, d = c.get("arch_params", {}), c.get("data", {})
    return (f"{run_id} · {d.get('dataset')} {d.get('size')}px {d.get('color')} · latent "
            f"{p.get('latent_dim', 10)} · β {p.get('beta', vae.DEFAULT_BETA)} · "
            f"{c.get('epochs')} epochs")


def _picked() -> None:
    st.query_params["run"] = ss["vae_run"]


st.selectbox("VAE run", list(by_id), key="vae_run", format_func=_describe, on_change=_picked)
run = by_id[ss["vae_run"]]
cfg = run.config
with user_errors():
    model = uv.load(run)
    if not vae.is_vae(model):
        raise FaceMLError(uv.not_a_vae_message(run))
run_dir, mtime = uv.model_key(run)
D = vae.latent_dim(model)
ZKEYS = [f"vae_z_{run.id}_{i}" for i in range(D)]

# --------------------------------------------------------------------------- metrics
m = run.metrics()
split_m = m.get("val") or m.get("test") or {}
if split_m.get("mean_image_mse"):
    ratio = split_m["recon_mse"] / split_m["mean_image_mse"]
    c = st.columns(4)
    c[0].metric(f"Reconstruction MSE ({split_m.get('split', 'val')})",
                f"{split_m['recon_mse']:.4f}", help="pixels in [0, 1]; decode of μ")
    c[1].metric("Mean-image MSE", f"{split_m['mean_image_mse']:.4f}",
                help="predicting every face by the training split's per-pixel mean image")
    c[2].metric("Ratio", f"{ratio:.2f}", help="reconstruction / mean-image MSE: lower is "
                "better, 1 = no better than the mean face")
    c[3].metric("Latent size", D)
else:
    st.caption("This run has no stored reconstruction metrics (it was stopped before they "
               "were computed).")

# --------------------------------------------------------------------------- data
opts = PrepOptions.from_dict(cfg["data"])
prep = None
try:
    prep = load_prepared(opts)
except FaceMLError as e:
    st.warning(f"The run's data could not be loaded ({e}). Random faces, sliders and traversals "
               "work without it; reconstructions, interpolation, the map and attribute "
               "directions need it.")
xv = frame_v = mu = lv = None
split_name = "val"
if prep is not None:
    for split_name in ("val", "test", "train"):
        idx = prep.split_index(split_name)
        if len(idx):
            break
    xv = prep.x[idx]
    frame_v = prep.frame.iloc[idx].reset_index(drop=True)
    data_key = json.dumps(opts.canonical(), sort_keys=True) + split_name
    with user_errors():
        mu, lv = uv.encoded(run_dir, mtime, data_key, model, xv)
    if len(mu) == 0:
        xv = frame_v = mu = lv = None
kl = uv.dim_kl(mu, lv) if mu is not None else np.ones(D)
cols = uv.label_columns(frame_v, prep.labels) if frame_v is not None else []
N = 0 if xv is None else len(xv)


def caption(i: int) -> str:
    return f"#{i} " + uv.face_caption(frame_v.iloc[i], cols)


def need_data() -> None:
    st.info("This needs the run's data, which could not be loaded.")


def set_z(values) -> None:
    for k, v in zip(ZKEYS, uv.clip_z(values)):
        ss[k] = v


def face_input(label: str, key: str, default: int = 0) -> int:
    """A face index of the validation split (kept in range when the run changes)."""
    if not 0 <= int(ss.get(key, default)) < N:
        ss[key] = min(default, N - 1)
    ss.setdefault(key, min(default, N - 1))
    return int(st.number_input(label, 0, N - 1, step=1, key=key))


tabs = st.tabs(["Reconstructions", "Random faces", "Latent sliders", "Traversal",
                "Interpolation", "Latent map"])

# --------------------------------------------------------------------------- reconstructions
with tabs[0]:
    if xv is None:
        need_data()
    else:
        a, b, _ = st.columns([2, 1, 3])
        k = a.slider("Faces", 4, 24, 12, key="vae_rec_k")
        if b.button("Other faces", key="vae_rec_more"):
            ss["vae_rec_seed"] = ss.get("vae_rec_seed", 0) + 1
        seed = ss.get("vae_rec_seed", 0)
        pick = uv.sample_faces(N, k, seed)
        rec = vae.decode(model, mu[pick])
        err = ((rec.astype("float32") - xv[pick]) / 255.0) ** 2
        st.caption(f"{split_name.capitalize()} faces (top) and their reconstructions (bottom: "
                   "decoded from μ, no sampling).")
        show(st, uv.faces(xv[pick]), width=W, caption=[caption(i) for i in pick])
        show(st, uv.faces(rec), width=W,
                 caption=[f"mse {e:.4f}" for e in err.reshape(len(pick), -1).mean(1)])

# --------------------------------------------------------------------------- prior samples
with tabs[1]:
    a, b, c = st.columns([2, 2, 1])
    n = a.slider("Faces", 4, 32, 12, key="vae_prior_n")
    spread = b.slider("Spread (σ of z)", 0.3, 1.5, 1.0, step=0.1, key="vae_prior_t",
                      help="1 = the prior N(0, I) the VAE was trained towards; smaller values "
                      "give more typical, less varied faces")
    if c.button("New faces", key="vae_reseed", type="primary"):
        ss["vae_prior_seed"] = ss.get("vae_prior_seed", 0) + 1
    seed = ss.get("vae_prior_seed", 0)
    z = np.random.default_rng(seed).standard_normal((n, D)).astype("float32") * spread
    st.caption(f"z ~ N(0, {spread:g}² I), seed {seed}: decoded directly, z = μ + σ·ε sampling "
               "is what training used; here z comes from the prior itself.")
    show(st, uv.faces(vae.decode(model, z)), width=W)


# --------------------------------------------------------------------------- sliders
@st.fragment
def sliders_panel() -> None:
    for k in ZKEYS:
        ss.setdefault(k, 0.0)
    a, b, c, d = st.columns([2, 1, 1, 1])
    if N:
        with a:
            i = face_input(f"Face ({split_name} index)", "vae_start_face")
        b.button("Start from this face", key="vae_from_face", on_click=set_z, args=(mu[i],),
                 help="Set the sliders to the face's μ")
    c.button("Zero", key="vae_zero", on_click=set_z, args=(np.zeros(D),),
             help="z = 0: the prior's mean face")
    rnd = np.random.default_rng(ss.get("vae_rand_n", 0)).standard_normal(D)
    if d.button("Random", key="vae_rand", on_click=set_z, args=(rnd,)):
        ss["vae_rand_n"] = ss.get("vae_rand_n", 0) + 1

    left, right = st.columns([1, 2])
    dims = uv.slider_dims(kl)
    with right:
        if len(dims) < D:
            st.caption(f"The {len(dims)} most active of {D} dimensions (the others stay where "
                       "they are).")
        grid = st.columns(4)
        for j, i in enumerate(dims):
            inactive = kl[i] < uv.INACTIVE_KL
            grid[j % 4].slider(f"z{i}" + (" · inactive" if inactive else ""), -3.0, 3.0,
                               step=0.05, key=ZKEYS[i],
                               help=f"mean KL {kl[i]:.3f} nats over the {split_name} faces"
                               + (": the decoder (almost) ignores it" if inactive else ""))
    z = np.array([ss[k] for k in ZKEYS], "float32")

    # attribute direction
    alpha, direction, strip = 0.0, None, None
    if N and cols:
        st.markdown("**Attribute direction** — mean μ of class B minus mean μ of class A, "
                    "added to the face above with its own slider.")
        a, b, c, d = st.columns(4)
        label = a.selectbox("Label", cols, key="vae_attr_label")
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
            present = [x for x in (prep.labels[label].classes if label in prep.labels else [])
                       if x in set(classes)] or sorted(set(classes))
            ca = b.selectbox("Class A", present, key=f"vae_a_{label}")
            rest = [x for x in present if x != ca] or present
            cb = c.selectbox("Class B", rest, key=f"vae_b_{label}")
        try:
            direction = vae.attribute_direction(mu, classes, ca, cb)
        except FaceMLError as e:
            st.warning(str(e))
        if direction is not None:
            na, nb = int((classes == ca).sum()), int((classes == cb).sum())
            alpha = d.slider(f"A → B ({ca} → {cb})", -2.0, 2.0, 0.0, step=0.05,
                             key=f"vae_alpha_{run.id}",
                             help=f"z + α·(mean μ of B − mean μ of A); {na} vs {nb} faces, "
                             f"‖direction‖ = {np.linalg.norm(direction):.2f}")
            strip = vae.decode(model, z[None] + np.linspace(-2, 2, 7)[:, None] * direction[None])
    face = vae.decode(model, z + alpha * direction if direction is not None else z)

    with left:
        show(st, uv.to_display(face[0]), width=240, caption="Decoded face")
        clfs = uv.classifiers_for(store, cfg["data"])
        if clfs:
            clf_id = st.selectbox("Classifier", [r.id for r in clfs], key="vae_clf",
                                  format_func=lambda i: f"{i} · "
                                  f"{', '.join(store.get(i).config.get('heads', []))}")
            with user_errors():
                clf = next(r for r in clfs if r.id == clf_id)
                lines = uv.describe_outputs(uv.classify(uv.load(clf), face[0]),
                                            uv.head_specs(clf))
            st.markdown("  \n".join(lines))
        else:
            st.caption(f"No finished classifier on {opts.dataset} {opts.size}px {opts.color}: "
                       "train one on the Train page to see its prediction for this face.")
    if strip is not None:
        show(st, uv.faces(strip), width=W, caption=[f"α {v:+.1f}" for v in np.linspace(-2, 2, 7)])


with tabs[2]:
    sliders_panel()

# --------------------------------------------------------------------------- traversal
with tabs[3]:
    a, b = st.columns([2, 3])
    centre = a.radio("Around", ["zero", "the sliders' face"], horizontal=True,
                     key="vae_trav_centre")
    active_only = b.checkbox("Only active dimensions", key="vae_trav_active",
                             help=f"mean KL ≥ {uv.INACTIVE_KL} nats")
    z0 = (np.array([ss.get(k, 0.0) for k in ZKEYS], "float32") if centre != "zero"
          else np.zeros(D, "float32"))
    grid = vae.traverse(model, z0, VALUES)
    st.caption("Each row moves one latent dimension through −3 … +3 (columns), the others "
               "fixed. The sliders' face is the one of the last full page run.")
    shown = [i for i in range(D) if not active_only or kl[i] >= uv.INACTIVE_KL]
    for i in shown:
        lc, r = st.columns([1, 12], vertical_alignment="center")
        lc.markdown(f"**z{i}**" + ("" if kl[i] >= uv.INACTIVE_KL else "  \n*inactive*"))
        show(r, uv.faces(grid[i]), width=int(W / 1.4) if D > 16 else W,
                caption=[f"{v:+g}" for v in VALUES] if i == shown[0] else None)

# --------------------------------------------------------------------------- interpolation
with tabs[4]:
    if xv is None:
        need_data()
    else:
        g = uv.sample_faces(N, 16)
        st.caption("Pick two faces by index (a sample is shown here; the latent map can pick "
                   "any face).")
        show(st, uv.faces(xv[g]), width=int(W / 1.4), caption=[f"#{i}" for i in g])
        a, b, c = st.columns(3)
        with a:
            fa = face_input("Face A", "vae_interp_a", int(g[0]))
        with b:
            fb = face_input("Face B", "vae_interp_b", int(g[-1] if len(g) < 2 else g[1]))
        steps = c.slider("Steps", 3, 12, 8, key="vae_interp_steps")
        path = vae.interpolate(model, xv[fa], xv[fb], steps)
        t = np.linspace(0, 1, steps)
        show(st, [uv.to_display(xv[fa])] + uv.faces(path) + [uv.to_display(xv[fb])], width=W,
                 caption=[caption(fa)] + [f"t {v:.2f}" for v in t] + [caption(fb)])
        st.caption("Straight line between the two faces' μ (endpoints included), between the "
                   "originals.")

# --------------------------------------------------------------------------- latent map
with tabs[5]:
    if xv is None or N < 3:
        need_data()
    else:
        a, b, c = st.columns([1, 1, 1])
        method = a.radio("Method", ["pca", "tsne"], horizontal=True, key="vae_map_method",
                         format_func=lambda s: {"pca": "PCA", "tsne": "t-SNE"}[s])
        colour = b.selectbox("Colour by", ["none"] + cols, key="vae_map_colour")
        thumbs = c.checkbox("Faces on the map", value=True, key="vae_map_thumbs")
        limit = 3000 if method == "pca" else 1500
        sub = (np.arange(N) if N <= limit
               else np.sort(np.random.default_rng(0).choice(N, limit, replace=False)))
        with user_errors():
            xy = uv.cached_map(run_dir, mtime, data_key + str(len(sub)), method, mu[sub])
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
                                key=f"vae_map_{run.id}", width="stretch")
        i = uv.selected_index(event)
        if i is not None and 0 <= i < N:
            p, q, r1, r2 = st.columns([1, 1, 2, 2])
            show(p, uv.to_display(xv[i]), width=int(W * 1.5), caption=caption(i))
            show(q, uv.to_display(vae.decode(model, mu[i])[0]), width=int(W * 1.5),
                    caption="reconstruction")
            r1.button("Start the sliders from this face", key="vae_map_to_sliders",
                      on_click=set_z, args=(mu[i],))
            r2.button("Use as interpolation face A", key="vae_map_to_a",
                      on_click=lambda i=i: ss.__setitem__("vae_interp_a", i))
