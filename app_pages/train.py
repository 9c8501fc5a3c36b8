"""Train: configure an architecture and hyperparameters, launch a background job, watch it."""

import json

import streamlit as st

from faceml import architectures, jobs
from faceml.errors import FaceMLError
from faceml.preprocessing import labels_for
from faceml.runs import RunStore
from faceml.training import AUGMENTATIONS, OPTIMIZERS, SCHEDULES, TrainConfig
from ui.common import dataset_picker, error_text, keep, kept, policy, user_errors, visitor
from ui.runs import layer_table_for, run_panel, runs_table, training_device

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

with st.expander("Data", expanded=False):
    opts = dataset_picker()
with user_errors():
    labels = labels_for(opts)

st.subheader("Model")
arch_names = architectures.names() + ["vae"]
c1, c2 = st.columns([1, 2])
arch = kept("arch", c1.selectbox("Architecture", arch_names, key=keep("arch", "default_cnn")))
params: dict = {}
if arch == "vae":
    c2.caption("Convolutional variational auto-encoder: learns a latent space of faces "
               "(see the VAE page). Sampling z = μ + exp(½·logvar)·ε.")
    a, b, c, d = st.columns(4)
    params["latent_dim"] = int(a.number_input("Latent size", 1, 512, 10, key="vae_latent"))
    params["beta"] = float(b.number_input("β (KL weight)", 0.0, 10.0, 0.05, step=0.01,
                                          format="%.3f", key="vae_beta"))
    params["recon"] = c.selectbox("Reconstruction loss", ["mse", "bce"], key="vae_recon")
    filt = d.text_input("Filters per level", "32,64", key="vae_filters")
    try:
        params["filters"] = [int(v) for v in filt.split(",") if v.strip()]
    except ValueError:
        st.error(f"Filters must be whole numbers separated by commas, not {filt!r}")
        st.stop()
    heads: list[str] = []
else:
    spec = architectures.get(arch)
    c2.caption(f"**{spec.title}** — {spec.description}")
    if arch in ("vgg16", "mobilenetv3small", "efficientnetb0"):
        a, b = st.columns(2)
        w = a.radio("Weights", ["imagenet", "random"], horizontal=True, key="tl_weights",
                    help="ImageNet weights are downloaded by Keras on first use; offline, "
                         "choose random initialisation")
        params["weights"] = None if w == "random" else "imagenet"
        params["fine_tune"] = b.checkbox("Fine-tune the top block", key="tl_finetune")
    elif arch == "custom":
        default = json.dumps(spec.defaults, indent=1)
        txt = st.text_area("Builder parameters (JSON)", default, height=180, key="custom_json")
        try:
            params.update(json.loads(txt))
        except ValueError as e:
            st.error(f"The builder parameters are not valid JSON: {e}")
            st.stop()
    default_heads = [n for n in labels if n != "age"][:1] or list(labels)[:1]
    hk = f"heads_{opts.dataset}"
    if any(h not in labels for h in st.session_state.get(hk, [])):
        st.session_state.pop(hk)
    heads = kept(hk, st.multiselect("Predict", list(labels), key=keep(hk, default_heads),
                                    help="One head per label; several make a multi-task model"))
    weights = {}
    if len(heads) > 1:
        cols = st.columns(len(heads))
        for col, h in zip(cols, heads):
            weights[h] = float(col.number_input(f"Loss weight: {h}", 0.0, 10.0,
                                                0.1 if labels[h].kind == "years" else 1.0,
                                                step=0.05, key=f"w_{h}"))
    a, b = st.columns(2)
    age_loss = a.radio("Age loss", ["mae", "huber"], horizontal=True, key="age_loss",
                       disabled=not any(labels[h].kind == "years" for h in heads)
                       or opts.age != "years")
    class_weights = b.checkbox("Balance classes (class weights)", key="class_weights")

st.subheader("Hyperparameters")
c = st.columns(4)
optimizer = kept("optimizer", c[0].selectbox("Optimizer", OPTIMIZERS, key=keep("optimizer", "adam")))
lr = kept("lr", c[1].number_input("Learning rate", format="%.5f", step=1e-4, key=keep("lr", 1e-3)))
schedule = kept("schedule", c[2].selectbox("Schedule", SCHEDULES, key=keep("schedule", "constant")))
batch = int(kept("batch", c[3].number_input("Batch size", step=16, key=keep("batch", 64))))
c = st.columns(4)
max_epochs = pol.caps.epochs if pol.hosted else 1000
if st.session_state.get("epochs", 0) > max_epochs:
    st.session_state["epochs"] = max_epochs
epochs = int(kept("epochs", c[0].number_input("Epochs", step=1, max_value=max_epochs,
                                              key=keep("epochs", min(5, max_epochs)))))
patience = int(kept("patience", c[1].number_input("Early stopping patience (0 = off)", 0, 100,
                                                  key=keep("patience", 0))))
seed = int(kept("seed", c[2].number_input("Seed", 0, 10_000, key=keep("seed", 0))))
mixed = kept("mixed", c[3].checkbox("Mixed precision (GPU only)", key=keep("mixed", False)))
aug = kept("aug", st.multiselect("Augmentation (training only)", AUGMENTATIONS,
                                 key=keep("aug", [])))

cfg = TrainConfig(data=opts, arch=arch, arch_params=params, heads=heads,
                  head_weights=weights if arch != "vae" else {},
                  age_loss=age_loss if arch != "vae" else "mae",
                  class_weights=class_weights if arch != "vae" else False, optimizer=optimizer,
                  lr=float(lr), schedule=schedule, batch_size=batch, epochs=epochs,
                  early_stopping=patience, augmentation=aug, seed=seed, mixed_precision=mixed)
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
b1, b2, b3 = st.columns([1, 1, 3])
if b1.button("Launch", type="primary", disabled=not valid, key="launch"):
    with user_errors():
        run, new = jobs.submit(cfg, store, visitor=visitor())
    ss["run_id"] = run.id
    st.query_params["run"] = run.id
    if not new:
        st.info(f"This configuration already ran: showing its cached run {run.id}.")
if existing and pol.train_again and b2.button("Train again", disabled=not valid, key="again",
                                              help="Start a new run of the same configuration"):
    with user_errors():
        run, _ = jobs.submit(cfg, store, again=True, visitor=visitor())
    ss["run_id"] = run.id
    st.query_params["run"] = run.id
if existing and not ss.get("run_id"):
    b3.caption(f"Cached: this configuration is run {run_id}.")

current = ss.get("run_id") or st.query_params.get("run")
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
