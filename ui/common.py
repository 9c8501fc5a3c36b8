"""Shared Streamlit widgets and cached resources (the only Streamlit code outside app_pages/)."""

from __future__ import annotations

import json
import secrets
import sys
from contextlib import contextmanager

import streamlit as st

from faceml import data as datasets
from faceml import hosting
from faceml.data.cache import MemoryLRU
from faceml.errors import FaceMLError
from faceml.data.ages import AGE_MODES
from faceml.data.prepare import DEFAULT_SPLIT, PrepOptions, prepare


def policy() -> hosting.HostingPolicy:
    """The server's hosting policy (``FACEML_HOSTED``, the operator's config)."""
    return hosting.current()


def hosted() -> bool:
    """Demo mode for a hosted copy shared with a class (``FACEML_HOSTED=1``)."""
    return policy().hosted


def visitor() -> str:
    """This browser session's opaque token: the runs it launches are its own."""
    ss = st.session_state
    if "_visitor" not in ss:
        ss["_visitor"] = secrets.token_urlsafe(18)
    return ss["_visitor"]


# The library speaks in its API's words; the pages in their widgets' words.
_UI_WORDS = {"choose weights=None (random initialisation)":
             'choose Weights = "random" on the Train page (random initialisation)'}


def ui_words(text: str) -> str:
    """``text`` with the library's parameter names replaced by the widgets' labels."""
    for lib, ui in _UI_WORDS.items():
        text = text.replace(lib, ui)
    return text


def weights_download_failed(reason: str) -> bool:
    """A run failed because pretrained weights could not be downloaded (offline): resuming it
    fails the same way."""
    return "weights" in reason and "could not be downloaded" in reason


def error_text(e: Exception) -> str:
    """A user error's message, with any server path taken out when hosted."""
    return policy().redact(ui_words(str(e)))


@contextmanager
def user_errors():
    """Show a FaceMLError as ``st.error`` instead of a traceback."""
    try:
        yield
    except FaceMLError as e:
        st.error(error_text(e))
        st.stop()


def progress_callback(text: str):
    bar = st.progress(0.0, text=text)

    def cb(done: int, total: int) -> None:
        bar.progress(min(1.0, done / total) if total else 1.0, text=f"{text} ({done}/{total})")

    return cb, bar


@st.cache_resource(show_spinner=False)
def _prepared_store() -> MemoryLRU:
    """Prepared datasets kept in the process, shared by every session (read-only)."""
    return MemoryLRU(4)


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


CAPTION_CHARS = 11  # a sample face's caption line: fits a column of 8 on a laptop screen
CAPTION_LINES = 3


def sample_caption(values: dict, classes: dict, chars: int = CAPTION_CHARS,
                   lines: int = CAPTION_LINES) -> str:
    """A sample face's labels as a caption that fits under a small image: one short line per
    label (at most ``chars`` characters, then "…"), at most ``lines`` lines (the last one says
    how many more). Numbers as numbers (an age: "34"); a yes/no attribute only by its name,
    and only when yes. Lines are joined with Markdown hard breaks."""
    def cut(text: str) -> str:
        return text if len(text) <= chars else text[:chars - 1].rstrip() + "…"

    shown = []
    for name, v in values.items():
        if tuple(classes.get(name) or ()) == ("no", "yes"):
            if v == "yes":
                shown.append(cut(str(name).replace("_", " ")))
            continue
        shown.append(cut(f"{v:g}" if isinstance(v, float) else str(v).replace("_", " ")))
    if len(shown) > lines:
        shown = shown[:lines - 1] + [f"+{len(shown) - lines + 1} more"]
    return "  \n".join(shown) or "—"


def keep(key: str, default):
    """Give widget ``key`` its remembered value before it is drawn.

    Streamlit forgets a widget's state when a page without it runs; a plain copy under
    ``_keep_<key>`` survives page switches, so choices hold for the whole session."""
    ss = st.session_state
    if key not in ss:
        ss[key] = ss.get(f"_keep_{key}", default)
    return key


def kept(key: str, value):
    st.session_state[f"_keep_{key}"] = value
    return value


def held(key: str, default, options=None, param: str = "value", lo=None, hi=None) -> dict:
    """A widget's ``key`` (as :func:`ui.common.keep` gives it its remembered value) and that
    value once more as the widget's own default: ``value``/``default``, or ``index`` in
    ``options``.

    A value written to ``st.session_state`` reaches the browser only once, as a one-shot
    ``set_value`` on the widget's message in that run. A browser that mounts the widget from a
    later run's message (a slow first paint while the live panel's fragments rerun every 2 s)
    draws the widget's own default instead (lr 0, epochs 0, no heads) and sends it back with
    the next change, so the form drifts from the run it was filled from. With the value as the
    default, every message draws it. (A number outside ``lo``..``hi`` is left to Streamlit,
    which resets it, rather than raising here.)"""
    keep(key, default)
    v = st.session_state[key]
    if options is not None:
        opts = list(options)
        return {"key": key, "index": opts.index(v) if v in opts else 0}
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        return {"key": key}
    return {"key": key, param: v}


SIZES = (32, 48, 64, 96, 128, 160, 224)
FRAMING_CHOICES = {"auto": "default (as shipped; the face box for several datasets)",
                   "native": "as the dataset ships it", "face": "the face box"}
"""The crop control: ``auto`` is ``PrepOptions.framing=None`` (see ``faceml.data.prepare``)."""


def split_picker() -> tuple[str, tuple[float, float, float]]:
    """Where validation faces come from (carved, or the dataset's official held-out split) and
    the fractions carved: ``(holdout, (train, val, test))``. Percentages keep the fractions
    exact (70 % is 0.7); a test of 0 % makes no test split (results are then on val)."""
    c = st.columns([2, 1, 1])
    holdouts = ["carve", "official"]
    holdout = kept("holdout", c[0].radio(
        "Validation faces", holdouts, **held("holdout", "carve", holdouts), horizontal=True,
        format_func=lambda h: {"carve": "carved from train",
                               "official": "the official held-out split"}[h],
        help="Official: FairFace's val (a class-per-folder set's test) is the validation set "
             "and train keeps every official train face; nothing else is carved unless a "
             "test % is asked for."))
    if holdout == "official":
        val = 0
        c[1].caption("Validation: the dataset's own held-out faces.")
        test = int(kept("test_pct_official", c[2].number_input(
            "Test % (carved)", 0, 90, step=5, **held("test_pct_official", 0, lo=0, hi=90))))
    else:
        val = int(kept("val_pct", c[1].number_input(
            "Validation %", 0, 90, step=5,
            **held("val_pct", round(DEFAULT_SPLIT[1] * 100), lo=0, hi=90))))
        test = int(kept("test_pct", c[2].number_input(
            "Test % (0 = none)", 0, 90, step=5,
            **held("test_pct", round(DEFAULT_SPLIT[2] * 100), lo=0, hi=90))))
    if val + test >= 100:
        st.error(f"Validation {val} % and test {test} % leave nothing to train on.")
        st.stop()
    return holdout, ((100 - val - test) / 100, val / 100, test / 100)


def dataset_picker(sizes_also: tuple[int, ...] = (), several: bool = False) -> PrepOptions:
    """Dataset, path and preprocessing options, remembered for the session across pages.
    ``sizes_also``: image sizes to offer besides :data:`SIZES` (the presets' inputs).
    ``several`` (the Train page): other datasets to train on at once may be added to the
    first (``also_datasets``), each with its own path (:mod:`faceml.data.multi`)."""
    pol = policy()
    names = pol.dataset_names()  # hosted: the operator's allow-list, where it is on disk
    if st.session_state.get("dataset", st.session_state.get("_keep_dataset")) not in names:
        st.session_state.pop("dataset", None)
        st.session_state["_keep_dataset"] = "synthetic"
    c1, c2 = st.columns([1, 2])
    name = kept("dataset", c1.selectbox(
        "Dataset", names, **held("dataset", "synthetic", names),
        format_func=lambda n: f"{n} — {datasets.get(n).title}"))
    chosen = [name]
    if several:
        others = [n for n in names if n != name]
        ss = st.session_state
        for k in ("also_datasets", "_keep_also_datasets"):  # names no longer offered
            if k in ss:
                ss[k] = [n for n in ss[k] if n in others]
        chosen += kept("also_datasets", c1.multiselect(
            "Also train on", others, **held("also_datasets", [], param="default"),
            help="Several datasets at once: each face trains the labels its dataset has, in "
                 "one label space from the declared mappings; each is split on its own"))
    paths: dict = {}
    options: dict = {}
    for n in chosen:
        paths[n], options[n] = _dataset_source(pol, n, c2, label=len(chosen) > 1)
    if len(chosen) == 1:
        path, ds_opts = paths[name], options[name]
    else:
        path = {n: p for n, p in paths.items() if p} or None
        ds_opts = {n: o for n, o in options.items() if o}
    return _rest_of_picker(chosen, path, ds_opts, sizes_also)


def _dataset_source(pol, name: str, where, label: bool = False) -> tuple[str | None, dict]:
    """One dataset's path (typed where the server allows it) or, for a generated dataset, its
    options; ``label``: name the dataset on its widgets (several datasets)."""
    adapter = datasets.get(name)
    ds_opts: dict = {}
    path = None
    if adapter.needs_path and pol.typed_paths:
        default = adapter.resolve_path(None)
        pk = f"path_{name}"
        path = kept(pk, where.text_input(
            f"Path of {name}" if label else "Path", **held(pk, str(default) if default else ""),
            help="A folder or file on this machine (remembered for the session)"))
    elif adapter.needs_path:
        where.caption(f"{name + ': r' if label else 'R'}ead from where the server's operator "
                      "put it.")
    else:
        a, b = where.columns(2)
        most = pol.caps.faces if pol.hosted else 20000
        if st.session_state.get("syn_n", 0) > most:
            st.session_state["syn_n"] = most
        ds_opts["n"] = int(kept("syn_n", a.number_input(
            "Faces", min(200, most), most, step=200,
            **held("syn_n", min(3000, most), lo=min(200, most), hi=most))))
        ds_opts["label_noise"] = float(kept("syn_noise", b.slider(
            "Label noise", 0.0, 0.5, step=0.05, **held("syn_noise", 0.0, lo=0.0, hi=0.5))))
    return path or None, ds_opts


def _rest_of_picker(chosen: list[str], path, ds_opts: dict, sizes_also) -> PrepOptions:
    c = st.columns(5)
    sizes = sorted({*SIZES, *sizes_also})
    size = kept("size", c[0].selectbox("Image size", sizes, **held("size", 64, sizes)))
    color = kept("color", c[1].radio("Colour", ["rgb", "gray"],
                                     **held("color", "rgb", ["rgb", "gray"]), horizontal=True))
    fraction = kept("fraction", c[2].select_slider(
        "Sample", [0.05, 0.1, 0.25, 0.5, 1.0], **held("fraction", 1.0),
        format_func=lambda f: f"{f:.0%}"))
    age = kept("age_mode", c[3].selectbox("Age as", list(AGE_MODES),
                                          **held("age_mode", "years", AGE_MODES),
                                          help="years = regression; or bins with a named scheme"))
    seed = int(kept("data_seed", c[4].number_input(
        "Split seed", 0, 10_000, **held("data_seed", 0, lo=0, hi=10_000))))
    edges = None
    if age == "custom":
        txt = kept("age_edges", st.text_input("Custom age edges",
                                              **held("age_edges", "18,40,65")))
        try:
            edges = [int(v) for v in txt.split(",") if v.strip()]
        except ValueError:
            st.error(f"Age edges must be whole numbers separated by commas, not {txt!r}")
            st.stop()
    holdout, split = split_picker()
    framing = kept("framing", st.radio(
        "Crop", FRAMING_CHOICES, **held("framing", "auto", FRAMING_CHOICES), horizontal=True,
        format_func=FRAMING_CHOICES.get,
        help="Face box: each image cut to the crop the Predict page's detector hands a model "
             "(measured per dataset). The default reads one dataset as it ships and several "
             "in the face box, so that their faces are framed alike."))
    return PrepOptions(dataset=chosen, path=path or None, dataset_options=ds_opts, size=int(size),
                       color=color, fraction=float(fraction), seed=seed, age=age, age_edges=edges,
                       split=split, holdout=holdout,
                       framing=None if framing == "auto" else framing)


def keep_keras_between_runs() -> None:
    """Stop Streamlit from calling ``keras.backend.clear_session()`` after every script run.

    Streamlit 1.67 (``script_runner._clean_problem_modules``) clears Keras's session after
    each run of any page. With the TensorFlow backend that empties TF's kernel cache, so the
    next prediction re-creates every kernel of the cached model: measured with AppTest on a
    20 MP photo, 0.66 s of CPU per upload instead of 0.17 s. It also replaces Keras's
    thread-local global state while other sessions' scripts may be using it. Models here are
    loaded once per process (``st.cache_resource``) and never rebuilt per run, so nothing
    needs the clearing. This keeps the rest of the cleaning (matplotlib's figures closed).
    Process-wide and idempotent; its place is the app's entry point (every page gains)."""
    from streamlit.runtime.scriptrunner import script_runner

    if getattr(script_runner._clean_problem_modules, "keeps_keras", False):
        return

    def clean_problem_modules() -> None:
        plt = sys.modules.get("matplotlib.pyplot")
        if plt is not None:
            try:
                plt.close("all")
            except Exception:  # noqa: BLE001 - as Streamlit's own: never fail the app here
                pass

    clean_problem_modules.keeps_keras = True
    script_runner._clean_problem_modules = clean_problem_modules


def has_split(run, split: str) -> bool:
    """Whether ``run`` stored final metrics for ``split`` (a run trained without a test split
    has val only; an unreadable one has none)."""
    try:
        metrics = run.metrics()
    except FaceMLError:
        return False
    return isinstance((metrics or {}).get(split), dict)
