"""Predict: a photo (upload or camera) → each face boxed, seen as the model sees it, answered."""

import streamlit as st

from faceml.runs import RunStore
from ui import predict as pr
from ui.common import hosted, user_errors

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
source = st.radio("Photo", ["Upload", "Camera"], horizontal=True, key="pr_source")
if source == "Upload":
    # every type reaches the script, which says in the page why a file cannot be used (the
    # uploader's own type filter would say it only in a tooltip); sizes: see upload_notice
    upload = st.file_uploader("A photo with one or more faces", key="pr_upload",
                              help="JPEG, PNG, WebP or GIF" + (", at most 10 MB" if hosted()
                                                               else ""))
    pr.upload_notice("pr_upload", max_mb)
else:
    upload = st.camera_input("Take a photo", key="pr_camera")
if upload is None:
    st.info("Upload a photo (or take one with the camera) to see the predictions.")
    st.stop()

pr.show_prediction(upload.getvalue(), predictors, pr.detector(), max_bytes=max_mb * 1024 * 1024,
                   token=getattr(upload, "file_id", None))
