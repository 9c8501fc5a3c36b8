"""VAE studio: look inside a trained VAE run — reconstructions, random faces from the prior,
latent sliders with attribute directions, traversals, interpolation and a map of the latent
space."""

import streamlit as st

from faceml.runs import RunStore
from ui import vae_studio as vs

st.title("VAE studio")
st.caption("Reconstructions, new faces from the prior z ~ N(0, I), latent sliders, traversals, "
           "interpolation and a map of the latent space of a trained variational auto-encoder.")
store = RunStore()
run = vs.pick_run(store)
studio = vs.load(store, run)
vs.metrics_row(studio)

tabs = st.tabs(["Reconstructions", "Random faces", "Latent sliders", "Traversal",
                "Interpolation", "Latent map"])
with tabs[0]:
    vs.reconstructions(studio)
with tabs[1]:
    vs.prior_samples(studio)
with tabs[2]:
    vs.sliders(studio)  # a fragment: a slider reruns this panel only
with tabs[3]:
    vs.traversal(studio)
with tabs[4]:
    vs.interpolation(studio)
with tabs[5]:
    vs.latent_map(studio)
