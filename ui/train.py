"""The Train page's form: which run it shows (and is filled from), the model and hyperparameter
widgets, the configuration they make, and Launch. The page (app_pages/train.py) lays these
out; the run panel and the runs table live in :mod:`ui.runs`."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import streamlit as st

from faceml.modeling import architectures
from faceml.training import jobs
from faceml.errors import FaceMLError
from faceml.runs import Run, RunStore, valid_run_id
from faceml.config import AUGMENTATIONS, OPTIMIZERS, SCHEDULES, TrainConfig
from ui.common import error_text, keep, kept, policy, user_errors, visitor
from ui.pick import show_in_url, url_run
from ui.runs import TRANSFER_ARCHS, VAE_DEFAULTS, form_state, kept_settings, launch_config, \
    layer_table_for

# The run the form was last filled from (or launched): {"run", "loaded", "base"}, with "loaded"
# its canonical config and "base" the form's own config as first drawn from it.
FORM = "_train_form"
RANDOM = "random"  # the Weights option that means weights=None (no download)


def held(key: str, default, options=None, param: str = "value", lo=None, hi=None) -> dict:
    """A widget's ``key`` (as :func:`ui.common.keep` gives it its remembered value) and that
    value once more as the widget's own default: ``value``/``default``, or ``index`` in
    ``options``.

    A value written to ``st.session_state`` reaches the browser only once, as a one-shot
    ``set_value`` on the widget's message in that run. A browser that mounts the widget from a
    later run's message (a slow first paint while the live panel's fragments rerun every 2 s)
    draws the widget's own default instead (lr 0, epochs 0, no heads) and sends it back with
    the next change, so the form drifts from the run it was filled from. With the value as the
    default, every message draws it. (A number outside ``lo``..``hi`` is left to Streamlit,
    which resets it, rather than raising here.)"""
    keep(key, default)
    v = st.session_state[key]
    if options is not None:
        opts = list(options)
        return {"key": key, "index": opts.index(v) if v in opts else 0}
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        return {"key": key}
    return {"key": key, param: v}


def header() -> None:
    from ui.runs import training_device

    dev = training_device()
    st.caption(f"Training runs in a background worker on **{dev['device']}** "
               f"(Keras backend: {dev['backend']}). One job trains at a time; others queue.")
    pol = policy()
    if pol.hosted:
        st.caption(f"Hosted demo: at most {pol.caps.epochs} epochs and "
                   f"{pol.caps.params:,} parameters a model, {pol.caps.faces:,} faces, "
                   f"{pol.caps.jobs_per_visitor} run(s) queued or training per visitor; you "
                   "can stop only the runs you launched.")


def asked_run(store: RunStore) -> Run | None:
    """The run this session shows (Launch, a row picked) or the URL's ``?run=`` asks for."""
    ss = st.session_state
    asked = ss.get("run_id") or url_run()
    if not asked:
        return None
    try:
        return store.get(asked)
    except FaceMLError:
        ss.pop("run_id", None)
        if valid_run_id(asked):
            st.warning(f"There is no run `{asked}` on this server (it may have been deleted); "
                       "the form shows its own settings.")
        else:
            st.warning("The link's run id is not valid; the form shows its own settings.")
        return None


def fill_from(shown: Run | None) -> None:
    """A run shown for the first time in this session (a reload, a ?run= link, a row picked)
    fills the form, before any widget is drawn: then the form is that run, and Launch gives
    its id."""
    ss = st.session_state
    if shown is None or ss.get(FORM, {}).get("run") == shown.id:
        return
    try:
        loaded = shown.train_config()
        values = form_state(loaded, policy().typed_paths)
    except (FaceMLError, TypeError, ValueError, KeyError, AttributeError) as e:
        why = error_text(e) if isinstance(e, FaceMLError) else \
            f"run {shown.id}: config.json is damaged (values of the wrong kind)"
        st.warning(f"{why}: the form keeps its own settings.")
        ss[FORM] = {"run": shown.id, "loaded": None, "base": None}
    else:
        for k, v in values.items():
            ss[k] = v
            ss[f"_keep_{k}"] = v  # what keep() restores after a page switch
        ss[FORM] = {"run": shown.id, "loaded": loaded.canonical(), "base": None}


@dataclass
class ModelForm:
    arch: str
    params: dict = field(default_factory=dict)
    heads: list = field(default_factory=list)
    weights: dict = field(default_factory=dict)
    age_loss: str = "mae"
    class_weights: bool = False


def _vae_form(c2) -> ModelForm:
    c2.caption("Convolutional variational auto-encoder: learns a latent space of faces "
               "(see the VAE page). Sampling z = μ + exp(½·logvar)·ε.")
    a, b, c, d = st.columns(4)
    vd = VAE_DEFAULTS
    params: dict = {}
    params["latent_dim"] = int(kept("vae_latent", a.number_input(
        "Latent size", 1, 512, **held("vae_latent", vd["latent_dim"], lo=1, hi=512))))
    params["beta"] = float(kept("vae_beta", b.number_input(
        "β (KL weight)", 0.0, 10.0, step=0.01, format="%.3f",
        **held("vae_beta", vd["beta"], lo=0.0, hi=10.0))))
    params["recon"] = kept("vae_recon", c.selectbox(
        "Reconstruction loss", ["mse", "bce"], **held("vae_recon", vd["recon"], ["mse", "bce"])))
    filt = kept("vae_filters", d.text_input(
        "Filters per level", **held("vae_filters", ",".join(map(str, vd["filters"])))))
    try:
        params["filters"] = [int(v) for v in filt.split(",") if v.strip()]
    except ValueError:
        st.error(f"Filters must be whole numbers separated by commas, not {filt!r}")
        st.stop()
    return ModelForm("vae", params)


def _classifier_form(arch: str, c2, opts, labels) -> ModelForm:
    ss = st.session_state
    spec = architectures.get(arch)
    c2.caption(f"**{spec.title}** — {spec.description}")
    params: dict = {}
    if arch in TRANSFER_ARCHS:
        a, b = st.columns(2)
        w = kept("tl_weights", a.radio(
            "Weights", ["imagenet", RANDOM], horizontal=True,
            **held("tl_weights", "imagenet", ["imagenet", RANDOM]),
            help="ImageNet weights are downloaded by Keras on first use; offline, choose "
                 f"{RANDOM} initialisation"))
        params["weights"] = None if w == RANDOM else "imagenet"
        params["fine_tune"] = kept("tl_finetune", b.checkbox(
            "Fine-tune the top block", **held("tl_finetune", False)))
    elif arch == "custom":
        default = json.dumps(spec.defaults, indent=1)
        txt = kept("custom_json", st.text_area("Builder parameters (JSON)", height=180,
                                               **held("custom_json", default)))
        try:
            params.update(json.loads(txt))
        except ValueError as e:
            st.error(f"The builder parameters are not valid JSON: {e}")
            st.stop()
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
    a, b = st.columns(2)
    age_loss = kept("age_loss", a.radio(
        "Age loss", ["mae", "huber"], horizontal=True, **held("age_loss", "mae", ["mae", "huber"]),
        disabled=not any(labels[h].kind == "years" for h in heads) or opts.age != "years"))
    class_weights = kept("class_weights", b.checkbox("Balance classes (class weights)",
                                                     **held("class_weights", False)))
    return ModelForm(arch, params, heads, weights, age_loss, class_weights)


def model_form(opts, labels) -> ModelForm:
    """Architecture and its own settings (a VAE's, a transfer preset's, the builder's JSON),
    heads and their losses."""
    arch_names = architectures.names() + ["vae"]
    c1, c2 = st.columns([1, 2])
    arch = kept("arch", c1.selectbox("Architecture", arch_names,
                                      **held("arch", "default_cnn", arch_names)))
    if arch == "vae":
        return _vae_form(c2)
    return _classifier_form(arch, c2, opts, labels)


def hyper_form(opts, model: ModelForm) -> dict:
    """Hyperparameters; returns the configuration the whole form draws (canonical)."""
    ss = st.session_state
    pol = policy()
    c = st.columns(4)
    optimizer = kept("optimizer", c[0].selectbox("Optimizer", OPTIMIZERS,
                                                 **held("optimizer", "adam", OPTIMIZERS)))
    lr = kept("lr", c[1].number_input("Learning rate", format="%.5f", step=1e-4,
                                      **held("lr", 1e-3)))
    schedule = kept("schedule", c[2].selectbox("Schedule", SCHEDULES,
                                               **held("schedule", "constant", SCHEDULES)))
    batch = int(kept("batch", c[3].number_input("Batch size", step=16, **held("batch", 64))))
    c = st.columns(4)
    max_epochs = pol.caps.epochs if pol.hosted else 1000
    if ss.get("epochs", 0) > max_epochs:
        ss["epochs"] = max_epochs
    epochs = int(kept("epochs", c[0].number_input(
        "Epochs", step=1, max_value=max_epochs,
        **held("epochs", min(5, max_epochs), hi=max_epochs))))
    patience = int(kept("patience", c[1].number_input(
        "Early stopping patience (0 = off)", 0, 100, **held("patience", 0, lo=0, hi=100))))
    seed = int(kept("seed", c[2].number_input("Seed", 0, 10_000,
                                              **held("seed", 0, lo=0, hi=10_000))))
    mixed = kept("mixed", c[3].checkbox("Mixed precision (GPU only)", **held("mixed", False)))
    aug = kept("aug", st.multiselect("Augmentation (training only)", AUGMENTATIONS,
                                     **held("aug", [], param="default")))
    vae = model.arch == "vae"
    return TrainConfig(data=opts, arch=model.arch, arch_params=model.params, heads=model.heads,
                       head_weights={} if vae else model.weights,
                       age_loss="mae" if vae else model.age_loss,
                       class_weights=False if vae else model.class_weights,
                       optimizer=optimizer, lr=float(lr), schedule=schedule, batch_size=batch,
                       epochs=epochs, early_stopping=patience, augmentation=aug, seed=seed,
                       mixed_precision=mixed).canonical()


def launch_cfg(drawn: dict) -> TrainConfig:
    """Launch starts the run the form was filled from, with what the visitor changed since:
    the same run while nothing changed, even where the form cannot show a setting of it."""
    ss = st.session_state
    form = ss.get(FORM) or {}
    if form.get("loaded") is not None and form.get("base") is None:
        form["base"] = drawn  # the form as the run filled it
    cfg = TrainConfig.from_dict(launch_config(form.get("loaded"), form.get("base"), drawn))
    hidden = kept_settings(cfg.canonical(), drawn)
    if hidden:
        st.caption(policy().redact(f"Launch also keeps what the form cannot show of run "
                                   f"{form.get('run')}: " + "; ".join(hidden) + "."))
    return cfg


def checked(cfg: TrainConfig) -> bool:
    """Validate ``cfg`` (and the hosted size cap); show its layer table when valid."""
    pol = policy()
    try:
        cfg.validate()
        size = layer_table_for(json.dumps(cfg.canonical(), sort_keys=True))  # no weights built
    except FaceMLError as e:
        st.error(error_text(e))
        return False
    if pol.hosted and size.total > pol.caps.params:
        st.error(f"This model has {size.total:,} parameters; this server trains models of at "
                 f"most {pol.caps.params:,}. Use fewer or narrower layers.")
        return False
    with st.expander("Layers and parameters", expanded=False):
        st.caption(f"Total parameters: **{size.total:,}** · trainable: **{size.trainable:,}** · "
                   f"non-trainable: {size.total - size.trainable:,}")
        st.dataframe(size.table, hide_index=True, width="stretch")
    return True


def show_run(run_id: str) -> None:
    """The page shows run ``run_id`` from now on (and the URL says so)."""
    st.session_state["run_id"] = run_id
    show_in_url(run_id)


def launch_buttons(store: RunStore, cfg: TrainConfig, drawn: dict, valid: bool,
                   shown: Run | None) -> str | None:
    """Launch (and Train again); returns the run the page shows now, if any."""
    ss = st.session_state
    pol = policy()
    run_id = cfg.run_id()
    existing = store.exists(run_id)

    def launched(run) -> None:
        show_run(run.id)
        ss[FORM] = {"run": run.id, "loaded": cfg.canonical(), "base": drawn}

    b1, b2, b3 = st.columns([1, 1, 3])
    if b1.button("Launch", type="primary", disabled=not valid, key="launch"):
        with user_errors():
            run, new = jobs.submit(cfg, store, visitor=visitor())
        launched(run)
        if not new:
            st.info(f"This configuration already ran: showing its cached run {run.id}.")
    if existing and pol.train_again and b2.button(
            "Train again", disabled=not valid, key="again",
            help="Start a new run of the same configuration"):
        with user_errors():
            run, _ = jobs.submit(cfg, store, again=True, visitor=visitor())  # sets cfg.repeat
        launched(run)
    current = ss.get("run_id") or (shown.id if shown is not None else None)
    if existing and run_id != current:
        b3.caption(f"Cached: this configuration is run {run_id}.")
    if current and store.exists(current):
        show_run(current)
        return current
    return None
