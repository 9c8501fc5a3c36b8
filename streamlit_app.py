"""FaceML Studio: routes only.

Every screen lives in app_pages/ (not pages/: Streamlit would also serve a folder of that name
as legacy multipage pages, with the wrong navigation on a deep link).
"""

import streamlit as st

from ui.common import keep_keras_between_runs

# The tab icon is an emoji: Streamlit draws it as an inline SVG (a data: URL). A ``:material/…:``
# page icon would be fetched from Google's font server; the navigation's material icons are
# drawn from the font Streamlit serves itself. No page requests anything from another host
# (tests/browser/test_offline.py).
st.set_page_config(page_title="FaceML Studio", page_icon="🙂", layout="wide")

# Streamlit clears Keras's session after every run, in every thread: other visitors' model
# sizing (deferred weights) and cached models' TF kernels would be lost (ui.common).
keep_keras_between_runs()

pages = [
    st.Page("app_pages/data.py", title="Data", icon=":material/dataset:", default=True),
    st.Page("app_pages/train.py", title="Train", icon=":material/model_training:"),
    st.Page("app_pages/evaluate.py", title="Evaluate", icon=":material/analytics:"),
    st.Page("app_pages/compare.py", title="Compare & sweep", icon=":material/compare:"),
    st.Page("app_pages/vae.py", title="VAE studio", icon=":material/blur_on:"),
    st.Page("app_pages/predict.py", title="Predict", icon=":material/photo_camera:"),
    st.Page("app_pages/recipes.py", title="Recipes", icon=":material/menu_book:"),
]
st.navigation(pages).run()
