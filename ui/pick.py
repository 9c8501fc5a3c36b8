"""One run picker for the pages that show one run (Train, Evaluate, VAE studio), with the URL's
``?run=`` kept in step: a link opens that run, and the URL follows what the visitor picks, so a
reload or a shared link shows the same run."""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st


def url_run() -> str | None:
    """The run the URL's ``?run=`` asks for (None without one)."""
    return st.query_params.get("run") or None


def show_in_url(run_id: str) -> None:
    """Write ``run_id`` into the URL (only when it differs: each write is a browser message)."""
    if st.query_params.get("run") != run_id:
        st.query_params["run"] = run_id


def run_picker(label: str, ids: list[str], key: str,
               format_func: Callable[[str], str] = str) -> str:
    """A selectbox over ``ids`` (not empty) under session-state ``key``, synced with ``?run=``.

    The URL's run is selected when it arrives (a link, a reload, the Train page's link); a run
    the URL asks for that is not in ``ids`` is left to the page to explain, and the first id
    (or the session's earlier choice) is shown instead. Picking another run rewrites the URL."""
    ss = st.session_state
    seen = f"_{key}_url"  # the URL run this session has already followed
    wanted = url_run()
    if wanted and wanted in ids and ss.get(seen) != wanted:
        ss[key] = wanted
    elif ss.get(key) not in ids:
        ss[key] = ids[0]
    run_id = st.selectbox(label, ids, key=key, format_func=format_func)
    ss[seen] = run_id
    show_in_url(run_id)
    return run_id
