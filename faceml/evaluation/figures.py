"""Every Plotly figure of an evaluation, shared by the Evaluate page and the HTML report.

Figures take numbers only (counts, curves, metric values, true and predicted values) and
compute no metric. Plotly itself loads on the first figure, not on import.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "bar_figure",
    "confusion_figure",
    "curve_figure",
    "figure_html",
    "grid_figure",
    "plotly_js",
    "regression_figure",
    "roc_figure",
]


def confusion_figure(cm, classes: Sequence[str], *, normalize: bool = False,
                     title: str | None = None, clickable: bool = False, height: int | None = None):
    """A confusion-matrix heatmap (rows = true, columns = predicted). ``normalize`` shows each
    row as shares of its true class (the counts stay in the hover). ``clickable`` lays one
    invisible marker on every cell so a click selects it (Plotly heatmaps have no point
    selection): the selected point's ``x`` is the predicted class, ``y`` the true class."""
    import plotly.graph_objects as go

    counts = np.asarray(cm, dtype=np.int64)
    classes = [str(c) for c in classes]
    k = len(classes)
    if normalize:
        rows = counts.sum(axis=1, keepdims=True)
        z = np.divide(counts, rows, out=np.zeros(counts.shape, float), where=rows > 0)
        text = [[f"{z[i, j]:.0%}" for j in range(k)] for i in range(k)]
    else:
        z = counts
        text = [[f"{counts[i, j]:,}" for j in range(k)] for i in range(k)]
    fig = go.Figure(go.Heatmap(
        z=z, x=classes, y=classes, text=text, texttemplate="%{text}", colorscale="Blues",
        customdata=counts, showscale=False,
        hovertemplate="true %{y} → predicted %{x}<br>%{customdata:,} faces<extra></extra>"))
    if clickable:
        xs = [classes[j] for i in range(k) for j in range(k)]
        ys = [classes[i] for i in range(k) for j in range(k)]
        fig.add_trace(go.Scatter(
            x=xs, y=ys, mode="markers", showlegend=False, name="cells",
            marker=dict(symbol="square", size=max(18, min(60, 360 // max(k, 1))),
                        color="rgba(0,0,0,0)", line=dict(width=0)),
            selected=dict(marker=dict(opacity=1)), unselected=dict(marker=dict(opacity=1)),
            customdata=counts.ravel(),
            hovertemplate="true %{y} → predicted %{x}<br>%{customdata:,} faces — click to "
                          "see them<extra></extra>"))
    fig.update_layout(
        title=title, height=height or max(260, 70 + 48 * k), margin=dict(t=40 if title else 10,
                                                                          b=10, l=10, r=10),
        xaxis=dict(title="predicted", type="category", side="bottom"),
        yaxis=dict(title="true", type="category", autorange="reversed"),
        clickmode="event+select", dragmode=False)
    return fig


def roc_figure(curves: dict, *, point: tuple[float, float] | None = None,
               title: str | None = None, height: int = 360):
    """ROC curves ``{name: {fpr, tpr, auc}}`` (a name per class, or per run when several runs'
    curves of one head are overlaid) with the chance diagonal; ``point`` marks the operating
    point (fpr, tpr) of a threshold."""
    import plotly.graph_objects as go

    fig = go.Figure()
    fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", name="chance",
                    line=dict(dash="dot", color="gray"), hoverinfo="skip")
    for cls, c in curves.items():
        fig.add_scatter(x=np.asarray(c["fpr"]), y=np.asarray(c["tpr"]), mode="lines",
                        name=f"{cls} (AUC {c['auc']:.3f})",
                        hovertemplate="FPR %{x:.3f}, TPR %{y:.3f}<extra>" + str(cls) + "</extra>")
    if point is not None and None not in point:
        fig.add_scatter(x=[point[0]], y=[point[1]], mode="markers", name="threshold",
                        marker=dict(size=13, color="crimson", symbol="circle-open",
                                    line=dict(width=3)))
    fig.update_layout(title=title, height=height, margin=dict(t=40 if title else 10, b=10,
                                                               l=10, r=10),
                      xaxis=dict(title="false positive rate (1 − specificity)", range=[0, 1]),
                      yaxis=dict(title="true positive rate (sensitivity)", range=[0, 1.02]),
                      legend=dict(orientation="h", y=-0.25))
    return fig


def curve_figure(epochs, train=None, val=None, *, metric: str = "loss",
                 title: str | None = None, height: int = 320):
    """One metric per epoch of a training run: the training split's values (``train``) and the
    validation split's (``val``) as two lines; either may be None (not recorded)."""
    import plotly.graph_objects as go

    x = np.asarray(epochs)
    fig = go.Figure()
    for name, values, dash in (("train", train, "solid"), ("val", val, "dash")):
        if values is None:
            continue
        fig.add_scatter(x=x, y=np.asarray(values, dtype=np.float64), mode="lines+markers",
                        name=name, line=dict(dash=dash),
                        hovertemplate="epoch %{x}: %{y:.4f}<extra>" + name + "</extra>")
    fig.update_layout(title=title, height=height, margin=dict(t=40 if title else 10, b=10,
                                                               l=10, r=10),
                      xaxis=dict(title="epoch", tickformat="d"), yaxis_title=metric,
                      legend=dict(orientation="h", y=-0.25))
    return fig


def regression_figure(y_true, y_pred, sources=None, *, head: str = "age",
                      title: str | None = None, height: int = 380):
    """Predicted vs true (years), one point per face with a true value, with the ideal
    diagonal. ``sources``: each face's file name, shown on hover and given back on selection
    (``customdata``)."""
    import plotly.graph_objects as go

    t = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    keep = ~np.isnan(t)
    lo = float(np.nanmin([t[keep].min(), p[keep].min(), 0.0])) if keep.any() else 0.0
    hi = float(np.nanmax([t[keep].max(), p[keep].max()])) if keep.any() else 1.0
    fig = go.Figure()
    fig.add_scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="ideal",
                    line=dict(dash="dot", color="gray"), hoverinfo="skip")
    fig.add_trace(go.Scattergl(
        x=t[keep], y=p[keep], mode="markers", name="faces",
        marker=dict(size=5, opacity=0.55),
        customdata=None if sources is None else np.asarray(sources, dtype=object)[keep],
        hovertemplate="true %{x:.0f}, predicted %{y:.1f}<br>%{customdata}<extra></extra>"))
    fig.update_layout(title=title, height=height, margin=dict(t=40 if title else 10, b=10,
                                                               l=10, r=10),
                      xaxis_title=f"true {head} (years)", yaxis_title=f"predicted {head} (years)",
                      showlegend=False, clickmode="event+select")
    return fig


def bar_figure(labels: Sequence[str], values, low=None, high=None, *, title: str | None = None,
               axis: str = "", height: int = 300):
    """A bar per group with optional confidence-interval error bars."""
    import plotly.graph_objects as go

    values = np.asarray(values, dtype=np.float64)
    err = None
    if low is not None and high is not None:
        lo, hi = np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)
        err = dict(type="data", symmetric=False, array=np.nan_to_num(hi - values),
                   arrayminus=np.nan_to_num(values - lo))
    fig = go.Figure(go.Bar(x=[str(v) for v in labels], y=values, error_y=err))
    fig.update_layout(title=title, height=height, margin=dict(t=40 if title else 10, b=10,
                                                               l=10, r=10),
                      yaxis_title=axis, xaxis=dict(type="category"))
    return fig


def grid_figure(z, rows: Sequence, columns: Sequence, *, row_label: str, column_label: str,
                title: str | None = None, higher_is_better: bool = True,
                height: int | None = None):
    """A sweep's grid of one value (rows × columns, NaN where a cell has none) as a heatmap with
    each cell's value written in it, large enough to read: the height follows the rows."""
    import plotly.graph_objects as go

    z = np.asarray(z, dtype=np.float64)
    text = [["" if np.isnan(v) else f"{v:.3f}" for v in row] for row in z]
    fig = go.Figure(go.Heatmap(
        z=z, x=[str(c) for c in columns], y=[str(r) for r in rows], text=text,
        texttemplate="%{text}", textfont=dict(size=15),
        colorscale="RdBu" if higher_is_better else "RdBu_r",
        hovertemplate=f"{row_label} %{{y}}, {column_label} %{{x}}: %{{z:.4f}}<extra></extra>"))
    fig.update_layout(title=dict(text=title, font=dict(size=14)),
                      height=height or max(300, 130 + 64 * len(rows)),
                      margin=dict(t=50 if title else 10, b=10, l=10, r=10),
                      xaxis=dict(title=column_label, type="category", tickfont=dict(size=13)),
                      yaxis=dict(title=row_label, type="category", autorange="reversed",
                                 tickfont=dict(size=13)))
    return fig


def plotly_js() -> str:
    """plotly.js itself (the copy inside the plotly package), for one inline ``<script>``."""
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


def figure_html(fig) -> str:
    """A figure as an HTML snippet that uses the page's own plotly.js (:func:`plotly_js`)."""
    return fig.to_html(full_html=False, include_plotlyjs=False, include_mathjax=False)
