"""FaceML Studio: routes only. Every screen lives in pages/."""

import streamlit as st

st.set_page_config(page_title="FaceML Studio", page_icon=":material/face:", layout="wide")

pages = [
    st.Page("pages/data.py", title="Data", icon=":material/dataset:", default=True),
    st.Page("pages/train.py", title="Train", icon=":material/model_training:"),
    st.Page("pages/evaluate.py", title="Evaluate", icon=":material/analytics:"),
    st.Page("pages/compare.py", title="Compare & sweep", icon=":material/compare:"),
    st.Page("pages/vae.py", title="VAE studio", icon=":material/blur_on:"),
    st.Page("pages/predict.py", title="Predict", icon=":material/photo_camera:"),
]
st.navigation(pages).run()
