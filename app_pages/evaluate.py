"""Evaluate: how good is a run, where does it fail, and on whom — every number one click from
the faces behind it."""

import streamlit as st

from faceml.runs import RunStore
from ui import evaluate as ev
from ui.common import user_errors

st.title("Evaluate")
st.caption("How good is a run, where does it fail, and on whom. Every number names the "
           "dataset and split it is computed on; click a cell, a group or a point to see the "
           "faces behind it.")

rows = ev.evaluable_runs(RunStore())
if not rows:
    st.info("No trained runs yet. Train a model on the **Train** page; every run that has "
            "finished (or saved its first epoch) can be evaluated here.")
    try:
        st.page_link("app_pages/train.py", label="Go to Train", icon=":material/model_training:")
    except Exception:  # noqa: BLE001 - the link needs the app's navigation; the text suffices
        pass
    st.stop()

c1, c2 = st.columns([4, 1])
with c1:
    run = ev.run_picker(rows)
split = c2.radio("Split", ev.run_splits(run), horizontal=True, key="ev_split")
parts = ev.run_datasets(run)  # a run trained on several datasets: one at a time
part = st.radio("Dataset", parts, horizontal=True, key="ev_dataset") if parts else None

with user_errors():
    view = ev.cross_panel(run) or ev.run_view(run, split, part)
ev.banner(view, run)

ev.analysis(view, run)  # a fragment: head, threshold and cell clicks rerun it alone
