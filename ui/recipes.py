"""The Recipes page's logic: the course notebooks' experiments grouped by notebook, each with
its settings, parameter counts, the notebook's claim beside the corrected figure and ours (runs
in the store of the same configuration, allowed overrides named), and buttons that fill the
Train form or launch it."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from faceml import data as datasets
from faceml.errors import FaceMLError
from faceml.runs import RunStore
from faceml.training import jobs, recipes, sweeps
from ui.common import error_text, held, kept, policy, visitor
from ui.runs import ACTIVE
from ui.train import FILL



@st.cache_data(show_spinner=False, max_entries=64)
def counted(name: str) -> tuple[int, int]:
    """The recipe's (total, trainable) parameters, counted without weights."""
    s = recipes.sizes(recipes.get(name))
    return s.total, s.trainable


def overrides(notebook: str, dataset: str) -> dict:
    """The overrides a visitor may set for a notebook's recipes: path (typed paths only),
    epochs (0 = the recipe's) and carving validation from train."""
    pol = policy()
    c = st.columns([3, 1, 2])
    path = None
    adapter = datasets.get(dataset)
    if adapter.needs_path and pol.typed_paths:
        key = f"recipe_path_{notebook}"
        default = adapter.location(None)
        path = kept(key, c[0].text_input(
            f"{dataset} location", **held(key, str(default) if default else ""),
            help="A folder or file on this machine (empty: the shared data folder)")) or None
    elif adapter.needs_path:
        c[0].caption("Read from where the server's operator put it.")
    hi = pol.caps.epochs if pol.hosted else 500
    ek = f"recipe_epochs_{notebook}"
    epochs = int(c[1].number_input("Epochs (0 = recipe's)", 0, hi, key=ek,
                                   help="Fewer epochs for a quick look"))
    sk = f"recipe_carve_{notebook}"
    carve = c[2].checkbox("Carve validation from train (80/10/10)", key=sk,
                          help="For a copy without the official held-out split")
    return {"path": path, "epochs": epochs or None, "split": (0.8, 0.1, 0.1) if carve else None}


def _value(v) -> str:
    return "—" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)


def comparison(recipe: recipes.Recipe, store: RunStore,
               runs: list | None = None) -> tuple[pd.DataFrame, list]:
    """One row per figure and run of this recipe: the notebook's claim, the corrected figure,
    ours; and the matching runs ``[(run, overrides)]`` (``runs``: already found in ``store``)."""
    runs = recipes.matching_runs(recipe, store) if runs is None else runs
    rows = []
    for claim in recipes.figures(recipe):
        for run, over in runs or [(None, None)]:
            state = run.status().get("state") if run is not None else None
            rows.append({"figure": claim.label(), "notebook's claim": _value(claim.value),
                         "corrected": _value(claim.corrected), "ours": _value(
                             recipes.ours(run, claim) if run is not None else None),
                         "run": f"{run.id} ({state})" if run is not None else "no run yet",
                         "overrides": ", ".join(over) if over else "—"})
    return pd.DataFrame(rows), runs


def launch(recipe: recipes.Recipe, cfg, store: RunStore) -> None:
    """Queue the recipe's run (a sweep recipe: its grid) for the background worker."""
    try:
        cfg.validate(recipe.sizing_labels())
        recipes.require_data(cfg)
        if recipe.grid:
            sweep = sweeps.launch_grid(cfg, recipe.grid, store, visitor=visitor())
            st.success(f"Queued sweep {sweep['id']}: {len(sweep['cells'])} runs.")
        else:
            run, new = jobs.submit(cfg, store, visitor=visitor())
            st.success(f"{'Queued' if new else 'Already ran: cached'} run {run.id} "
                       f"([open in Evaluate](/evaluate?run={run.id})).")
    except FaceMLError as e:
        msg = error_text(e)
        if policy().typed_paths:
            msg = msg.replace("with --path", "in the location box above").replace(
                "with --split 0.8,0.1,0.1", "with 'Carve validation from train'")
        st.error(msg)


def fill_train(cfg) -> None:
    """Open the Train page with ``cfg`` in its form."""
    st.session_state[FILL] = cfg.canonical()
    st.session_state.pop("run_id", None)
    st.switch_page("app_pages/train.py")


def recipe_box(recipe: recipes.Recipe, opts: dict, store: RunStore) -> None:
    """One recipe: settings, counts, notes, the comparison table, its runs and the buttons."""
    with st.expander(f"**{recipe.name}** — {recipe.title}"):
        st.caption(" · ".join(f"{k}: {v}" for k, v in recipe.summary().items()))
        try:
            total, trainable = counted(recipe.name)
        except FaceMLError as e:
            st.error(error_text(e))
            return
        printed = ("" if recipe.params is None else
                   f" (the notebook printed {recipe.params[0]:,} / {recipe.params[1]:,})")
        st.markdown(f"Parameters: **{total:,}** total, **{trainable:,}** trainable{printed}.")
        for note in recipe.notes:
            st.markdown(f"- {note}")
        for claim in recipe.claims:
            if claim.note:
                st.markdown(f"- *{claim.label()}*: {claim.note}.")
        if recipe.grid:
            st.markdown("Grid: " + " × ".join(f"{k} {v}" for k, v in recipe.grid.items()))
        if recipe.evaluate:
            st.info(recipe.evaluate)
        cfg = recipe.config(path=opts["path"], epochs=opts["epochs"], split=opts["split"])
        a, b = st.columns(2)
        if not recipe.grid and a.button("Fill the Train form", key=f"fill_{recipe.name}"):
            fill_train(cfg)
        if b.button("Launch", key=f"launch_{recipe.name}", type="primary"):
            launch(recipe, cfg, store)
        recipe_runs(recipe, store)  # after Launch: its run is in the table


def _states(runs: list) -> list:
    return [run.status().get("state") for run, _ in runs]


def recipe_runs(recipe: recipes.Recipe, store: RunStore, every: float = 2.0) -> None:
    """The comparison table and the recipe's runs. While one of them is queued or running, it
    redraws itself every ``every`` s, so "ours" fills when the run finishes; then the page is
    redrawn once and the refreshing stops."""
    found = [recipes.matching_runs(recipe, store)]  # this page run's scan of the store
    active = any(s in ACTIVE for s in _states(found[0]))

    @st.fragment(run_every=every if active else None)
    def part():  # its own reruns scan the store again
        table, runs = comparison(recipe, store, found.pop() if found else None)
        if not table.empty:
            st.dataframe(table, hide_index=True, width="stretch",
                         key=f"recipe_table_{recipe.name}")
        for run, over in runs[:10]:
            figs = "; ".join(f"{c.label()} {_value(recipes.ours(run, c))}"
                             for c in recipes.figures(recipe))
            st.markdown(f"[Evaluate run {run.id}](/evaluate?run={run.id}) — ours: {figs or '—'}"
                        + (f" — overrides: {', '.join(over)}" if over else " — the recipe as is"))
        if active and not any(s in ACTIVE for s in _states(runs)):
            st.rerun()  # finished: the page again, without the refresh

    part()
