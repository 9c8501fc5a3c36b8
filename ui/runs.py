"""Run widgets: the live panel of one run, the table of all runs, layer tables."""

from __future__ import annotations

import json

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from faceml import hosting, jobs
from faceml.errors import FaceMLError
from faceml.runs import Run, RunDamaged, RunStore
from faceml.training import TrainConfig

STATE_ICON = {"queued": "⏳", "running": "🏃", "done": "✅", "failed": "❌", "stopped": "⏹",
              "damaged": "⚠️"}


@st.cache_resource(show_spinner=False)
def training_device() -> dict:
    """Where the worker will train: the Keras backend and the GPU, if any (looked up once)."""
    from faceml.training import device_info

    return device_info()


@st.cache_data(max_entries=32, show_spinner=False)
def layer_table_for(cfg_json: str):
    """Layer table and parameter counts of a config's model: built without weights, so any
    size a visitor types costs no memory (:mod:`faceml.sizing`)."""
    from faceml.sizing import model_size

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
    fig.update_layout(title=title, height=280, margin=dict(t=40, b=10, l=10, r=10),
                      xaxis_title="epoch", legend=dict(orientation="h", y=-0.25))
    return fig


def _panel_body(run: Run, visitor: str) -> None:
    try:
        st_ = run.status()
        cfg = run.config
        hist = run.history()
    except RunDamaged as e:
        st.error(f"{e}. Other runs are not affected.")
        return
    state = st_.get("state", "queued")
    dev = st_.get("device") or {}
    head = f"{STATE_ICON.get(state, '')} **Run `{run.id}`** — {state}"
    if dev:
        head += f" · {dev.get('backend', '?')} on {dev.get('device', '?')}"
    st.markdown(head)
    st.caption(f"{cfg['data']['dataset']} · {cfg['arch']} · heads {', '.join(cfg['heads']) or '—'}"
               f" · lr {cfg['lr']} · batch {cfg['batch_size']} · {cfg['epochs']} epochs · seed "
               f"{cfg['seed']}")
    if st_.get("reason"):
        (st.error if state == "failed" else st.info)(st_["reason"])
    if state == "running":
        ep, total = st_.get("epoch", 0), cfg["epochs"]
        b, nb = st_.get("batch", 0), st_.get("batches") or 0
        frac = ((ep - 1) + (b / nb if nb else 0)) / total if total else 0
        phase = st_.get("phase", "")
        st.progress(min(max(frac, 0.0), 1.0),
                    text=f"{phase}: epoch {ep}/{total}, batch {b}/{nb}" if phase == "training"
                    else phase or "starting")
    elif state == "queued":
        q = [r.id for r in RunStore(run.dir.parent).queued()]
        pos = q.index(run.id) + 1 if run.id in q else "?"
        st.info(f"Queued: position {pos} of {len(q)}. One job trains at a time.")
    if len(hist):
        if "seconds" in hist:
            st.caption(f"{len(hist)} epoch(s) done · {hist['seconds'].mean():.1f} s per epoch")
        cols = st.columns(3)
        for col, (metric, title) in zip(cols, [("loss", "Loss"), ("accuracy", "Accuracy"),
                                               ("mae", "MAE (years)")]):
            fig = history_figure(hist, metric, title)
            if fig is not None:
                col.plotly_chart(fig, width="stretch", key=f"curve_{metric}_{run.id}")
    c1, c2, _ = st.columns([1, 1, 4])
    pol = hosting.current()
    if state in ("queued", "running") and not pol.may_stop(run, visitor):
        c1.caption("Launched by another visitor: only they can stop it.")
    elif state in ("queued", "running") and c1.button("Stop", key=f"stop_{run.id}"):
        try:
            jobs.stop(run, visitor)
            st.toast("Stopping after the current batch; what was trained is kept.")
        except FaceMLError as e:
            st.error(pol.redact(str(e)))
    if state in ("stopped", "failed") and pol.hosted:
        st.caption("Launch this configuration again to continue it from its last saved epoch.")
    elif state in ("stopped", "failed") and c2.button("Resume", key=f"resume_{run.id}"):
        try:
            jobs.resume(run)
            st.toast("Resumed from the last saved epoch.")
        except FaceMLError as e:
            st.error(str(e))
    m = run.metrics()
    if state == "done" and m:
        rows = []
        for split, summ in m.items():
            for head, vals in (summ.get("heads") or {}).items():
                rows.append({"split": split, "head": head,
                             **{k: v for k, v in vals.items() if isinstance(v, int | float)}})
            if "recon_mse" in summ:
                rows.append({"split": split, "head": "reconstruction",
                             "mse": summ["recon_mse"], "mean-image mse": summ["mean_image_mse"]})
        if rows:
            st.dataframe(pd.DataFrame(rows), hide_index=True)


def run_panel(run: Run, visitor: str, every: float = 2.0) -> None:
    """A live view of one run: refreshes itself while the run is queued or running."""

    @st.fragment(run_every=every)
    def live():
        _panel_body(run, visitor)
        try:
            finished = run.status().get("state") not in ("queued", "running")
        except RunDamaged:
            finished = True
        if finished:
            st.rerun()  # the whole page: the runs table and buttons catch up; the timer stops

    try:
        active = run.status().get("state") in ("queued", "running")
    except RunDamaged:
        active = False
    if active:
        live()
    else:
        _panel_body(run, visitor)


def runs_table(store: RunStore, key: str) -> str | None:
    """All runs; selecting a row returns its id."""
    table = store.table()
    if table.empty:
        st.caption("No runs yet.")
        return None
    table = table.sort_values("created", ascending=False, na_position="last")
    table.insert(1, "", table["state"].map(STATE_ICON).fillna(""))
    table["created"] = pd.to_datetime(table["created"], unit="s", errors="coerce")
    ev = st.dataframe(table, hide_index=True, on_select="rerun", selection_mode="single-row",
                      key=key, width="stretch")
    rows = ev.selection.rows if ev and ev.selection else []
    return table.iloc[rows[0]]["run_id"] if rows else None

