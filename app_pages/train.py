"""Train: configure an architecture and hyperparameters, launch a background job, watch it."""

import streamlit as st

from faceml.data.prepare import labels_for
from faceml.runs import RunStore
from ui import train as tf
from ui.common import dataset_picker, user_errors, visitor
from ui.runs import run_panel, runs_table

st.title("Train")
tf.header()
store = RunStore()

# the run shown (a reload, a ?run= link, a row picked) fills the form before any widget
shown = tf.asked_run(store)
tf.fill_from(shown)
tf.follow_preset()  # size and colour: the chosen preset's input unless changed

with st.expander("Data", expanded=False):
    opts = dataset_picker(tf.preset_sizes(), several=True)
with user_errors():
    labels = labels_for(opts)

st.subheader("Model")
model = tf.model_form(opts, labels)

st.subheader("Hyperparameters")
drawn = tf.hyper_form(opts, model)
cfg = tf.launch_cfg(drawn)
valid = tf.checked(cfg)

current = tf.launch_buttons(store, cfg, drawn, valid, shown)
if current:
    run_panel(store.get(current), visitor())

st.subheader("All runs")
picked = runs_table(store, key="train_runs")
if picked and picked != current:
    tf.show_run(picked)
    st.rerun()
