"""Recipes: every course notebook's experiment, exactly, beside what the notebook claimed."""

import streamlit as st

from faceml.runs import RunStore
from faceml.training import recipes
from ui import recipes as rp

st.title("Recipes")
st.caption("Each course notebook's experiments with the notebook's own settings and parameter "
           "counts. The table sets the notebook's reported figure beside the corrected one "
           "(where the notebook got it wrong) and ours, from runs of the same configuration "
           "(allowed overrides: " + ", ".join(recipes.OVERRIDES.values()) + ").")
store = RunStore()
groups = recipes.by_notebook()
tabs = st.tabs([recipes.NOTEBOOKS[nb].split(",")[0] for nb in groups])
for tab, (notebook, items) in zip(tabs, groups.items()):
    with tab:
        st.caption(recipes.NOTEBOOKS[notebook])
        opts = rp.overrides(notebook, items[0].dataset)
        for recipe in items:
            rp.recipe_box(recipe, opts, store)
