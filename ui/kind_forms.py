"""The Train form's model part, one per model kind (:mod:`faceml.modeling.kinds`): the widgets
of a kind's own settings, and the session keys that show a run's configuration in them.

``form_for(kind)`` looks a kind's part up by the kind's name in :data:`FORMS`; a kind without
its own part gets the generic one (its parameters as JSON, and the labels to predict when the
kind has heads), so a new kind trains from the page without any code here.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

import streamlit as st

from faceml.config import TrainConfig
from faceml.data.heads import BINARY_OUTPUTS
from faceml.modeling import architectures, kinds
from ui.common import held, kept

RANDOM = "random"  # the Weights option that means weights=None (no download)


@dataclass
class ModelForm:
    arch: str
    params: dict = field(default_factory=dict)
    heads: list = field(default_factory=list)
    weights: dict = field(default_factory=dict)
    age_loss: str = "mae"
    class_weights: bool = False
    binary_output: str = "sigmoid"


@dataclass(frozen=True)
class KindForm:
    """``draw(kind, arch, caption_column, data_options, labels) -> ModelForm`` and
    ``state(cfg) -> {session key: value}`` (what :func:`ui.runs.form_state` fills)."""

    draw: Callable[..., ModelForm]
    state: Callable[[TrainConfig], dict]


# --- the labels to predict (any kind with heads) ---------------------------------------------
def _heads_part(arch: str, params: dict, opts, labels) -> ModelForm:
    ss = st.session_state
    default_heads = [n for n in labels if n != "age"][:1] or list(labels)[:1]
    hk = f"heads_{opts.dataset}"
    if any(h not in labels for h in ss.get(hk, [])):
        ss.pop(hk)
    heads = kept(hk, st.multiselect("Predict", list(labels),
                                    **held(hk, default_heads, param="default"),
                                    help="One head per label; several make a multi-task model"))
    weights = {}
    if len(heads) > 1:
        cols = st.columns(len(heads))
        for col, h in zip(cols, heads):
            weights[h] = float(kept(f"w_{h}", col.number_input(
                f"Loss weight: {h}", 0.0, 10.0, step=0.05,
                **held(f"w_{h}", 0.1 if labels[h].kind == "years" else 1.0, lo=0.0, hi=10.0))))
    a, b, c = st.columns(3)
    age_loss = kept("age_loss", a.radio(
        "Age loss", ["mae", "huber"], horizontal=True, **held("age_loss", "mae", ["mae", "huber"]),
        disabled=not any(labels[h].kind == "years" for h in heads) or opts.age != "years"))
    class_weights = kept("class_weights", b.checkbox("Balance classes (class weights)",
                                                     **held("class_weights", False)))
    binary_output = kept("binary_output", c.radio(
        "Binary output", list(BINARY_OUTPUTS), horizontal=True,
        **held("binary_output", "sigmoid", list(BINARY_OUTPUTS)),
        disabled=not any(labels[h].kind == "binary" for h in heads),
        help="A two-class label: one sigmoid unit, or two softmax units (the FairFace and "
             "CelebA notebooks)"))
    return ModelForm(arch, params, heads, weights, age_loss, class_weights, binary_output)


def _heads_state(cfg: TrainConfig) -> dict:
    out: dict = {f"heads_{cfg.data.dataset}": list(cfg.heads)}
    for h, w in (cfg.head_weights or {}).items():
        out[f"w_{h}"] = float(w)
    out["age_loss"] = cfg.age_loss
    out["class_weights"] = bool(cfg.class_weights)
    out["binary_output"] = cfg.binary_output
    return out


def _json_params(key: str, default: dict) -> dict:
    txt = kept(key, st.text_area("Builder parameters (JSON)", height=180,
                                 **held(key, json.dumps(default, indent=1))))
    try:
        return dict(json.loads(txt))
    except (TypeError, ValueError) as e:
        st.error(f"The builder parameters are not valid JSON: {e}")
        st.stop()


# --- classifier: a preset's own settings, then the heads ---------------------------------------
def _classifier_form(kind, arch: str, c2, opts, labels) -> ModelForm:
    spec = architectures.get(arch)
    c2.caption(f"**{spec.title}** — {spec.description}")
    params: dict = {}
    if spec.transfer:
        a, b = st.columns(2)
        w = kept("tl_weights", a.radio(
            "Weights", ["imagenet", RANDOM], horizontal=True,
            **held("tl_weights", "imagenet", ["imagenet", RANDOM]),
            help="ImageNet weights are downloaded by Keras on first use; offline, choose "
                 f"{RANDOM} initialisation"))
        params["weights"] = None if w == RANDOM else "imagenet"
        params["fine_tune"] = kept("tl_finetune", b.checkbox(
            "Fine-tune the top block", **held("tl_finetune", False)))
        if "pooling" in spec.defaults:  # a configurable head (VGG16); defaults left unsaid
            params.update(_head_part(spec.defaults))
    elif arch == "custom":
        params.update(_json_params("custom_json", spec.defaults))
    return _heads_part(arch, params, opts, labels)


def _head_part(defaults: dict) -> dict:
    """Pooling and dense layers of a configurable transfer head; only what differs from the
    defaults goes into the parameters (the default model keeps its run id)."""
    a, b = st.columns(2)
    pooling = kept("tl_pooling", a.radio("Pooling", ["gap", "flatten"], horizontal=True,
                                          **held("tl_pooling", defaults["pooling"],
                                                 ["gap", "flatten"])))
    text = kept("tl_dense", b.text_input(
        "Dense layers (units, comma-separated; empty = none)",
        **held("tl_dense", ",".join(map(str, defaults["dense"])))))
    try:
        dense = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        st.error(f"Dense layers must be whole numbers separated by commas, not {text!r}")
        st.stop()
    out: dict = {}
    if pooling != defaults["pooling"]:
        out["pooling"] = pooling
    if dense != defaults["dense"]:
        out["dense"] = dense
    return out


def _classifier_state(cfg: TrainConfig) -> dict:
    out: dict = {}
    p = cfg.arch_params or {}
    if cfg.arch in architectures.names() and architectures.get(cfg.arch).transfer:
        spec = architectures.get(cfg.arch)
        out["tl_weights"] = "random" if "weights" in p and p["weights"] is None else "imagenet"
        out["tl_finetune"] = bool(p.get("fine_tune", False))
        if "pooling" in spec.defaults:
            out["tl_pooling"] = p.get("pooling", spec.defaults["pooling"])
            dense = [p["dense_units"]] if p.get("dense_units") else \
                p.get("dense", spec.defaults["dense"])
            out["tl_dense"] = ",".join(map(str, dense))
    elif cfg.arch == "custom":
        out["custom_json"] = json.dumps(p, indent=1)
    return {**out, **_heads_state(cfg)}


# --- VAE: latent size, β, reconstruction loss, filters ----------------------------------------
def _vae_form(kind, arch: str, c2, opts, labels) -> ModelForm:
    vd = kind.defaults_for(arch)
    notebook = "" if "filters" in vd else (
        " The FairFace notebook's VAE, its layers exactly, for 32×32 faces (the notebook "
        "sampled with exp(logvar), a bug).")
    c2.caption("Convolutional variational auto-encoder: learns a latent space of faces "
               "(see the VAE page). Sampling z = μ + exp(½·logvar)·ε." + notebook)
    a, b, c, d = st.columns(4)
    params: dict = {}
    params["latent_dim"] = int(kept("vae_latent", a.number_input(
        "Latent size", 1, 512, **held("vae_latent", vd["latent_dim"], lo=1, hi=512))))
    params["beta"] = float(kept("vae_beta", b.number_input(
        "β (KL weight)", 0.0, 10.0, step=0.01, format="%.3f",
        **held("vae_beta", vd["beta"], lo=0.0, hi=10.0))))
    params["recon"] = kept("vae_recon", c.selectbox(
        "Reconstruction loss", ["mse", "bce"], **held("vae_recon", vd["recon"], ["mse", "bce"])))
    if "filters" not in vd:  # the notebook's VAE: its layers are fixed
        return ModelForm(arch, params)
    filt = kept("vae_filters", d.text_input(
        "Filters per level", **held("vae_filters", ",".join(map(str, vd["filters"])))))
    try:
        params["filters"] = [int(v) for v in filt.split(",") if v.strip()]
    except ValueError:
        st.error(f"Filters must be whole numbers separated by commas, not {filt!r}")
        st.stop()
    return ModelForm(arch, params)


def _vae_state(cfg: TrainConfig) -> dict:
    v = {**cfg.kind.defaults_for(cfg.arch), **(cfg.arch_params or {})}
    out = dict(vae_latent=int(v["latent_dim"]), vae_beta=float(v["beta"]), vae_recon=v["recon"])
    if "filters" in v:
        out["vae_filters"] = ",".join(str(f) for f in v["filters"])
    return out


# --- any other kind: its parameters as JSON (and its heads) ----------------------------------
def _generic_form(kind, arch: str, c2, opts, labels) -> ModelForm:
    c2.caption(f"**{kind.title}** ({arch})")
    params = _json_params(f"params_{kind.name}", kind.defaults)
    if kind.uses_heads:
        return _heads_part(arch, params, opts, labels)
    return ModelForm(arch, params)


def _generic_state(cfg: TrainConfig) -> dict:
    kind = cfg.kind
    out = {f"params_{kind.name}": json.dumps(cfg.arch_params or {}, indent=1)}
    return {**out, **_heads_state(cfg)} if kind.uses_heads else out


FORMS: dict[str, KindForm] = {
    "classifier": KindForm(_classifier_form, _classifier_state),
    "vae": KindForm(_vae_form, _vae_state),
}
GENERIC = KindForm(_generic_form, _generic_state)


def form_for(kind: kinds.ModelKind) -> KindForm:
    return FORMS.get(kind.name, GENERIC)
