"""The Train page's form: which run it shows (and is filled from), the model and hyperparameter
widgets, the configuration they make, and Launch. The page (app_pages/train.py) lays these
out; the run panel and the runs table live in :mod:`ui.runs`."""

from __future__ import annotations

import json

import streamlit as st

from faceml.modeling import kinds
from faceml.training import jobs
from faceml.errors import FaceMLError
from faceml.runs import Run, RunStore, valid_run_id
from faceml.config import AUGMENTATIONS, OPTIMIZERS, SCHEDULES, TrainConfig, preset_input
from faceml.data.prepare import SCALINGS
from ui.common import error_text, held, kept, policy, user_errors, visitor
from ui.pick import show_in_url, url_run
from ui.kind_forms import ModelForm, form_for
from ui.runs import form_state, kept_settings, launch_config, layer_table_for

# The run the form was last filled from (or launched): {"run", "loaded", "base"}, with "loaded"
# its canonical config and "base" the form's own config as first drawn from it.
FORM = "_train_form"
# A config (canonical dict) to load into the form before it is drawn: the Recipes page's
# "Fill the Train form" (ui.recipes.FILL, the same key; ui.recipes imports this one).
FILL = "_train_fill"
# The architecture whose input (size, colour) the Data widgets last followed.
PRESET_FOR = "_preset_for"
# The run a Launch found already made (its configuration ran before): the page says so while it
# shows that run with the form unchanged, over every rerun after the click.
CACHED = "_train_cached"


def chosen_arch() -> str:
    """The architecture the form has chosen (this run's widget value, else the kept one)."""
    ss = st.session_state
    return ss.get("arch", ss.get("_keep_arch", "default_cnn"))


def preset_sizes() -> tuple[int, ...]:
    """Every preset's input size, so the Data widget can show each one."""
    from faceml.modeling import architectures

    return tuple(sorted({architectures.get(n).default_size for n in architectures.names()}))


def follow_preset() -> None:
    """Size and colour follow the chosen architecture's input (``ArchSpec.default_size``,
    ``default_color``) unless the visitor changed them: when the architecture changes, each
    that still holds the previous architecture's input (the widgets' own 64/rgb before any)
    takes the new one's. Call before the Data widgets are drawn."""
    ss = st.session_state
    arch = chosen_arch()
    last = ss.get(PRESET_FOR)
    if last == arch:
        return
    before = preset_input(last) if last is not None else (64, "rgb")
    for key, old, new in zip(("size", "color"), before, preset_input(arch)):
        if ss.get(key, ss.get(f"_keep_{key}", old)) == old:
            ss[key] = new
            ss[f"_keep_{key}"] = new
    ss[PRESET_FOR] = arch


def preset_caption(arch: str, opts) -> str | None:
    """Whether the data's size and colour are the preset's input, in a sentence."""
    from faceml.modeling import architectures

    try:
        spec = architectures.get(arch)
    except FaceMLError:
        return None
    preset = f"{spec.default_size}×{spec.default_size} {spec.default_color}"
    if (opts.size, opts.color) == (spec.default_size, spec.default_color):
        return f"{preset}: the preset's input (change it under Data)."
    return f"{opts.size}×{opts.size} {opts.color}, set under Data (the preset's input is {preset})."


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
    pending = ss.pop(FILL, None)  # a recipe's config (the Recipes page's "Fill the Train form")
    if pending is not None:
        try:
            loaded = TrainConfig.from_dict(pending)
            values = form_state(loaded, policy().typed_paths)
        except (FaceMLError, TypeError, ValueError, KeyError, AttributeError) as e:
            st.warning(f"{error_text(e) if isinstance(e, FaceMLError) else e}: the form keeps "
                       "its own settings.")
            return
        _fill(values, loaded.run_id(), loaded)
        return
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
        _fill(values, shown.id, loaded)


def _fill(values: dict, run_id: str, loaded: TrainConfig) -> None:
    ss = st.session_state
    for k, v in values.items():
        ss[k] = v
        ss[f"_keep_{k}"] = v  # what keep() restores after a page switch
    ss[FORM] = {"run": run_id, "loaded": loaded.canonical(), "base": None}
    ss[PRESET_FOR] = loaded.arch  # the run's size and colour stay as it had them


def model_form(opts, labels) -> ModelForm:
    """Architecture (every model kind's, from the registry) and its kind's own part of the
    form (:mod:`ui.kind_forms`: a VAE's settings; a preset's, heads and their losses)."""
    arch_names = kinds.arch_names()
    c1, c2 = st.columns([1, 2])
    arch = kept("arch", c1.selectbox("Architecture", arch_names,
                                      **held("arch", "default_cnn", arch_names)))
    caption = preset_caption(arch, opts)
    if caption:
        c1.caption(caption)
    kind = kinds.for_arch(arch)
    return form_for(kind).draw(kind, arch, c2, opts, labels)


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
    c = st.columns([3, 1])
    aug = kept("aug", c[0].multiselect("Augmentation (training only)", AUGMENTATIONS,
                                       **held("aug", [], param="default")))
    scaling = kept("scaling", c[1].selectbox(
        "Pixel scaling", SCALINGS, **held("scaling", "zscore", SCALINGS),
        help="Fitted on the training split and carried inside the model: zscore per channel, "
             "minmax per pixel (scikit-learn's MinMaxScaler), unit = /255. Presets with a "
             "pretrained backbone and the VAE scale pixels themselves (zscore only)."))
    return TrainConfig(data=opts, arch=model.arch, arch_params=model.params, heads=model.heads,
                       head_weights=model.weights, age_loss=model.age_loss,
                       class_weights=model.class_weights, binary_output=model.binary_output,
                       optimizer=optimizer, lr=float(lr), schedule=schedule, batch_size=batch,
                       epochs=epochs, early_stopping=patience, augmentation=aug,
                       scaling=scaling, seed=seed, mixed_precision=mixed).canonical()


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
        ss[CACHED] = None if new else run.id
    if existing and pol.train_again and b2.button(
            "Train again", disabled=not valid, key="again",
            help="Start a new run of the same configuration"):
        with user_errors():
            run, _ = jobs.submit(cfg, store, again=True, visitor=visitor())  # sets cfg.repeat
        launched(run)
    current = ss.get("run_id") or (shown.id if shown is not None else None)
    if existing and run_id != current:
        b3.caption(f"Cached: this configuration is run {run_id}.")
    if current and ss.get(CACHED) == current == run_id:  # kept over the reruns that follow
        st.info(f"This configuration already ran: showing its cached run {current}.")
    if current and store.exists(current):
        show_run(current)
        return current
    return None
