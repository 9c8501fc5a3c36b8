"""Data: pick a dataset, set the options, look at what is in it."""

import numpy as np
import pandas as pd
import plotly.express as px
import streamlit as st

from ui.common import dataset_picker, load_prepared, sample_caption, user_errors

st.title("Data")
st.caption("Pick a dataset and the preprocessing every model trained on it will carry.")

opts = dataset_picker()
with user_errors():
    prep = load_prepared(opts)

n = len(prep.frame)
counts = prep.frame["split"].value_counts()
m = st.columns(5)
m[0].metric("Faces", f"{n:,}")
for col, sp in zip(m[1:4], ("train", "val", "test")):
    col.metric(sp, f"{int(counts.get(sp, 0)):,}")
m[4].metric("Skipped", len(prep.bad))
st.caption(f"{prep.dataset} at {opts.size}×{opts.size} {opts.color}; "
           f"{'from the array cache' if prep.cache_hit else 'decoded'} in {prep.seconds:.2f} s. "
           "Splits are stratified and seeded" + (" (official split honoured)."
                                                 if "split" in prep.frame and prep.options.dataset
                                                 in ("fairface", "celeba") else "."))
for note in prep.notes:  # what the adapter read back (e.g. spreadsheet dates as age bins)
    st.info(note[:1].upper() + note[1:] + ".")
for w in prep.warnings:
    st.warning(w)

st.subheader("Classes per split")
ct = prep.counts()
if ct.empty:
    st.info("This dataset has no categorical labels.")
for label, part in ct.groupby("label", sort=False):
    fig = px.bar(part, x="class", y="count", color="split", barmode="group",
                 title=f"{label}", height=300,
                 category_orders={"split": ["train", "val", "test"]})
    fig.update_layout(margin=dict(t=40, b=10, l=10, r=10))
    st.plotly_chart(fig, width="stretch", key=f"counts_{label}")

if "age_years" in prep.frame or (prep.labels.get("age") and prep.labels["age"].kind == "years"):
    st.subheader("Age")
    years = prep.frame["age_years"] if "age_years" in prep.frame else prep.frame["age"]
    fig = px.histogram(pd.DataFrame({"age (years)": years, "split": prep.frame["split"]}),
                       x="age (years)", color="split", nbins=40, height=300,
                       category_orders={"split": ["train", "val", "test"]})
    fig.update_layout(margin=dict(t=20, b=10, l=10, r=10))
    st.plotly_chart(fig, width="stretch", key="age_hist")

st.subheader("Sample")
c1, c2, _ = st.columns([1, 1, 3], vertical_alignment="bottom")
k = int(c1.number_input("Faces shown", 8, 64, 24, step=8))
if c2.button("Reshuffle"):
    st.session_state["sample_seed"] = st.session_state.get("sample_seed", 0) + 1
rng = np.random.default_rng(st.session_state.get("sample_seed", 0))
idx = rng.choice(n, size=min(k, n), replace=False)
label_cols = [c for c in prep.labels]
classes = {c: spec.classes for c, spec in prep.labels.items()}
captions = [sample_caption({c: prep.frame.iloc[i][c] for c in label_cols}, classes) for i in idx]
imgs = [prep.x[i][..., 0] if prep.x.shape[-1] == 1 else prep.x[i] for i in idx]
# the whole width, one row of 8 columns at a time: the rows stay aligned, a caption is a few
# short lines (one a label)
for r in range(0, len(imgs), 8):
    cols = st.columns(8)
    for j in range(r, min(r + 8, len(imgs))):
        cols[j - r].image(imgs[j], caption=captions[j], width="stretch",
                          clamp=True, output_format="PNG")
st.caption("Captions: one line a label (" + ", ".join(label_cols) + "; a yes/no attribute "
           "is named when yes). The labels in full and the file names are listed below.")
with st.expander("Sources of the faces shown"):
    st.dataframe(prep.frame.iloc[idx][["source", *label_cols, "split"]], hide_index=True)

st.subheader("Skipped files")
if prep.bad:
    # as tall as its rows (a fixed height drew empty rows under a few skipped files)
    st.dataframe(pd.DataFrame([b.__dict__ for b in prep.bad]), hide_index=True,
                 height=min(240, 38 + 35 * len(prep.bad)))
else:
    st.success("No file was skipped.")
