"""Compare runs side by side, and sweep two hyperparameters as a grid of queued runs."""

import plotly.express as px
import streamlit as st

from faceml.training import sweeps
from faceml.runs import RunStore
from faceml.errors import FaceMLError
from faceml.config import TrainConfig
from ui.common import error_text, has_split, keep, kept, policy, visitor
from ui.compare import SWEEP_DEFAULTS, roc_section, run_label, sweep_message, sweep_view

st.title("Compare & sweep")
store = RunStore()
runs = store.list()
ids = [r.id for r in runs]
label = {r.id: run_label(r) for r in runs}
if not runs:
    st.info("No runs yet: launch one on the Train page.")
    st.stop()

tab_cmp, tab_sweep = st.tabs(["Compare runs", "Sweep"])

with tab_cmp:
    picked = st.multiselect("Runs", ids, default=ids[-2:] if len(ids) >= 2 else ids,
                            key="cmp_runs", format_func=label.get)
    chosen = [store.get(i) for i in picked]
    for r in chosen:
        st.caption(label[r.id])
    if len(chosen) < 2:
        st.info("Pick two or more runs.")
    else:
        st.subheader("What differs")
        diff = sweeps.config_differences(chosen)
        if diff.empty:
            st.caption("Same configuration (repeats of one config).")
        else:
            st.dataframe(diff.astype(str), width="stretch")
        st.subheader("Curves")
        long = sweeps.histories(chosen)
        metrics = sorted(long["metric"].unique()) if not long.empty else []
        if metrics:
            default = [m for m in metrics if m in ("loss", "val_loss")] or metrics[:1]
            show = st.multiselect("Metrics", metrics, default=default, key="cmp_metrics")
            sub = long[long["metric"].isin(show)]
            fig = px.line(sub, x="epoch", y="value", color="run_id", line_dash="metric",
                          markers=True, height=380)
            st.plotly_chart(fig, width="stretch", key="cmp_curves")
        else:
            st.caption("No finished epochs yet.")
        # runs trained without a test split (split test 0) have val metrics only: then val
        # is the default, and test would show nothing (also after the chosen runs change)
        val_only = (any(has_split(r, "val") for r in chosen)
                    and not any(has_split(r, "test") for r in chosen))
        if val_only and st.session_state.get("cmp_split") == "test":
            st.session_state["cmp_split"] = "val"
        split = st.radio("Metrics on", ["test", "val"], horizontal=True, key="cmp_split",
                         index=1 if val_only else 0)
        table = sweeps.metrics_table(chosen, split)
        if table.empty:
            st.caption("No final metrics yet (runs still training, or failed).")
        else:
            st.dataframe(table, hide_index=True, width="stretch")
        st.subheader("ROC and sensitivity / specificity")
        roc_section(chosen, split)

with tab_sweep:
    st.caption("Every cell is an ordinary queued run; cells whose configuration already ran "
               "are reused from the run store.")
    base_id = st.selectbox("Base configuration (from a run)", ids, index=len(ids) - 1,
                           key="sweep_base", format_func=label.get)
    base = TrainConfig.from_dict(store.get(base_id).config)
    params = list(sweeps.SWEEPABLE)
    c1, c2 = st.columns(2)
    a = c1.selectbox("Rows", params, index=params.index("lr"), key="sweep_a")
    # each parameter keeps its own values: a new parameter starts from its own defaults
    va = kept(f"sweep_va_{a}", c1.text_input(
        "Row values", key=keep(f"sweep_va_{a}", SWEEP_DEFAULTS.get(a, ""))))
    b = c2.selectbox("Columns", params, index=params.index("batch_size"), key="sweep_b")
    vb = kept(f"sweep_vb_{b}", c2.text_input(
        "Column values", key=keep(f"sweep_vb_{b}", SWEEP_DEFAULTS.get(b, ""))))
    if st.button("Launch sweep", type="primary", disabled=not policy().sweeps,
                 key="sweep_launch", help=None if policy().sweeps else "Off in the hosted demo"):
        try:  # an error is shown above the sweeps, which stay drawn below it
            sw = sweeps.launch(base, a, sweeps.parse_values(a, va), b,
                               sweeps.parse_values(b, vb), store, visitor=visitor())
        except FaceMLError as e:
            st.error(error_text(e))
        else:
            st.session_state["sweep_id"] = sw["id"]
            st.success(sweep_message(sw))

    all_sweeps = sweeps.list_sweeps(store)
    if all_sweeps:
        labels = {s["id"]: f"{s['id']}: {s['a']} × {s['b']} ({len(s['cells'])} runs)"
                  for s in all_sweeps}
        current = st.session_state.get("sweep_id", all_sweeps[0]["id"])
        sid = st.selectbox("Sweep", list(labels), format_func=labels.get,
                           index=list(labels).index(current) if current in labels else 0,
                           key="sweep_pick")
        sw = next(s for s in all_sweeps if s["id"] == sid)

        @st.fragment(run_every=3)
        def grid_view():
            sweep_view(sw, store)

        grid_view()
