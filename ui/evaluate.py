"""Evaluate widgets: pick a run, and look at its numbers one click away from the faces.

Everything the page shows comes from one :class:`View`: an
:class:`~faceml.evaluation.interpretation.Interpretation` (the stored predictions of a run, its
last checkpoint evaluated while it trains, or a cross-dataset evaluation) plus where its images
live. Views are kept in a process-wide LRU (``st.cache_resource``) keyed by the files they were
computed from, and each view memoises its derived tables (ROC curves, group breakdowns...), so a
click on a matrix cell recomputes nothing but that cell's faces.

Interactions rerun only what they change (``st.fragment``): the head picker and the decision
threshold rerun the head's panel (:func:`analysis`), not the run picker or the view's loading;
a click on a confusion-matrix cell reruns the matrix and its faces only
(:func:`confusion_section`).

Every view says which checkpoint of its run made its numbers (best or last). On a hosted server
the cross-dataset panel offers the operator's datasets only, with no path to type, and no
message names a server path.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from faceml import data as datasets
from faceml.evaluation import evaluate as ev
from faceml.evaluation import figures
from faceml.evaluation import report as rep
from faceml.evaluation.classification import roc_curves
from faceml.evaluation.interpretation import Interpretation
from faceml.data.cache import MemoryLRU
from faceml.errors import ConfigError, FaceMLError
from faceml.data.heads import HeadSpec
from faceml.modeling import kinds
from faceml.runs import Run, RunDamaged, RunStore
from ui import pick
from ui.common import error_text, has_split, policy, progress_callback, user_errors
from ui.pick import url_run

STATE_ICON = {"queued": "⏳", "running": "🏃", "done": "✅", "failed": "❌", "stopped": "⏹"}
PER_PAGE = 18
FACE_WIDTH = 150  # px, each face of a gallery
DISPLAY_SIZE = 64


def _fragment(fn):
    """``st.fragment``, unless ``FACEML_UI_FRAGMENTS=0`` (bench/evaluate_browser.py serves the
    app that way once to time the same click with the whole page rerun, its baseline)."""
    return fn if os.environ.get("FACEML_UI_FRAGMENTS", "1") == "0" else st.fragment(fn)


# --- views -----------------------------------------------------------------------------------

@dataclass
class View:
    """One evaluation on screen: its numbers, where its faces are, what to say about it."""

    key: str
    interp: Interpretation
    data: dict  # PrepOptions (canonical dict) locating the images
    kind: str  # "stored" | "checkpoint" | "cross"
    notes: list[str] = field(default_factory=list)
    model: str = ""
    checkpoint: dict | None = None  # faceml.evaluation.evaluate.checkpoint_info; None: not a run's
    # model
    memo: MemoryLRU = field(default_factory=lambda: MemoryLRU(96))

    @property
    def dataset(self) -> str:
        return self.interp.dataset

    @property
    def split(self) -> str:
        return self.interp.split

    @property
    def where(self) -> str:
        return f"{self.dataset} · {self.split} split · {self.interp.n_:,} faces"

    @property
    def source(self) -> str:
        """Which model made the numbers: "the run's best checkpoint (epoch 3 of 5, ...)"."""
        if self.checkpoint and self.checkpoint.get("text"):
            return f"the run's {self.checkpoint['text']}"
        return self.model or "the model"

    def images_available(self) -> bool:
        return ev.dataset_available(self.data)

    def cached(self, key, fn):
        """``fn()`` computed once per key for this view (bounded LRU, shared by sessions)."""
        hit = self.memo.get(key)
        if hit is None:
            hit = (fn(),)
            self.memo.put(key, hit)
        return hit[0]


@st.cache_resource(show_spinner=False)
def _views() -> MemoryLRU:
    return MemoryLRU(12)


def _stamp(run: Run, which: str) -> list | None:
    """The version of a run's checkpoint (None: none saved), for cache keys."""
    v = run.checkpoint_version(which)
    return list(v) if v is not None else None


def _computed_view(key: str, text: str, compute, kind: str) -> View:
    """A view from ``evaluate_model`` (run with a progress bar, outside any cached function)."""
    store = _views()
    hit = store.get(key)
    if hit is not None:
        return hit
    cb, bar = progress_callback(text)
    try:
        with st.spinner(text):
            frame = compute(cb)
    finally:
        bar.empty()
    if kind == "cross" and not frame.attrs.get("cross_dataset"):
        kind = "checkpoint"  # the run's own dataset: the same split as in training
    view = View(key, ev.interpret(frame), dict(frame.attrs.get("data", {})), kind,
                list(frame.attrs.get("notes", [])), str(frame.attrs.get("model", "")),
                frame.attrs.get("checkpoint"))
    store.put(key, view)
    return view


def run_datasets(run: Run) -> list[str]:
    """The datasets of a run trained on several at once (the page shows one at a time); ``[]``
    for a run of one dataset."""
    from faceml.data.prepare import PrepOptions

    try:
        opts = PrepOptions.from_dict(run.config.get("data", {}))
    except (FaceMLError, TypeError, ValueError):
        return []
    if not opts.multi:
        return []
    _reset_if_stale("ev_dataset", opts.datasets)
    return opts.datasets


def _dataset_view(run: Run, split: str, part: str, key: str) -> View:
    """A several-dataset run's stored predictions of one dataset: its faces, the heads it has
    labels for, and its own images (``PrepOptions.part``)."""
    from faceml.data.prepare import PrepOptions
    from faceml.evaluation.predictions import dataset_rows, has_truth
    from faceml.evaluation.stored import run_heads, stored_predictions

    frame = stored_predictions(run)
    sub = dataset_rows(frame[frame["split"] == split], part) if frame is not None else None
    if sub is None:
        raise ConfigError(f"run {run.id} stored no {split} predictions of {part}")
    heads = [h for h in run_heads(run, frame) if has_truth(sub, h)]
    interp = Interpretation.from_frame(sub, heads, dataset=part, split=split)
    data = PrepOptions.from_dict(run.config.get("data", {})).part(part).canonical()
    return View(key, interp, data, "stored", model=str(sub.attrs.get("model", "")),
                checkpoint=sub.attrs.get("checkpoint"))


def run_view(run: Run, split: str, part: str | None = None) -> View:
    """The run's stored predictions on ``split`` (of dataset ``part`` of a run trained on
    several); its last checkpoint while it trains (or when it stored none)."""
    state = run.status().get("state", "queued")
    stored = run.predictions_version()
    if state in ("running", "queued") or stored is None:
        which = run.saved_checkpoint("last") or "last"
        key = json.dumps(["checkpoint", run.where, _stamp(run, which), split])
        return _computed_view(key, f"Evaluating run {run.id}'s last checkpoint",
                              lambda cb: ev.evaluate_model(run, None, split, progress=cb),
                              "checkpoint")
    key = json.dumps(["stored", run.where, list(stored[1:]), split, part])
    store = _views()
    hit = store.get(key)
    if hit is None and part:
        hit = _dataset_view(run, split, part, key)
        store.put(key, hit)
    if hit is None:
        interp = Interpretation.from_run(run, split)
        hit = View(key, interp, dict(run.config.get("data", {})), "stored",
                   model=str(interp.frame.attrs.get("model", "")),
                   checkpoint=interp.frame.attrs.get("checkpoint"))
        store.put(key, hit)
    return hit


def cross_view(run: Run, data: dict, split: str) -> View:
    which = run.saved_checkpoint("best") or "best"
    key = json.dumps(["cross", run.where, _stamp(run, which), data, split], sort_keys=True,
                     default=str)
    from faceml.data.prepare import PrepOptions

    opts = PrepOptions.from_dict(data)
    return _computed_view(key, f"Evaluating run {run.id} on {opts.dataset}",
                          lambda cb: ev.evaluate_model(run, opts, split, progress=cb), "cross")


# --- picking ---------------------------------------------------------------------------------

def evaluable_runs(store: RunStore) -> list[dict]:
    """Runs with something to evaluate (stored predictions, or a checkpoint while training),
    newest first; VAEs and damaged runs left out."""
    rows = []
    for run in store.list():
        try:
            cfg = run.config
            st_ = run.status()
        except RunDamaged:
            continue
        if not kinds.for_arch(cfg.get("arch")).evaluable or not cfg.get("heads"):
            continue
        state = st_.get("state", "queued")
        if not run.has_predictions() and run.saved_checkpoint() is None:
            continue
        rows.append({"run": run, "id": run.id, "state": state,
                     "dataset": cfg.get("data", {}).get("dataset", ""),
                     "arch": cfg.get("arch", ""), "heads": ", ".join(cfg.get("heads", [])),
                     "created": st_.get("created") or 0})
    return sorted(rows, key=lambda r: r["created"], reverse=True)


def run_picker(rows: list[dict]) -> Run:
    """A run chosen in a selectbox; the URL's ``?run=`` picks it on arrival and follows it."""
    ids = [r["id"] for r in rows]
    by_id = {r["id"]: r for r in rows}
    wanted = url_run()
    if wanted and wanted not in by_id:
        st.warning(f"Run {wanted!r} has nothing to evaluate yet (no predictions and no "
                   "checkpoint); showing another run.")

    def label(i: str) -> str:
        r = by_id[i]
        return (f"{STATE_ICON.get(r['state'], '')} {i} · {r['dataset']} · {r['arch']} · "
                f"{r['heads']} · {r['state']}")

    run_id = pick.run_picker("Run", ids, "ev_run", label)
    return by_id[run_id]["run"]


def _reset_if_stale(key: str, options: list, default=None) -> None:
    ss = st.session_state
    if key in ss and ss[key] not in options:
        ss[key] = default if default is not None else options[0]


def run_splits(run: Run) -> list[str]:
    """The splits the page offers for ``run``: those it stored results for (a run trained
    without a test split has val only), else test and val (its checkpoint is evaluated)."""
    have = [s for s in ("test", "val") if has_split(run, s)]
    options = have or ["test", "val"]
    _reset_if_stale("ev_split", options, options[0])
    return options


def head_picker(view: View) -> HeadSpec:
    names = [h.name for h in view.interp.heads]
    _reset_if_stale("ev_head", names)
    name = st.selectbox("Head", names, key="ev_head",
                        help="The label whose predictions are shown below")
    return view.interp.head(name)


def head_metrics(view: View, head: HeadSpec, threshold: float | None) -> dict:
    """The head's metrics (at ``threshold`` for binary heads), computed once per view."""
    if head.kind == "regression":
        return view.interp.metrics(head)
    if threshold is None or abs(threshold - 0.5) < 1e-12:
        return view.interp.classification_metrics(head)
    return view.cached(("metrics", head.name, threshold),
                       lambda: view.interp.classification_metrics(head, threshold))


def threshold_slider(head: HeadSpec) -> float | None:
    """Binary heads: the decision threshold on P(positive class)."""
    if head.kind != "binary":
        return None
    pos = head.classes[1]
    return float(st.slider(f"Decision threshold: predict **{pos}** when P({pos}) ≥", 0.0, 1.0,
                           0.5, 0.01, key=f"ev_thr_{head.name}",
                           help="Moves the operating point on the ROC curve; the confusion "
                                "matrix, sensitivity, specificity and F1 follow"))


def banner(view: View, run: Run) -> None:
    """Which dataset and split every number below is computed on, and what to know."""
    pol = policy()
    if view.kind == "stored":
        src = f"stored predictions of {view.source}"
    else:
        src = f"{view.source}, evaluated now"
        if view.kind == "cross":
            src += " on another dataset (its labels mapped into the model's classes)"
    st.info(f"Every number below is computed on **{view.dataset}**, **{view.split}** split, "
            f"{view.interp.n_:,} faces — {src}.")
    for n in view.notes:
        if "still training" in n:
            st.warning(pol.redact(n))
        else:
            st.caption(f"Note: {pol.redact(n)}")
    if not view.images_available():
        if pol.hosted:  # never a server path: say only that this server does not have them
            where = f"{view.dataset}'s images are not available on this server"
        else:
            path = view.data.get("path") or "its default location"
            where = f"{view.dataset} is no longer at {path}"
        st.warning(f"The images are missing: {where}. The metrics come from the stored "
                   "predictions; the galleries list file names only.")


# --- faces -----------------------------------------------------------------------------------

@st.cache_resource(show_spinner=False)
def _png_store() -> MemoryLRU:
    return MemoryLRU(4096)


def _pixels(view: View, sources: list[str]) -> list[bytes | None]:
    """PNG bytes of each face at display size (encoded once per face and process)."""
    import io

    from PIL import Image

    size = max(int(view.data.get("size") or DISPLAY_SIZE), DISPLAY_SIZE)
    tag = json.dumps(view.data, sort_keys=True, default=str)
    store = _png_store()
    out: dict[str, bytes | None] = {}
    todo = []
    for s in sources:
        hit = store.get((tag, size, s))
        if hit is None:
            todo.append(s)
        else:
            out[s] = hit
    if todo:
        for s, img in zip(todo, ev.face_images(view.data, todo, size=size, color="rgb")):
            if img is None:
                out[s] = None  # not cached: the dataset may come back
                continue
            buf = io.BytesIO()
            Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img).save(buf, "PNG")
            out[s] = buf.getvalue()
            store.put((tag, size, s), out[s])
    return [out[s] for s in sources]


def _caption(row, head: HeadSpec) -> str:
    h = head.name
    t, p = row.get(f"{h}_true"), row.get(f"{h}_pred")
    if head.kind == "regression":
        return f"true {float(t):.0f} · pred {float(p):.1f}\n{row['source']}"
    conf = row.get("confidence")
    c = f" ({float(conf):.0%})" if conf is not None and not pd.isna(conf) else ""
    return f"true {t} → pred {p}{c}\n{row['source']}"


def gallery(view: View, rows: pd.DataFrame, head: HeadSpec, key: str, *,
            empty: str = "No faces here.") -> pd.DataFrame:
    """A paged grid of faces with true class, prediction, confidence and file name, and the
    same rows as a table. Returns the rows shown."""
    n = len(rows)
    if n == 0:
        st.caption(empty)
        return rows.iloc[:0]
    pages = (n + PER_PAGE - 1) // PER_PAGE
    page = 1
    if pages > 1:
        c1, c2 = st.columns([1, 4])
        _reset_if_stale(f"{key}_page", list(range(1, pages + 1)), 1)
        page = int(c1.number_input(f"Page (of {pages})", 1, pages, key=f"{key}_page"))
        c2.caption(f"{n:,} faces, {PER_PAGE} per page")
    chunk = rows.iloc[(page - 1) * PER_PAGE: page * PER_PAGE]
    imgs = _pixels(view, chunk["source"].astype(str).tolist())
    size, color = int(view.data.get("size") or 0), view.data.get("color", "rgb")
    if any(i is not None for i in imgs) and (size < DISPLAY_SIZE or color != "rgb"):
        st.caption(f"Faces shown at {max(size, DISPLAY_SIZE)} px in colour to be seen; the "
                   f"model saw them at {size}×{size} {color}.")
    if all(i is None for i in imgs):
        st.warning("The images are missing for these faces (the dataset is not on disk any "
                   "more, or the files moved); their file names are listed below.")
    else:
        # one element for the whole grid (a list of images): a click redraws one element, not
        # a grid of columns with an element per face
        caps = [_caption(row, head) for _, row in chunk.iterrows()]
        shown = [(img, cap) for img, cap in zip(imgs, caps) if img is not None]
        st.image([img for img, _ in shown], caption=[cap for _, cap in shown],
                 width=FACE_WIDTH, output_format="PNG")
        missing = [cap for img, cap in zip(imgs, caps) if img is None]
        if missing:
            st.caption("Images missing: " + "; ".join(c.replace("\n", " ") for c in missing))
    h = head.name
    show = [c for c in ("source", f"{h}_true", f"{h}_pred", "confidence", "loss")
            if c in chunk.columns]
    st.dataframe(chunk[show].rename(columns={"source": "file"}), hide_index=True,
                 key=f"{key}_table", width="stretch")
    return chunk


# --- confusion-matrix cells --------------------------------------------------------------------

def cell_from_event(event: Any, classes: list[str]) -> tuple[str, str] | None:
    """(true, predicted) of the clicked cell in a ``st.plotly_chart`` selection event."""
    try:
        points = event["selection"]["points"]
    except (KeyError, TypeError, AttributeError):
        return None
    for p in points or []:
        x, y = str(p.get("x")), str(p.get("y"))
        if x in classes and y in classes:
            return y, x
    return None


def cell_keys(head: HeadSpec) -> tuple[str, str]:
    """Session-state keys of the selected cell's true and predicted class (a click sets them;
    so do the two selectboxes under the matrix)."""
    return f"ev_cell_true_{head.name}", f"ev_cell_pred_{head.name}"


def _default_cell(cm: list[list[int]], classes: list[str]) -> tuple[str, str]:
    a = np.asarray(cm)
    off = a.copy()
    np.fill_diagonal(off, -1)
    i, j = np.unravel_index(int(np.argmax(off)), off.shape)
    if off[i, j] <= 0:
        i = j = int(np.argmax(np.diag(a)))
    return classes[i], classes[j]


@_fragment
def confusion_section(view: View, head: HeadSpec, m: dict, threshold: float | None) -> None:
    classes = list(head.classes)
    ss = st.session_state
    norm = st.radio("Show", ["counts", "row-normalised"], horizontal=True, key="ev_norm",
                    help="Row-normalised: each row as shares of its true class (recall on the "
                         "diagonal)")
    thr = f" at threshold {threshold:.2f}" if threshold is not None else ""
    st.caption(f"Confusion matrix of **{head.name}** on {view.where}{thr}. Rows: true class; "
               "columns: predicted class. Click a cell to see its faces.")
    fig = view.cached(("cm_fig", head.name, threshold, norm), lambda: figures.confusion_figure(
        m["confusion_matrix"], classes, normalize=norm != "counts", clickable=True))
    event = st.plotly_chart(fig, key=f"ev_cm_{head.name}", on_select="rerun",
                            selection_mode="points", width="stretch")
    kt, kp = cell_keys(head)
    clicked = cell_from_event(event, classes)
    if clicked is not None and ss.get(f"_ev_clicked_{head.name}") != clicked:
        ss[kt], ss[kp] = clicked  # a new click: it wins over the selectboxes
    ss[f"_ev_clicked_{head.name}"] = clicked
    if ss.get(kt) not in classes or ss.get(kp) not in classes:
        ss[kt], ss[kp] = _default_cell(m["confusion_matrix"], classes)
    c1, c2 = st.columns(2)
    t = c1.selectbox("True class", classes, key=kt)
    p = c2.selectbox("Predicted class", classes, key=kp)
    members = view.interp.cell_members(head, t, p, threshold=threshold)
    kind = "correct" if t == p else "mistakes"
    st.markdown(f"**{len(members):,} faces** with true **{t}** predicted **{p}** ({kind}), most "
                "confident first.")
    gallery(view, members, head, key=f"ev_cell_{head.name}")


# --- sections ----------------------------------------------------------------------------------

def _metric_row(items: list[tuple[str, Any, str]]) -> None:
    cols = st.columns(len(items))
    for col, (label, value, help_) in zip(cols, items):
        col.metric(label, "—" if value is None else (f"{value:.3f}" if isinstance(value, float)
                                                     else f"{value:,}"), help=help_ or None)


def classification_section(view: View, head: HeadSpec, m: dict, threshold: float | None) -> None:
    thr = f", threshold {threshold:.2f}" if threshold is not None else ""
    st.caption(f"**{head.name}** on {view.where}{thr}, from {view.source}.")
    items = [("Accuracy", m["accuracy"], ""),
             ("Balanced accuracy", m["balanced_accuracy"], "mean recall over classes"),
             ("F1 (macro)", m["f1_macro"], ""), ("F1 (weighted)", m["f1_weighted"], ""),
             ("ROC AUC", m["auc"], m.get("auc_reason") or "one-vs-rest macro for >2 classes"),
             ("Log loss", m["log_loss"], "mean −log p(true class)")]
    if "within_one_bin_accuracy" in m:
        items.append(("Within one bin", m["within_one_bin_accuracy"],
                      "prediction at most one age bin away"))
    _metric_row(items)
    st.dataframe(rep.per_class_table(m), hide_index=True, width="stretch",
                 key=f"ev_perclass_{head.name}")


def regression_section(view: View, head: HeadSpec, m: dict) -> None:
    st.caption(f"**{head.name}** (years) on {view.where}, from {view.source}.")
    _metric_row([("MAE (years)", m["mae"], "mean absolute error"),
                 ("RMSE (years)", m["rmse"], "root mean squared error"), ("Faces", m["n"], "")])
    by = pd.DataFrame(m.get("by_group") or [])
    c1, c2 = st.columns(2)
    if not by.empty:
        shown = by[by["n"] > 0]
        bar = view.cached(("maeby_fig", head.name), lambda: figures.bar_figure(
            shown["group"], shown["mae"], axis="MAE (years)",
            title=f"MAE per true {head.name} group"))
        c1.plotly_chart(bar, key=f"ev_maeby_{head.name}", width="stretch")
    rows = view.interp.frame_
    fig = view.cached(("scatter_fig", head.name), lambda: figures.regression_figure(
        rows[f"{head.name}_true"], rows[f"{head.name}_pred"], rows["source"], head=head.name,
        title="Predicted vs true"))
    event = c2.plotly_chart(fig, key=f"ev_scatter_{head.name}", on_select="rerun",
                            selection_mode=("points", "box", "lasso"), width="stretch")
    picked = []
    try:
        picked = [p.get("customdata") for p in event["selection"]["points"]
                  if p.get("customdata") is not None]
    except (KeyError, TypeError, AttributeError):
        picked = []
    if picked:
        rows = view.interp.top_losses(head, only_wrong=False)
        rows = rows[rows["source"].astype(str).isin(set(map(str, picked)))]
        st.markdown(f"**{len(rows):,} selected faces**, largest error first.")
        gallery(view, rows, head, key=f"ev_scatter_faces_{head.name}")
    else:
        st.caption("Select points in the scatter (click, box or lasso) to see their faces.")
    if not by.empty:
        st.dataframe(by.rename(columns={"group": f"true {head.name}", "mae": "MAE (years)"}),
                     hide_index=True, key=f"ev_maeby_table_{head.name}")


def roc_section(view: View, head: HeadSpec, m: dict, threshold: float | None) -> None:
    curves = view.cached(("roc", head.name), lambda: roc_curves(
        view.interp.frame_, head, drop_intermediate=True))
    if not curves:
        st.info(m.get("auc_reason") or "No ROC curve: a class needs faces of both kinds.")
        return
    point = None
    if threshold is not None:
        tm = view.cached(("thr", head.name, threshold),
                         lambda: view.interp.threshold_metrics(head, threshold))
        point = (tm["fpr"], tm["tpr"])
        st.caption(f"ROC of **{head.name}** (positive class {head.classes[1]}) on {view.where}; "
                   f"the circle is threshold {threshold:.2f}.")
        _metric_row([("Sensitivity", tm["sensitivity"], f"recall of {head.classes[1]}"),
                     ("Specificity", tm["specificity"], f"recall of {head.classes[0]}"),
                     ("Precision", tm["precision"], ""), ("F1", tm["f1"], ""),
                     ("Accuracy", tm["accuracy"], "")])
        cm = pd.DataFrame(tm["confusion_matrix"], index=[f"true {c}" for c in head.classes],
                          columns=[f"pred {c}" for c in head.classes])
        st.dataframe(cm, key=f"ev_thr_cm_{head.name}")
    else:
        st.caption(f"One-vs-rest ROC curves of **{head.name}** on {view.where}.")
    fig = view.cached(("roc_fig", head.name, threshold),
                      lambda: figures.roc_figure(curves, point=point))
    st.plotly_chart(fig, key=f"ev_roc_{head.name}", width="stretch")


def mistakes_section(view: View, head: HeadSpec, threshold: float | None) -> None:
    h = head.name
    if head.kind == "regression":
        st.caption(f"Largest {h} errors on {view.where}, worst first.")
        rows = view.cached(("losses", h), lambda: view.interp.top_losses(head))
        gallery(view, rows, head, key=f"ev_mist_{h}")
        return
    anyc = ["(any)", *head.classes]
    c1, c2 = st.columns(2)
    for k in (f"ev_mist_true_{h}", f"ev_mist_pred_{h}"):
        _reset_if_stale(k, anyc, "(any)")
    t = c1.selectbox("True class", anyc, key=f"ev_mist_true_{h}")
    p = c2.selectbox("Predicted class", anyc, key=f"ev_mist_pred_{h}")
    rows = view.cached(("losses", h, threshold, t, p), lambda: view.interp.top_losses(
        head, None if t == "(any)" else t, None if p == "(any)" else p, threshold=threshold))
    st.caption(f"{len(rows):,} misclassified faces of **{h}** on {view.where}, most confident "
               "mistakes first (loss = −log p(true class)).")
    gallery(view, rows, head, key=f"ev_mist_{h}", empty="No mistakes with these filters.")


def _group_label(row, by: list[str]) -> str:
    return " · ".join(str(row[b]) for b in by)


def groups_section(view: View, head: HeadSpec, threshold: float | None) -> None:
    h = head.name
    options = ev.group_columns(view.interp.frame_, head)
    if not options:
        st.info("These predictions hold no other labels to break the results down by.")
        return
    default = options[:3]  # race, gender and age first where present
    key = f"ev_by_{h}"
    ss = st.session_state
    if key not in ss or any(c not in options for c in ss[key]):
        ss[key] = [c for c in ss.get(key, default) if c in options]
    by = st.multiselect("Break down by", options, key=key,
                        help="Other labels of the same faces (ages in decades)")
    if not by:
        st.caption("Choose at least one label.")
        return
    table = view.cached(("groups", h, tuple(by), threshold), lambda: ev.breakdown(
        view.interp, head, by, threshold=threshold))
    metric = "mae" if head.kind == "regression" else "accuracy"
    st.caption(f"**{h}** per group of {' × '.join(by)} on {view.where}; 95% intervals "
               f"({'bootstrap' if metric == 'mae' else 'Wilson'}). Small groups have wide "
               "intervals. Select a row to see its faces.")
    labels = [_group_label(r, by) for _, r in table.iterrows()]
    if 1 < len(table) <= 40:
        fig = view.cached(("groups_fig", h, tuple(by), threshold), lambda: figures.bar_figure(
            labels, table[metric], table[f"{metric}_ci_low"], table[f"{metric}_ci_high"],
            axis="MAE (years)" if metric == "mae" else "accuracy"))
        st.plotly_chart(fig, key=f"ev_groups_bar_{h}", width="stretch")
    shown = table.copy()
    for b in by:
        shown[b] = shown[b].astype(str)
    event = st.dataframe(shown, hide_index=True, on_select="rerun", selection_mode="single-row",
                         key=f"ev_groups_{h}_{'_'.join(by)}", width="stretch")
    rows = event.selection.rows if event and event.selection else []
    if rows:
        g = table.iloc[rows[0]]
        members = ev.group_members(view.interp, head, by, {b: g[b] for b in by},
                                   threshold=threshold)
        st.markdown(f"**{len(members):,} faces** in group {_group_label(g, by)}, worst first.")
        gallery(view, members, head, key=f"ev_group_faces_{h}")


def _export_config(run: Run) -> dict:
    """The run's configuration for a report; hosted, without the server's data path."""
    cfg = run.config
    data = cfg.get("data") or {}
    if not policy().hosted or not data.get("path"):
        return cfg
    return {**cfg, "data": {**data, "path": "(on the server)"}}


def exports(view: View, run: Run, head: HeadSpec, threshold: float | None) -> dict:
    """What the Export tab offers: ``{"md" | "html" | "csv": (file name, mime, make)}``, with
    ``make()`` the file's text (built on download). The decision threshold of ``head`` goes
    into the report and the CSV; hosted, no server path is in any of them."""
    interp = view.interp
    pol = policy()
    base = f"faceml-{run.id}-{view.dataset}-{view.split}"
    thresholds = {head.name: threshold} if threshold is not None else None
    kw = dict(config=_export_config(run), notes=list(view.notes), title=f"run {run.id}",
              thresholds=thresholds, source=view.source, run=run)
    return {
        "md": (f"{base}.md", "text/markdown",
               lambda: pol.redact(rep.report_markdown(interp, **kw))),
        "html": (f"{base}.html", "text/html", lambda: pol.redact(rep.report_html(interp, **kw))),
        "csv": (f"{base}-predictions.csv", "text/csv", lambda: pol.redact(rep.predictions_csv(
            interp.frame_, interp.heads, thresholds=thresholds))),
    }


def export_section(view: View, run: Run, head: HeadSpec, threshold: float | None) -> None:
    thr = (f" The predictions CSV uses the threshold {rep.threshold_text(threshold)} for "
           f"{head.name} (its column {rep.pred_column(head, threshold)})."
           if threshold is not None else "")
    st.caption(f"Everything is computed on {view.where}, from {view.source}. The report holds "
               "the configuration, the model summary (layers, parameter counts), the training "
               "curves, metrics per head, confusion matrices, the per-group tables and a "
               f"section on ethics and limits.{thr}")
    files = exports(view, run, head, threshold)
    c = st.columns(3)
    for col, (kind, label) in zip(c, (("md", "Report (Markdown)"),
                                      ("html", "Report (HTML, with figures)"),
                                      ("csv", "Predictions (CSV)"))):
        name, mime, make = files[kind]
        col.download_button(label, make, file_name=name, mime=mime, key=f"ev_dl_{kind}",
                            on_click="ignore")


# --- cross-dataset -------------------------------------------------------------------------------

def cross_panel(run: Run) -> View | None:
    """Evaluate the run's model on another dataset (labels mapped into its classes). Returns
    that evaluation's view while one is chosen."""
    ss = st.session_state
    own = run.config.get("data", {})
    chosen = ss.get("ev_cross")
    if chosen and chosen.get("run") != run.id:
        chosen = ss["ev_cross"] = None
    with st.expander("Cross-dataset evaluation: this model on another dataset",
                     expanded=bool(chosen)):
        st.caption("The model keeps its own preprocessing (size and colour); the other "
                   "dataset's labels are mapped into the model's classes (e.g. FairFace's 7 "
                   "race groups into UTKFace's 5); heads the dataset lacks are skipped.")
        pol = policy()
        names = pol.dataset_names()  # hosted: the operator's allow-list, where it is on disk
        if not names:
            st.caption("This server offers no dataset to evaluate on.")
            names = [None]
        _reset_if_stale("ev_x_dataset", names)
        c1, c2, c3 = st.columns([1, 2, 1])
        name = c1.selectbox("Dataset", names, key="ev_x_dataset")
        adapter = datasets.get(name) if name else None
        opts: dict = {"dataset": name}
        if adapter is None:
            pass
        elif adapter.needs_path and pol.typed_paths:
            default = adapter.resolve_path(None)
            opts["path"] = c2.text_input("Path", value=str(default) if default else "",
                                         key=f"ev_x_path_{name}") or None
        elif adapter.needs_path:
            c2.caption("Read from where the server's operator put it.")
        else:
            most = pol.caps.faces if pol.hosted else 20000
            if st.session_state.get("ev_x_n", 0) > most:
                st.session_state["ev_x_n"] = most
            a, b = c2.columns(2)
            opts["dataset_options"] = {
                "n": int(a.number_input("Faces", min(100, most), most, min(1000, most),
                                        step=100, key="ev_x_n")),
                "seed": int(b.number_input("Seed", 0, 10_000, 1, key="ev_x_seed"))}
        split = c3.selectbox("Split", list(ev.EVAL_SPLITS), index=3, key="ev_x_split")
        b1, b2 = st.columns([1, 4])
        if b1.button("Evaluate", key="ev_x_go", type="primary", disabled=adapter is None):
            from faceml.data.prepare import PrepOptions

            data = PrepOptions(**{**opts}).canonical()
            data.update(size=own.get("size", 64), color=own.get("color", "rgb"))
            chosen = ss["ev_cross"] = {"run": run.id, "data": data, "split": split}
        if chosen and b2.button("Back to the run's own predictions", key="ev_x_back"):
            chosen = ss["ev_cross"] = None
    if not chosen:
        return None
    try:
        return cross_view(run, chosen["data"], chosen["split"])
    except FaceMLError as e:
        st.error(error_text(e))  # hosted: no server path
        ss["ev_cross"] = None
        return None


# --- the head's panel --------------------------------------------------------------------------

@_fragment
def analysis(view: View, run: Run) -> None:
    """Head picker, decision threshold and the head's tabs: a fragment, so a new head or
    threshold reruns this panel, not the page's run picker and loading."""
    c1, c2 = st.columns([1, 2])
    with c1:
        head = head_picker(view)
    with c2:
        threshold = threshold_slider(head)
    with user_errors():
        if head.kind == "regression":
            m = head_metrics(view, head, None)
            tabs = st.tabs(["Metrics", "Largest errors", "Groups", "Export"])
            with tabs[0]:
                regression_section(view, head, m)
            with tabs[1]:
                mistakes_section(view, head, None)
            with tabs[2]:
                groups_section(view, head, None)
            with tabs[3]:
                export_section(view, run, head, None)
            return
        m = head_metrics(view, head, threshold)
        tabs = st.tabs(["Metrics", "Confusion matrix", "ROC & threshold", "Mistakes", "Groups",
                        "Export"])
        with tabs[0]:
            classification_section(view, head, m, threshold)
        with tabs[1]:
            confusion_section(view, head, m, threshold)  # a fragment of its own: cell clicks
        with tabs[2]:
            roc_section(view, head, m, threshold)
        with tabs[3]:
            mistakes_section(view, head, threshold)
        with tabs[4]:
            groups_section(view, head, threshold)
        with tabs[5]:
            export_section(view, run, head, threshold)
