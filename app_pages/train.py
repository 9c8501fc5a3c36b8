"""Train: configure an architecture and hyperparameters, launch a background job, watch it."""

import json

import streamlit as st

from faceml.modeling import architectures
from faceml.training import jobs
from faceml.errors import FaceMLError
from faceml.data.prepare import labels_for
from faceml.runs import RunStore, valid_run_id
from faceml.config import AUGMENTATIONS, OPTIMIZERS, SCHEDULES, TrainConfig
from ui.common import dataset_picker, error_text, keep, kept, policy, user_errors, visitor
from ui.runs import (TRANSFER_ARCHS, VAE_DEFAULTS, form_state, kept_settings, launch_config,
                     layer_table_for, run_panel, runs_table, training_device)

# The run the form was last filled from (or launched): {"run", "loaded", "base"}, with "loaded"
# its canonical config and "base" the form's own config as first drawn from it. (A comment: a
# bare string here would be drawn on the page by Streamlit's magic.)
FORM = "_train_form"

st.title("Train")
dev = training_device()
st.caption(f"Training runs in a background worker on **{dev['device']}** "
           f"(Keras backend: {dev['backend']}). One job trains at a time; others queue.")
store = RunStore()
ss = st.session_state
pol = policy()
if pol.hosted:
    st.caption(f"Hosted demo: at most {pol.caps.epochs} epochs and "
               f"{pol.caps.params:,} parameters a model, {pol.caps.faces:,} faces, "
               f"{pol.caps.jobs_per_visitor} run(s) queued or training per visitor; you can "
               "stop only the runs you launched.")


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
    v = ss[key]
    if options is not None:
        opts = list(options)
        return {"key": key, "index": opts.index(v) if v in opts else 0}
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        return {"key": key}
    return {"key": key, param: v}


def asked_run():
    """The run this session shows (Launch, a row picked) or the URL's ``?run=`` asks for."""
    asked = ss.get("run_id") or st.query_params.get("run")
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


# A run shown for the first time in this session (a reload, a ?run= link, a row picked) fills
# the form, before any widget is drawn: then the form is that run, and Launch gives its id.
shown = asked_run()
if shown is not None and ss.get(FORM, {}).get("run") != shown.id:
    try:
        loaded = shown.train_config()
        values = form_state(loaded, pol.typed_paths)
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

with st.expander("Data", expanded=False):
    opts = dataset_picker()
with user_errors():
    labels = labels_for(opts)

st.subheader("Model")
arch_names = architectures.names() + ["vae"]
c1, c2 = st.columns([1, 2])
arch = kept("arch", c1.selectbox("Architecture", arch_names,
                                  **held("arch", "default_cnn", arch_names)))
params: dict = {}
if arch == "vae":
    c2.caption("Convolutional variational auto-encoder: learns a latent space of faces "
               "(see the VAE page). Sampling z = μ + exp(½·logvar)·ε.")
    a, b, c, d = st.columns(4)
    vd = VAE_DEFAULTS
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
    heads: list[str] = []
else:
    spec = architectures.get(arch)
    c2.caption(f"**{spec.title}** — {spec.description}")
    if arch in TRANSFER_ARCHS:
        a, b = st.columns(2)
        w = kept("tl_weights", a.radio(
            "Weights", ["imagenet", "random"], horizontal=True,
            **held("tl_weights", "imagenet", ["imagenet", "random"]),
            help="ImageNet weights are downloaded by Keras on first use; offline, choose random "
                 "initialisation"))
        params["weights"] = None if w == "random" else "imagenet"
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
    if any(h not in labels for h in st.session_state.get(hk, [])):
        st.session_state.pop(hk)
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

st.subheader("Hyperparameters")
c = st.columns(4)
optimizer = kept("optimizer", c[0].selectbox("Optimizer", OPTIMIZERS,
                                             **held("optimizer", "adam", OPTIMIZERS)))
lr = kept("lr", c[1].number_input("Learning rate", format="%.5f", step=1e-4, **held("lr", 1e-3)))
schedule = kept("schedule", c[2].selectbox("Schedule", SCHEDULES,
                                           **held("schedule", "constant", SCHEDULES)))
batch = int(kept("batch", c[3].number_input("Batch size", step=16, **held("batch", 64))))
c = st.columns(4)
max_epochs = pol.caps.epochs if pol.hosted else 1000
if st.session_state.get("epochs", 0) > max_epochs:
    st.session_state["epochs"] = max_epochs
epochs = int(kept("epochs", c[0].number_input("Epochs", step=1, max_value=max_epochs,
                                              **held("epochs", min(5, max_epochs), hi=max_epochs))))
patience = int(kept("patience", c[1].number_input("Early stopping patience (0 = off)", 0, 100,
                                                  **held("patience", 0, lo=0, hi=100))))
seed = int(kept("seed", c[2].number_input("Seed", 0, 10_000, **held("seed", 0, lo=0, hi=10_000))))
mixed = kept("mixed", c[3].checkbox("Mixed precision (GPU only)", **held("mixed", False)))
aug = kept("aug", st.multiselect("Augmentation (training only)", AUGMENTATIONS,
                                 **held("aug", [], param="default")))

drawn = TrainConfig(data=opts, arch=arch, arch_params=params, heads=heads,
                    head_weights=weights if arch != "vae" else {},
                    age_loss=age_loss if arch != "vae" else "mae",
                    class_weights=class_weights if arch != "vae" else False,
                    optimizer=optimizer, lr=float(lr), schedule=schedule, batch_size=batch,
                    epochs=epochs, early_stopping=patience, augmentation=aug, seed=seed,
                    mixed_precision=mixed).canonical()
# Launch starts the run the form was filled from, with what the visitor changed since: the
# same run while nothing changed, even where the form cannot show a setting of it
form = ss.get(FORM) or {}
if form.get("loaded") is not None and form.get("base") is None:
    form["base"] = drawn  # the form as the run filled it
cfg = TrainConfig.from_dict(launch_config(form.get("loaded"), form.get("base"), drawn))
hidden = kept_settings(cfg.canonical(), drawn)
if hidden:
    st.caption(pol.redact(f"Launch also keeps what the form cannot show of run "
                          f"{form.get('run')}: " + "; ".join(hidden) + "."))
try:
    cfg.validate()
    size = layer_table_for(json.dumps(cfg.canonical(), sort_keys=True))  # no weights built
    valid = True
except FaceMLError as e:
    st.error(error_text(e))
    valid = False
if valid and pol.hosted and size.total > pol.caps.params:
    st.error(f"This model has {size.total:,} parameters; this server trains models of at most "
             f"{pol.caps.params:,}. Use fewer or narrower layers.")
    valid = False

if valid:
    with st.expander("Layers and parameters", expanded=False):
        st.caption(f"Total parameters: **{size.total:,}** · trainable: **{size.trainable:,}** · "
                   f"non-trainable: {size.total - size.trainable:,}")
        st.dataframe(size.table, hide_index=True, width="stretch")

run_id = cfg.run_id()
existing = store.exists(run_id)


def launched(run) -> None:
    """Show ``run``; the form now stands for it (its config, as drawn now)."""
    ss["run_id"] = run.id
    st.query_params["run"] = run.id
    ss[FORM] = {"run": run.id, "loaded": cfg.canonical(), "base": drawn}


b1, b2, b3 = st.columns([1, 1, 3])
if b1.button("Launch", type="primary", disabled=not valid, key="launch"):
    with user_errors():
        run, new = jobs.submit(cfg, store, visitor=visitor())
    launched(run)
    if not new:
        st.info(f"This configuration already ran: showing its cached run {run.id}.")
if existing and pol.train_again and b2.button("Train again", disabled=not valid, key="again",
                                              help="Start a new run of the same configuration"):
    with user_errors():
        run, _ = jobs.submit(cfg, store, again=True, visitor=visitor())  # sets cfg.repeat
    launched(run)
current = ss.get("run_id") or (shown.id if shown is not None else None)
if existing and run_id != current:
    b3.caption(f"Cached: this configuration is run {run_id}.")

if current and store.exists(current):
    ss["run_id"] = current
    st.query_params["run"] = current
    run_panel(store.get(current), visitor())

st.subheader("All runs")
picked = runs_table(store, key="train_runs")
if picked and picked != current:
    ss["run_id"] = picked
    st.query_params["run"] = picked
    st.rerun()
