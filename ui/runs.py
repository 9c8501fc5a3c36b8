"""Run widgets: the live panel of one run, the table of all runs, layer tables, and the glue
that puts a run's configuration back into the Train form."""

from __future__ import annotations

import json

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from faceml import data as datasets
from faceml import hosting
from faceml.training import jobs
from faceml.errors import FaceMLError
from faceml.runs import Run, RunDamaged, RunStore
from faceml.config import TrainConfig
from ui.common import ui_words, weights_download_failed
from ui.kind_forms import form_for

STATE_ICON = {"queued": "⏳", "running": "🏃", "done": "✅", "failed": "❌", "stopped": "⏹",
              "damaged": "⚠️"}
ACTIVE = ("queued", "running")
WATCH_EVERY = 10.0
"""Seconds between looks at runs that are not training (another session may resume one)."""
_FLASH = "_run_panel_flash"
CURVES = [("loss", "Loss"), ("accuracy", "Accuracy"), ("mae", "MAE (years)")]


@st.cache_resource(show_spinner=False)
def training_device() -> dict:
    """Where the worker will train: the Keras backend and the GPU, if any (looked up once)."""
    from faceml.training.engine import device_info

    return device_info()


@st.cache_data(max_entries=32, show_spinner=False)
def layer_table_for(cfg_json: str):
    """Layer table and parameter counts of a config's model: built without weights, so any
    size a visitor types costs no memory (:mod:`faceml.modeling.sizing`)."""
    from faceml.modeling.sizing import model_size

    return model_size(TrainConfig.from_dict(json.loads(cfg_json)))


def history_figure(hist: pd.DataFrame, metric: str, title: str) -> go.Figure | None:
    cols = [c for c in hist.columns if c == metric or c.endswith(f"_{metric}")]
    cols = [c for c in cols if not c.startswith("val_")]
    if not cols:
        return None
    fig = go.Figure()
    for c in cols:
        fig.add_scatter(x=hist["epoch"], y=hist[c], mode="lines+markers", name=f"train {c}")
        if f"val_{c}" in hist:
            fig.add_scatter(x=hist["epoch"], y=hist[f"val_{c}"], mode="lines+markers",
                            name=f"val {c}", line=dict(dash="dash"))
    # whole epochs only; the legend (up to 2 entries a head) goes under the plot, not over it
    last = int(hist["epoch"].max()) if len(hist) else 1
    fig.update_xaxes(tickformat="d", tick0=1, dtick=max(1, -(-last // 10)))
    fig.update_layout(title=title, height=340, margin=dict(t=40, b=10, l=10, r=10),
                      xaxis_title="epoch",
                      legend=dict(orientation="h", yanchor="top", y=-0.3, x=0))
    return fig


# --- the Train form <-> a run's configuration ----------------------------------------------
def form_state(cfg: TrainConfig, typed_paths: bool = True) -> dict:
    """The session keys of the Train form (and of ``ui.common.dataset_picker``) that show
    ``cfg``. Values a widget cannot hold are coerced by it; :func:`launch_config` keeps the
    run's own value for those, and :func:`kept_settings` names them."""
    d = cfg.data
    out: dict = {"dataset": d.datasets[0], "also_datasets": d.datasets[1:],
                 "size": int(d.size), "color": d.color,
                 "fraction": float(d.fraction), "age_mode": d.age, "data_seed": int(d.seed)}
    if d.age == "custom" and d.age_edges:
        out["age_edges"] = ",".join(str(int(e)) for e in d.age_edges)
    out["holdout"] = d.holdout
    out["framing"] = d.framing if "framing" in d.canonical() else "auto"  # auto: the default
    pct = [float(v) * 100 for v in d.split]
    if all(abs(p - round(p)) < 1e-6 for p in pct):  # else the form cannot show it (kept)
        if d.holdout == "official":
            out["test_pct_official"] = round(pct[2])
        else:
            out["val_pct"], out["test_pct"] = round(pct[1]), round(pct[2])
    for part in ([d.part(n) for n in d.datasets] if d.multi else [d]):
        try:
            needs_path = datasets.get(part.dataset).needs_path
        except FaceMLError:  # not a dataset of this installation: the picker shows its default
            needs_path = None
        opts = part.dataset_options or {}
        if needs_path and typed_paths:
            out[f"path_{part.dataset}"] = part.path or ""  # empty = the default location
        elif needs_path is False:
            if "n" in opts:
                out["syn_n"] = int(opts["n"])
            if "label_noise" in opts:
                out["syn_noise"] = float(opts["label_noise"])
    out["arch"] = cfg.arch
    out.update(form_for(cfg.kind).state(cfg))  # the model kind's own part of the form
    out.update(optimizer=cfg.optimizer, lr=float(cfg.lr), schedule=cfg.schedule,
               batch=int(cfg.batch_size), epochs=int(cfg.epochs), patience=int(cfg.early_stopping),
               seed=int(cfg.seed), mixed=bool(cfg.mixed_precision),
               aug=sorted(set(cfg.augmentation)), scaling=cfg.scaling)
    return out


_MISSING = object()


def _patch(loaded: dict, base: dict, form: dict) -> dict:
    """``loaded`` with every key where ``form`` differs from ``base`` taken from ``form``."""
    out = dict(loaded)
    for k in set(base) | set(form):
        b, f = base.get(k, _MISSING), form.get(k, _MISSING)
        if b == f:
            continue
        lo = loaded.get(k, _MISSING)
        if isinstance(f, dict) and isinstance(b, dict) and isinstance(lo, dict):
            out[k] = _patch(lo, b, f)
        elif f is _MISSING:
            out.pop(k, None)
        else:
            out[k] = f
    return out


def launch_config(loaded: dict | None, base: dict | None, form: dict) -> dict:
    """What Launch starts: the run the form was filled from (``loaded``, canonical), with the
    settings the visitor changed since (``form`` against ``base``, the form as it was filled).

    Untouched, that is the run itself (the same id), including what the form cannot show (a
    split, an image size or a dataset option it does not offer, a "train again" repeat). A
    changed dataset or architecture brings its own options; a repeat number stays only while
    nothing else changed."""
    if loaded is None or base is None:
        return form
    out = _patch(loaded, base, form)
    if form.get("data", {}).get("dataset") != base.get("data", {}).get("dataset"):
        out["data"] = form["data"]
    if form.get("arch") != base.get("arch"):
        out["arch_params"] = form.get("arch_params", {})

    def rest(d):
        return {k: v for k, v in d.items() if k != "repeat"}

    if rest(out) != rest(loaded):
        out["repeat"] = form.get("repeat", 0)
    return out


_LABELS = {("data", "dataset"): "dataset", ("data", "path"): "path",
           ("data", "size"): "image size", ("data", "color"): "colour",
           ("data", "fraction"): "sample", ("data", "seed"): "split seed",
           ("data", "split"): "split (train, val, test)", ("data", "age"): "age as",
           ("data", "age_edges"): "age edges", ("data", "stratify"): "stratified on",
           ("data", "holdout"): "validation faces", ("scaling",): "pixel scaling",
           ("head_weights",): "loss weights", ("early_stopping",): "early stopping",
           ("batch_size",): "batch size", ("repeat",): "repeat (train again)",
           ("mixed_precision",): "mixed precision", ("arch_params",): "builder parameters"}


def kept_settings(launch: dict, form: dict) -> list[str]:
    """What Launch uses that the form does not show (canonical dicts), one phrase each."""
    out: list[str] = []

    def walk(a, b, path):
        for k in sorted(set(a) | set(b), key=str):
            x, y = a.get(k, _MISSING), b.get(k, _MISSING)
            if x == y:
                continue
            where = (*path, k)
            if isinstance(x, dict) and isinstance(y, dict) and where != ("head_weights",):
                walk(x, y, where)
                continue
            label = _LABELS.get(where)
            if label is None:
                label = (f"dataset option {k}" if path == ("data", "dataset_options") else
                         f"builder parameter {k}" if path == ("arch_params",) else
                         " ".join(str(p) for p in where).replace("_", " "))
            shown = "not set" if x is _MISSING else json.dumps(x, default=str)
            out.append(f"{label} {shown}")

    walk(launch, form, ())
    return out


# --- the run panel ---------------------------------------------------------------------------
def _state(run: Run) -> str | None:
    try:
        return run.status().get("state", "queued")
    except RunDamaged:
        return None


def results_caption(status: dict, hist: pd.DataFrame) -> str:
    """Which checkpoint the stored metrics are of (``results`` in the status; older runs:
    the best checkpoint, whose epoch the history tells)."""
    src = status.get("results") if isinstance(status.get("results"), dict) else {}
    which = src.get("checkpoint", "best")
    monitor = src.get("monitor") or ("val_loss" if "val_loss" in hist else "loss")
    epoch = src.get("epoch")
    if epoch is None and which == "best" and monitor in hist and hist[monitor].notna().any():
        epoch = int(hist.loc[hist[monitor].idxmin(), "epoch"])
    last = int(hist["epoch"].max()) if "epoch" in hist and len(hist) else None
    at = f" (epoch {epoch}" + (f" of {last}" if last else "") + ")" if epoch else ""
    if which == "best":
        why = "lowest validation loss" if monitor == "val_loss" else "lowest training loss"
        return (f"Metrics of the **best** checkpoint{at}: the epoch with the {why}, not "
                "necessarily the last one.")
    return f"Metrics of the **last** checkpoint{at} (there is no best checkpoint)."


def _state_notes(run: Run, st_: dict, cfg: dict, hist: pd.DataFrame, state: str,
                 pol: hosting.HostingPolicy) -> None:
    """Above the curves: why it ended, a stop asked for, the progress or the queue, epochs."""
    reason = str(st_.get("reason") or "")
    if reason:
        (st.error if state == "failed" else st.info)(pol.redact(ui_words(reason)))
    if state == "running" and run.stop_requested():
        st.info("Stop requested: the run stops after the current batch.")
    if state == "running":
        ep, total = st_.get("epoch", 0), cfg["epochs"]
        b, nb = st_.get("batch", 0), st_.get("batches") or 0
        frac = ((ep - 1) + (b / nb if nb else 0)) / total if total else 0
        phase = st_.get("phase", "")
        st.progress(min(max(frac, 0.0), 1.0),
                    text=f"{phase}: epoch {ep}/{total}, batch {b}/{nb}" if phase == "training"
                    else phase or "starting")
    elif state == "queued":
        q = [r.id for r in run.store.queued()]
        pos = q.index(run.id) + 1 if run.id in q else "?"
        st.info(f"Queued: position {pos} of {len(q)}. One job trains at a time.")
    if len(hist) and "seconds" in hist:
        st.caption(f"{len(hist)} epoch(s) done · {hist['seconds'].mean():.1f} s per epoch")


def _panel_body(run: Run, visitor: str) -> None:
    pol = hosting.current()
    try:
        st_ = run.status()
        cfg = run.config
        hist = run.history()
        m = run.metrics()
        summary = (f"{cfg['data']['dataset']} · {cfg['arch']} · heads "
                   f"{', '.join(cfg['heads']) or '—'} · lr {cfg['lr']} · batch "
                   f"{cfg['batch_size']} · {cfg['epochs']} epochs · seed {cfg['seed']}")
    except RunDamaged as e:
        st.error(f"{pol.redact(str(e))}. Other runs are not affected.")
        return
    except (KeyError, TypeError, AttributeError):
        st.error(f"run {run.id}: config.json is damaged (not a training configuration). Other "
                 "runs are not affected.")
        return
    state = st_.get("state", "queued")
    dev = st_.get("device") or {}
    head = f"{STATE_ICON.get(state, '')} **Run `{run.id}`** — {state}"
    if dev:
        head += f" · {dev.get('backend', '?')} on {dev.get('device', '?')}"
    st.markdown(head)
    st.caption(summary)
    # What the state adds (a message, the progress) is one block, and the curves always have
    # their row of three slots, even empty: whatever the state (queued, running, done) and
    # whichever path drew it, the curves sit at the same place in the page, so a redraw
    # replaces them in place (no old run's curves left under a new one, no second copy)
    with st.container():
        _state_notes(run, st_, cfg, hist, state, pol)
    # each curve is its column's only element; a redraw replaces it in place (the frontend
    # keeps the old copy hidden until the new one is drawn)
    cols = st.columns(3)
    if len(hist):
        for col, (metric, title) in zip(cols, CURVES):
            fig = history_figure(hist, metric, title)
            if fig is not None:
                col.plotly_chart(fig, width="stretch", key=f"curve_{metric}_{run.id}")
    offline = state == "failed" and weights_download_failed(str(st_.get("reason") or ""))
    c1, c2, _ = st.columns([1, 1, 4])
    if state in ACTIVE and not pol.may_stop(run, visitor):
        c1.caption("Launched by another visitor: only they can stop it.")
    elif state in ACTIVE and c1.button("Stop", key=f"stop_{run.id}"):
        try:
            jobs.stop(run, visitor)
            st.toast("Stopping after the current batch; what was trained is kept.")
        except FaceMLError as e:
            st.error(pol.redact(str(e)))
    if offline:  # Resume would fail the same way
        st.caption('Resume would fail the same way: choose Weights = "random" (or go online) '
                   "and launch again.")
    elif state in ("stopped", "failed") and pol.hosted:
        st.caption("Launch this configuration again to continue it from its last saved epoch.")
    elif state in ("stopped", "failed") and c2.button("Resume", key=f"resume_{run.id}"):
        try:
            jobs.resume(run)
        except FaceMLError as e:
            st.error(pol.redact(str(e)))
        else:  # redraw the page: the panel now follows the run live, the table shows it queued
            st.session_state[_FLASH] = "Resumed from the last saved epoch."
            st.rerun()
    if state == "done" and m:
        rows = []
        for split, summ in m.items():
            if not isinstance(summ, dict):
                continue
            for head, vals in (summ.get("heads") or {}).items():
                rows.append({"split": split, "head": head,
                             **{k: v for k, v in vals.items() if isinstance(v, int | float)}})
            if "recon_mse" in summ:
                rows.append({"split": split, "head": "reconstruction",
                             "mse": summ["recon_mse"], "mean-image mse": summ["mean_image_mse"]})
        if rows:
            st.caption(results_caption(st_, hist))
            st.dataframe(pd.DataFrame(rows), hide_index=True)


def run_panel(run: Run, visitor: str, every: float = 2.0, watch: float = WATCH_EVERY) -> None:
    """A live view of one run: refreshes itself every ``every`` s while the run is queued or
    running; otherwise looks every ``watch`` s whether it started again (a Resume here, or
    elsewhere) and then redraws the page, so the panel follows it."""
    flash = st.session_state.pop(_FLASH, None)
    if flash:
        st.toast(flash)
    shown = _state(run)
    active = shown in ACTIVE

    # one fragment draws the panel, live or finished: the same elements at the same places
    # in both (a finished run redrawn by the live panel's last look, then by the page, shows
    # its curves once)
    @st.fragment(run_every=every if active else watch)
    def panel():
        _panel_body(run, visitor)
        now = _state(run)
        if (now not in ACTIVE) if active else (now != shown):
            # the whole page: the runs table and buttons catch up; the panel follows the run
            st.rerun()

    panel()


def table_states(store: RunStore) -> dict[str, str]:
    """Each run's state as the runs table shows it (``damaged`` included)."""
    return {row["run_id"]: row["state"] for row in (r.summary() for r in store.list())}


def runs_table(store: RunStore, key: str, every: float = 2.0,
               watch: float = WATCH_EVERY) -> str | None:
    """All runs; selecting a row returns its id (once: the selection is then cleared, so a
    new run moving the rows never selects another). The page is redrawn when a run changes
    state, every ``every`` s while one is queued or running, else every ``watch`` s."""
    gen_key = f"_{key}_gen"
    table = store.table()
    shown = dict(zip(table["run_id"], table["state"])) if not table.empty else {}

    @st.fragment(run_every=every if any(s in ACTIVE for s in shown.values()) else watch)
    def follow():
        if table_states(store) != shown:
            st.rerun()

    follow()
    if table.empty:
        st.caption("No runs yet.")
        return None
    table = table.sort_values("created", ascending=False, na_position="last")
    table.insert(1, "", table["state"].map(STATE_ICON).fillna(""))
    table["created"] = pd.to_datetime(table["created"], unit="s", errors="coerce")
    gen = st.session_state.get(gen_key, 0)
    ev = st.dataframe(table, hide_index=True, on_select="rerun", selection_mode="single-row",
                      key=f"{key}_{gen}" if gen else key, width="stretch")
    rows = ev.selection.rows if ev and ev.selection else []
    if not rows:
        return None
    st.session_state[gen_key] = gen + 1
    return table.iloc[rows[0]]["run_id"]

