"""Predict: a photo (upload or camera) → each face boxed, seen as the model sees it, answered."""

import streamlit as st

from faceml.runs import RunStore
from ui import predict as pr
from ui.common import user_errors

st.title("Predict")
st.caption("Find the faces in a photo and see what a model says about each one, with the "
           "crop exactly as the model receives it. Answers are a model's guess from "
           "appearance, learnt from annotated photos — not facts about anyone. Photos are "
           "processed in memory and never stored.")

with user_errors():
    choices = pr.model_picker(RunStore())
if not choices:
    st.stop()
predictors = pr.load_predictors(choices)
if not predictors:
    st.stop()
with st.expander("About the model(s)", expanded=False):
    for name, p in predictors.items():
        st.markdown(f"- {p.describe()}")
        if p.reference is None:
            st.caption("  No stored validation predictions: no age interval and no "
                       "rare-group warnings for this model.")
    st.caption(pr.detector().describe())

max_mb = int(st.get_option("server.maxUploadSize") or 10)
pr.photo_section(predictors, max_mb)  # a fragment: an upload reruns this part of the page only
