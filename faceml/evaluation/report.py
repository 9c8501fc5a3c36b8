"""Exports of an evaluation: a Markdown or HTML report and the predictions as CSV. The report's
figures come from :mod:`faceml.evaluation.figures` (built from the computed numbers only).

    md = report_markdown(interp, config=run.config)          # str
    html = report_html(interp, config=run.config)            # str, figures as Plotly snippets
    md = report_markdown(interp, config=run.config, run=run) # + training curves, model summary
    write_report("report.html", interp, config=run.config)   # by suffix: .md / .html
    predictions_csv(interp.frame_, interp.heads)             # file, HEAD_true, HEAD_pred, ...
    predictions_csv(frame, heads, thresholds={"gender": 0.3})  # ... gender_pred_threshold_0.30

A report names the dataset and split of every number and the checkpoint they come from (best
or last), and ends with "Ethics and limits". Given the run, it also holds the run's training
curves (loss and each metric per epoch, training vs validation split, from its history) and the
model summary (layer table with parameter counts, total and trainable, counted without
allocating weights: :mod:`faceml.modeling.sizing`). The HTML is this module's own template (no
Markdown converter needed) and holds plotly.js itself, once: it opens offline, and loads
nothing from another host.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from faceml.data.heads import HeadSpec
from faceml.errors import FaceMLError
from faceml.evaluation.classification import roc_curves
from faceml.evaluation.figures import (
    confusion_figure,
    curve_figure,
    figure_html,
    plotly_js,
    regression_figure,
    roc_figure,
)
from faceml.evaluation.interpretation import Interpretation
from faceml.evaluation.predictions import (
    MetricsInputError,
    group_columns,
    heads_from_frame,
    predicted_classes,
)
from faceml.markdown import ETHICS_AND_LIMITS, cell_text, md_table
from faceml.modeling.sizing import model_size
from faceml.runs import Run, RunDamaged

__all__ = [
    "ETHICS_AND_LIMITS",
    "predictions_csv",
    "predictions_table",
    "report_blocks",
    "report_html",
    "report_markdown",
    "training_curves",
    "write_report",
]

# --- predictions as CSV --------------------------------------------------------------------------

def threshold_text(threshold: float) -> str:
    """A threshold as the page shows it (two decimals unless it has more)."""
    t = float(threshold)
    return f"{t:.2f}" if round(t, 2) == t else f"{t:g}"


def pred_column(head: HeadSpec, threshold: float | None = None) -> str:
    """The predictions CSV's column of ``head``'s predicted class: ``HEAD_pred``, or
    ``HEAD_pred_threshold_0.30`` when a decision threshold was chosen (binary heads)."""
    if threshold is None:
        return f"{head.name}_pred"
    return f"{head.name}_pred_threshold_{threshold_text(threshold)}"


def predictions_table(frame: pd.DataFrame, heads: Sequence[HeadSpec] | None = None, *,
                      thresholds: dict[str, float | None] | None = None) -> pd.DataFrame:
    """``file``, then per head ``HEAD_true``, ``HEAD_pred`` and, for categorical heads,
    ``HEAD_prob_CLASS`` per class (regression heads: years).

    ``thresholds`` (binary heads): the predicted class is ``classes[1]`` when
    ``P(classes[1]) >= threshold``, and its column is named after the threshold
    (:func:`pred_column`: ``gender_pred_threshold_0.30``); without one it is ``HEAD_pred``
    (binary: ``P >= 0.5``)."""
    if heads is None:
        heads = heads_from_frame(frame)
    thresholds = {k: v for k, v in (thresholds or {}).items() if v is not None}
    unknown = sorted(set(thresholds) - {h.name for h in heads})
    if unknown:
        raise MetricsInputError(f"a threshold for {unknown[0]!r}, which is not a head of these "
                                f"predictions ({', '.join(h.name for h in heads)})")
    cols = {"file": frame["source"].astype(str).to_numpy()}
    for h in heads:
        cols[f"{h.name}_true"] = frame[f"{h.name}_true"].to_numpy()
        thr = thresholds.get(h.name)
        if h.kind == "regression" and thr is None:
            cols[f"{h.name}_pred"] = frame[f"{h.name}_pred"].to_numpy()
        else:
            cols[pred_column(h, thr)] = predicted_classes(frame, h, thr)
        if h.kind != "regression":
            for c in h.classes:
                cols[f"{h.name}_prob_{c}"] = frame[f"{h.name}_prob_{c}"].to_numpy()
    return pd.DataFrame(cols)


def predictions_csv(frame: pd.DataFrame, heads: Sequence[HeadSpec] | None = None, *,
                    thresholds: dict[str, float | None] | None = None) -> str:
    """:func:`predictions_table` as CSV text."""
    return predictions_table(frame, heads, thresholds=thresholds).to_csv(index=False)


# --- the report ----------------------------------------------------------------------------------

def _metrics_row(m: dict) -> dict:
    keys = ("n", "accuracy", "balanced_accuracy", "f1_macro", "f1_weighted", "auc", "log_loss",
            "within_one_bin_accuracy")
    return {k: m.get(k) for k in keys if k in m}


def per_class_table(m: dict) -> pd.DataFrame:
    """One row per class plus macro and weighted averages (precision, recall = sensitivity,
    specificity, F1, support)."""
    rows = []
    for c, v in m["per_class"].items():
        rows.append({"class": c, "precision": v["precision"], "recall (sensitivity)": v["recall"],
                     "specificity": v["specificity"], "f1": v["f1"], "support": v["support"],
                     "auc (one-vs-rest)": m.get("auc_per_class", {}).get(c)})
    for avg in ("macro", "weighted"):
        v = m[avg]
        rows.append({"class": f"({avg} avg)", "precision": v["precision"],
                     "recall (sensitivity)": v["recall"], "specificity": v["specificity"],
                     "f1": v["f1"], "support": int(sum(x["support"] for x in
                                                       m["per_class"].values())),
                     "auc (one-vs-rest)": m.get("auc") if avg == "macro" else None})
    return pd.DataFrame(rows)


def confusion_table(m: dict) -> pd.DataFrame:
    classes = list(m["classes"])
    df = pd.DataFrame(m["confusion_matrix"], index=classes, columns=classes)
    df.index.name = "true \\ predicted"
    return df.reset_index()


def group_table(interp: Interpretation, head: HeadSpec, by: list[str] | None = None,
                n_resamples: int = 1000) -> pd.DataFrame | None:
    by = by if by is not None else group_columns(interp.frame_, head)
    if not by:
        return None
    try:
        t = interp.group_breakdown(head, by, n_resamples=n_resamples)
    except MetricsInputError:
        return None
    for c in by:
        t[c] = t[c].astype(object).where(t[c].notna(), "(missing)").astype(str)
    return t


def _config_rows(config: dict) -> pd.DataFrame:
    data = config.get("data", {})
    rows = [("dataset", data.get("dataset")), ("path", data.get("path") or "(default)"),
            ("dataset options", json.dumps(data.get("dataset_options", {}))),
            ("image", f"{data.get('size')}×{data.get('size')} {data.get('color')}"),
            ("sample fraction", data.get("fraction")), ("split (train/val/test)",
                                                         data.get("split")),
            ("split seed", data.get("seed")), ("age as", data.get("age")),
            ("architecture", config.get("arch")),
            ("architecture parameters", json.dumps(config.get("arch_params", {}))),
            ("heads", ", ".join(config.get("heads", []))),
            ("loss weights", json.dumps(config.get("head_weights", {}))),
            ("class weights", config.get("class_weights")), ("optimizer", config.get("optimizer")),
            ("learning rate", config.get("lr")), ("schedule", config.get("schedule")),
            ("batch size", config.get("batch_size")), ("epochs", config.get("epochs")),
            ("early stopping", config.get("early_stopping")),
            ("augmentation", ", ".join(config.get("augmentation", [])) or "none"),
            ("seed", config.get("seed"))]
    return pd.DataFrame([(k, cell_text(v) if not isinstance(v, list | tuple) else str(list(v)))
                         for k, v in rows], columns=["setting", "value"])


# history columns that are not a metric of a split
_NOT_CURVES = ("epoch", "seconds", "time", "lr")


def training_curves(hist: pd.DataFrame) -> list[dict]:
    """A history's curves, one per metric: ``{metric, epochs, train, val}`` with ``train`` the
    training split's values per epoch (``loss``, ``accuracy``, ``gender_accuracy``…) and ``val``
    the validation split's (``val_…``); either is None when the history lacks it. Loss first."""
    if hist is None or hist.empty or "epoch" not in hist:
        return []
    cols = [c for c in hist.columns if c not in _NOT_CURVES]
    names = []
    for c in cols:
        name = c[4:] if c.startswith("val_") else c
        if name not in names:
            names.append(name)
    names.sort(key=lambda n: (n != "loss", n))
    out = []
    for n in names:
        train = pd.to_numeric(hist[n], errors="coerce").tolist() if n in hist else None
        val = pd.to_numeric(hist[f"val_{n}"], errors="coerce").tolist() \
            if f"val_{n}" in hist else None
        out.append({"metric": n, "epochs": hist["epoch"].astype(int).tolist(),
                    "train": train, "val": val})
    return out


def _history_table(curves: list[dict]) -> pd.DataFrame:
    cols = {"epoch": curves[0]["epochs"]}
    for c in curves:
        for split, values in (("train", c["train"]), ("val", c["val"])):
            if values is not None:
                cols[f"{c['metric']} ({split})"] = values
    return pd.DataFrame(cols)


def training_blocks(run: Run, figures: bool = False) -> list[tuple]:
    """The run's model summary (layer table, total and trainable parameters) and its training
    curves, as report blocks."""
    b: list[tuple] = []
    try:
        cfg = run.train_config()
        hist = run.history()
        target = run.config.get("epochs")
    except RunDamaged as e:
        return [("h", 2, "Model and training"), ("p", f"Not available: {e}.")]
    data = cfg.data
    b.append(("h", 2, "Model"))
    try:
        size = model_size(cfg)
    except FaceMLError as e:
        b.append(("p", f"The model summary could not be built: {e}."))
    else:
        b.append(("p", f"Architecture **{cfg.arch}** for {data.size}×{data.size} {data.color} "
                       f"input: **{size.total:,}** parameters in total, **{size.trainable:,}** "
                       f"trainable, {size.total - size.trainable:,} non-trainable (counted from "
                       "the configuration, without allocating weights)."))
        table = size.table.rename(columns={"output_shape": "output shape",
                                           "trainable": "trainable params"})
        b.append(("table", table))
    b.append(("h", 2, "Training curves"))
    curves = training_curves(hist)
    if not curves:
        b.append(("p", "No epoch finished yet: the run has no history."))
        return b
    b.append(("p", f"Run {run.id} on dataset **{data.dataset}**, {len(hist)} epoch(s) recorded "
                   f"of {target}: each metric per epoch on the **train** split (as Keras "
                   "averages it over the epoch's batches) and on the **val** split (at the "
                   "epoch's end)."))
    b.append(("table", _history_table(curves)))
    if figures:
        for c in curves:
            b.append(("figure", curve_figure(c["epochs"], c["train"], c["val"],
                                             metric=c["metric"],
                                             title=f"{c['metric']} per epoch ({data.dataset})")))
    return b


def model_source(interp: Interpretation) -> str | None:
    """Which model made these predictions, from the frame's ``attrs`` (see
    :mod:`faceml.evaluation.evaluate`): "run abc's best checkpoint (epoch 3 of 5, lowest
    validation loss)", a model file's name, or None when the frame does not say."""
    attrs = interp.frame.attrs
    ckpt, run, model = attrs.get("checkpoint"), attrs.get("run"), attrs.get("model")
    if isinstance(ckpt, dict) and ckpt.get("text"):
        return f"run {run}'s {ckpt['text']}" if run else f"the {ckpt['text']}"
    if model:
        return f"the model {Path(str(model)).name}"
    return None


def report_blocks(interp: Interpretation, *, config: dict | None = None,
                  notes: Sequence[str] = (), title: str | None = None,
                  thresholds: dict[str, float] | None = None, figures: bool = False,
                  n_resamples: int = 1000, source: str | None = None,
                  run: Run | None = None) -> list[tuple]:
    """The report as blocks: ``("h", level, text)``, ``("p", text)``, ``("list", [items])``,
    ``("table", DataFrame)``, ``("code", text)``, ``("figure", plotly Figure)``.

    ``source``: which model (checkpoint) made the predictions; default :func:`model_source`.
    ``run``: the run that trained the model: adds its model summary and training curves
    (:func:`training_blocks`)."""
    thresholds = thresholds or {}
    source = source or model_source(interp)
    where = f"dataset **{interp.dataset}**, split **{interp.split}**, {interp.n_:,} faces"
    b: list[tuple] = [("h", 1, f"Evaluation report — {title}" if title else "Evaluation report"),
                      ("p", f"Every number in this report is computed on {where}"
                            + ("; the training curves alone show the run's train and val "
                               "splits, epoch by epoch." if run is not None else ".")),
                      ("p", "Generated by FaceML Studio on "
                            f"{datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}.")]
    if notes:
        b.append(("h", 3, "Notes"))
        b.append(("list", list(notes)))
    if config:
        b.append(("h", 2, "Configuration"))
        b.append(("table", _config_rows(config)))
    if run is not None:
        b.extend(training_blocks(run, figures))
    b.append(("h", 2, "Metrics"))
    if source:
        b.append(("p", f"Every metric below comes from the predictions of {source}."))
    for h in interp.heads:
        m = interp.metrics(h)
        b.append(("h", 3, f"{h.name} ({h.kind}) — {interp.dataset}, {interp.split}"))
        if h.kind == "regression":
            b.append(("table", pd.DataFrame([{"n": m["n"], "MAE (years)": m["mae"],
                                              "RMSE (years)": m["rmse"]}])))
            if m.get("by_group"):
                b.append(("p", f"MAE per true {h.name} group:"))
                b.append(("table", pd.DataFrame(m["by_group"]).rename(
                    columns={"group": f"{h.name} group", "mae": "MAE (years)"})))
            if figures:
                rows = interp.frame_
                b.append(("figure", regression_figure(
                    rows[f"{h.name}_true"], rows[f"{h.name}_pred"], rows["source"],
                    head=h.name, title=f"{h.name}: predicted vs true")))
            continue
        thr = thresholds.get(h.name)
        if thr is not None and h.kind == "binary" and abs(thr - 0.5) > 1e-12:
            m = interp.classification_metrics(h, thr)
            b.append(("p", f"Decision threshold: P({h.classes[1]}) ≥ {thr:.2f}."))
        b.append(("table", pd.DataFrame([_metrics_row(m)])))
        if m.get("auc") is None and m.get("auc_reason"):
            b.append(("p", f"ROC AUC: {m['auc_reason']}."))
        b.append(("p", "Per class:"))
        b.append(("table", per_class_table(m)))
        b.append(("p", "Confusion matrix (rows: true class, columns: predicted class):"))
        b.append(("table", confusion_table(m)))
        if figures:
            b.append(("figure", confusion_figure(m["confusion_matrix"], m["classes"],
                                                 title=f"{h.name}: confusion matrix")))
            curves = roc_curves(interp.frame_, h, drop_intermediate=True)  # the same curve,
            if curves:  # without its collinear points
                b.append(("figure", roc_figure(curves, title=f"{h.name}: ROC")))
    b.extend(_dataset_blocks(interp))
    b.append(("h", 2, "Per-group breakdown"))
    b.append(("p", f"Each head's results per group of the other labels ({interp.dataset}, "
                   f"{interp.split}), with 95% confidence intervals (Wilson for accuracy, "
                   "seeded bootstrap for MAE). Small groups have wide intervals."))
    any_group = False
    for h in interp.heads:
        t = group_table(interp, h, n_resamples=n_resamples)
        if t is None or t.empty:
            continue
        any_group = True
        b.append(("h", 3, f"{h.name} by {' × '.join(t.attrs.get('by', []))}"))
        b.append(("table", t))
    if not any_group:
        b.append(("p", "The predictions hold no other labels to group by."))
    b.append(("h", 2, "Ethics and limits"))
    b.append(("p", f"This report describes a model evaluated on {interp.dataset}."))
    for head, text in ETHICS_AND_LIMITS:
        b.append(("h", 3, head))
        b.append(("p", text))
    return b


def _dataset_blocks(interp: Interpretation) -> list[tuple]:
    """Predictions of a model trained on several datasets: each dataset's own numbers, since
    the pooled ones above mix them (:meth:`Interpretation.by_dataset`)."""
    parts = interp.by_dataset()
    if not parts:
        return []
    rows = []
    for d, sub in parts.items():
        for h in sub.heads:
            m = sub.metrics(h)
            rows.append({"dataset": d, "head": h.name,
                         **({"n": m["n"], "MAE (years)": m["mae"], "RMSE (years)": m["rmse"]}
                            if h.kind == "regression" else _metrics_row(m))})
    return [("h", 2, "Each dataset on its own"),
            ("p", f"The metrics above pool the faces of {', '.join(parts)} ({interp.split} "
                  "split). Each dataset's own faces, with the heads its labels allow (a "
                  "dataset labelled with age bins is scored against the bins' midpoints):"),
            ("table", pd.DataFrame(rows))]


def _render_md(blocks: list[tuple]) -> str:
    out = []
    for blk in blocks:
        kind = blk[0]
        if kind == "h":
            out.append("#" * blk[1] + " " + blk[2])
        elif kind == "p":
            out.append(blk[1])
        elif kind == "list":
            out.append("\n".join(f"- {x}" for x in blk[1]))
        elif kind == "table":
            out.append(md_table(blk[1]))
        elif kind == "code":
            out.append("```\n" + blk[1] + "\n```")
        elif kind == "figure":
            continue  # figures are in the HTML report
    return "\n\n".join(out) + "\n"


def _inline(text: str) -> str:
    """Escape, then turn **bold** into <strong>."""
    parts = html.escape(text).split("**")
    return "".join(f"<strong>{p}</strong>" if i % 2 else p for i, p in enumerate(parts))


_CSS = """body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;
margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
table{border-collapse:collapse;margin:.6em 0 1.2em;font-size:.9em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#f3f4f6}td:first-child,th:first-child{text-align:left}
h1{font-size:1.6em}h2{margin-top:1.6em;border-bottom:1px solid #ddd}
.note{color:#555;font-size:.9em}"""


def _render_html(blocks: list[tuple], title: str) -> str:
    out = ["<!DOCTYPE html>", "<html lang='en'><head><meta charset='utf-8'>",
           f"<title>{html.escape(title)}</title><style>{_CSS}</style>"]
    n_figs = sum(1 for blk in blocks if blk[0] == "figure")
    if n_figs:  # embedded once, before every figure: the report opens offline
        out.append(f"<script>{plotly_js()}</script>")
    out.append("</head><body>")
    for blk in blocks:
        kind = blk[0]
        if kind == "h":
            out.append(f"<h{blk[1]}>{_inline(blk[2])}</h{blk[1]}>")
        elif kind == "p":
            out.append(f"<p>{_inline(blk[1])}</p>")
        elif kind == "list":
            out.append("<ul>" + "".join(f"<li>{_inline(x)}</li>" for x in blk[1]) + "</ul>")
        elif kind == "table":
            df = blk[1]
            head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
            rows = "".join("<tr>" + "".join(f"<td>{html.escape(cell_text(v))}</td>" for v in r)
                           + "</tr>" for r in df.itertuples(index=False))
            out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif kind == "code":
            out.append(f"<pre>{html.escape(blk[1])}</pre>")
        elif kind == "figure":
            out.append(figure_html(blk[1]))
    if n_figs:
        out.append("<p class='note'>The figures are drawn by plotly.js, embedded in this file: "
                   "the report needs no network.</p>")
    out.append("</body></html>")
    return "\n".join(out)


def report_markdown(interp: Interpretation, **kw) -> str:
    """The report as Markdown (tables, no figures). Keywords as :func:`report_blocks`."""
    kw.pop("figures", None)
    return _render_md(report_blocks(interp, figures=False, **kw))


def report_html(interp: Interpretation, *, figures: bool = True, **kw) -> str:
    """The report as one HTML page (own template; Plotly figures when ``figures``, with
    plotly.js embedded once, so nothing is loaded from another host)."""
    blocks = report_blocks(interp, figures=figures, **kw)
    return _render_html(blocks, blocks[0][2])


def write_report(path: str | Path, interp: Interpretation, **kw) -> Path:
    """Write the report as Markdown (``.md``) or HTML (``.html``/``.htm``)."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix == ".md":
        text = report_markdown(interp, **kw)
    elif suffix in (".html", ".htm"):
        text = report_html(interp, **kw)
    else:
        raise FaceMLError(f"{p.name}: a report is .md or .html")
    try:
        p.write_text(text, encoding="utf-8")
    except OSError as e:
        raise FaceMLError(f"cannot write the report to {p}: {e.strerror or e}") from None
    return p
