"""Shared Streamlit widgets and cached resources (the only Streamlit code outside pages/)."""

from __future__ import annotations

import json
import os
import threading
from collections import OrderedDict
from contextlib import contextmanager

import streamlit as st

from faceml import data as datasets
from faceml.errors import FaceMLError
from faceml.preprocessing import AGE_MODES, PrepOptions, prepare

HOSTED = os.environ.get("FACEML_HOSTED", "") not in ("", "0", "false")


@contextmanager
def user_errors():
    """Show a FaceMLError as ``st.error`` instead of a traceback."""
    try:
        yield
    except FaceMLError as e:
        st.error(str(e))
        st.stop()


def progress_callback(text: str):
    bar = st.progress(0.0, text=text)

    def cb(done: int, total: int) -> None:
        bar.progress(min(1.0, done / total) if total else 1.0, text=f"{text} ({done}/{total})")

    return cb, bar


class _LRU:
    """Prepared datasets kept in the process, shared by every session (read-only)."""

    def __init__(self, size: int = 4):
        self.size, self.items, self.lock = size, OrderedDict(), threading.Lock()

    def get(self, key):
        with self.lock:
            if key in self.items:
                self.items.move_to_end(key)
                return self.items[key]
        return None

    def put(self, key, value) -> None:
        with self.lock:
            self.items[key] = value
            while len(self.items) > self.size:
                self.items.popitem(last=False)


@st.cache_resource(show_spinner=False)
def _prepared_store() -> _LRU:
    return _LRU()


def load_prepared(opts: PrepOptions):
    """Prepared data for these options: in memory when seen before in this process, else from
    faceml's on-disk cache or decoded (with a progress bar)."""
    key = json.dumps(opts.canonical(), sort_keys=True)
    store = _prepared_store()
    hit = store.get(key)
    if hit is not None:
        return hit
    cb, bar = progress_callback(f"Loading {opts.dataset}")
    try:
        prep = prepare(opts, progress=cb)
    finally:
        bar.empty()
    store.put(key, prep)
    return prep


def dataset_picker(prefix: str = "data") -> PrepOptions:
    """Dataset, path (remembered for the session) and preprocessing options."""
    ss = st.session_state
    names = datasets.names()
    if HOSTED:
        allowed = [n for n in names if n == "synthetic" or datasets.get(n).found(None)]
        names = allowed
    ss.setdefault("dataset", "synthetic")
    if ss["dataset"] not in names:
        ss["dataset"] = names[0]
    c1, c2 = st.columns([1, 2])
    name = c1.selectbox("Dataset", names, key="dataset",
                        format_func=lambda n: f"{n} — {datasets.get(n).title}")
    adapter = datasets.get(name)
    ds_opts: dict = {}
    path = None
    if adapter.needs_path:
        default = adapter.resolve_path(None)
        pk = f"path_{name}"
        ss.setdefault(pk, str(default) if default else "")
        path = c2.text_input("Path", key=pk, disabled=HOSTED,
                             help="A folder or file on this machine (remembered for the session)")
    else:
        a, b = c2.columns(2)
        ds_opts["n"] = int(a.number_input("Faces", 200, 20000, step=200, key="syn_n",
                                          value=ss.get("syn_n", 3000)))
        ds_opts["label_noise"] = float(b.slider("Label noise", 0.0, 0.5, step=0.05,
                                                key="syn_noise", value=ss.get("syn_noise", 0.0)))
    c = st.columns(5)
    size = c[0].selectbox("Image size", [32, 48, 64, 96, 128, 160, 224], key="size",
                          index=2)
    color = c[1].radio("Colour", ["rgb", "gray"], key="color", horizontal=True)
    fraction = c[2].select_slider("Sample", [0.05, 0.1, 0.25, 0.5, 1.0], key="fraction",
                                  value=ss.get("fraction", 1.0),
                                  format_func=lambda f: f"{f:.0%}")
    age = c[3].selectbox("Age as", list(AGE_MODES), key="age_mode",
                         help="years = regression; or bins with a named scheme")
    seed = int(c[4].number_input("Split seed", 0, 10_000, key="data_seed", value=0))
    edges = None
    if age == "custom":
        txt = st.text_input("Custom age edges", "18,40,65", key="age_edges")
        try:
            edges = [int(v) for v in txt.split(",") if v.strip()]
        except ValueError:
            st.error(f"Age edges must be whole numbers separated by commas, not {txt!r}")
            st.stop()
    return PrepOptions(dataset=name, path=path or None, dataset_options=ds_opts, size=int(size),
                       color=color, fraction=float(fraction), seed=seed, age=age, age_edges=edges)
