"""The exported reports and the predictions CSV, on hand-made predictions (no model): the HTML
report holds plotly.js itself (once), so it opens offline; the CSV follows the chosen decision
threshold and says which in its header; the report names the checkpoint."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest
from plotly.offline import get_plotlyjs

from faceml.evaluation.predictions import MetricsInputError, predictions_frame
from faceml.evaluation.interpretation import Interpretation
from faceml.evaluation import report
from faceml.data.heads import HeadSpec

GENDER = HeadSpec("gender", "binary", ["Male", "Female"])
RACE = HeadSpec("race", "multiclass", ["White", "Black", "Asian"])
AGE = HeadSpec("age", "regression")
URL = re.compile(r"^\s*(https?:)?//", re.I)


def sample_interp(n: int = 60, seed: int = 0) -> Interpretation:
    """Predictions of three heads (binary, multiclass, regression) with group labels: five
    figures in the HTML report (two confusion matrices, two ROC figures, one scatter)."""
    rng = np.random.default_rng(seed)
    g = rng.integers(0, 2, n)
    r = rng.integers(0, 3, n)
    age = rng.uniform(1, 90, n)
    p_female = np.clip(0.5 * g + rng.uniform(0, 0.5, n), 0, 1)
    race = rng.dirichlet(np.ones(3), n)
    frame = predictions_frame(
        [f"f{i}.jpg" for i in range(n)], [GENDER, RACE, AGE],
        {"gender": g, "race": r, "age": age},
        {"gender": p_female[:, None], "race": race, "age": (age + rng.normal(0, 5, n))[:, None]},
        "test", extra=pd.DataFrame({"gender": np.array(GENDER.classes)[g],
                                    "race": np.array(RACE.classes)[r], "age_years": age}))
    return Interpretation.from_frame(frame, [GENDER, RACE, AGE], dataset="synthetic", split="test")


class _Loads(HTMLParser):
    """Every src/href attribute, and every url(...) or @import in inline CSS."""

    def __init__(self):
        super().__init__()
        self.refs: list[tuple[str, str, str]] = []
        self.scripts: list[dict] = []
        self._style = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "script":
            self.scripts.append(a)
        for k in ("src", "href", "srcset", "data", "poster", "action"):
            if a.get(k):
                self.refs.append((tag, k, a[k]))
        self._style = tag == "style"

    def handle_endtag(self, tag):
        self._style = False

    def handle_data(self, data):
        if self._style:
            for u in re.findall(r"url\(\s*['\"]?([^'\")]+)", data):
                self.refs.append(("style", "url", u))
            for u in re.findall(r"@import\s+(?:url\()?['\"]?([^'\");\s]+)", data):
                self.refs.append(("style", "@import", u))


def loads(html: str) -> _Loads:
    p = _Loads()
    p.feed(html)
    return p


def test_the_html_report_embeds_plotly_js_once_and_loads_nothing_from_another_host():
    interp = sample_interp()
    html = report.report_html(interp, title="offline", thresholds={"gender": 0.3})
    parsed = loads(html)
    external = [r for r in parsed.refs if URL.match(r[2])]
    assert not external, external
    assert not [s for s in parsed.scripts if s.get("src")], "a <script src=...> is loaded"
    # plotly.js itself, once, before the five figures that use it
    js = get_plotlyjs()
    js_head = js[:300]
    assert html.count(js_head) == 1 and html.count(js) == 1
    # outside plotly.js's own code (map tiles, licences: not used by these figures; the
    # browser test draws the report with the network cut), no address of another host at all
    assert not re.findall(r"https?://", html.replace(js, ""))
    assert html.count("Plotly.newPlot(") == 5
    assert html.index(js_head) < html.index("Plotly.newPlot(")
    assert "needs no network" in html and "from its CDN" not in html


def test_a_report_without_figures_carries_no_plotly_js():
    interp = sample_interp()
    html = report.report_html(interp, figures=False)
    assert get_plotlyjs()[:300] not in html and "Plotly.newPlot(" not in html
    assert len(html) < 200_000
    assert not [r for r in loads(html).refs if URL.match(r[2])]


def test_the_csv_uses_the_chosen_threshold_and_its_header_says_which():
    interp = sample_interp()
    f = interp.frame_
    plain = pd.read_csv(pd.io.common.StringIO(report.predictions_csv(f, interp.heads)))
    assert "gender_pred" in plain.columns
    assert list(plain["gender_pred"]) == list(f["gender_pred"])  # P >= 0.5
    for t, name in ((0.3, "gender_pred_threshold_0.30"), (0.8, "gender_pred_threshold_0.80"),
                    (0.125, "gender_pred_threshold_0.125")):
        text = report.predictions_csv(f, interp.heads, thresholds={"gender": t})
        got = pd.read_csv(pd.io.common.StringIO(text))
        assert text.splitlines()[0].split(",")[:3] == ["file", "gender_true", name]
        assert "gender_pred" not in got.columns
        want = np.where(f["gender_prob_Female"] >= t, "Female", "Male")
        assert list(got[name]) == list(want)
        # what the page's metrics at that threshold count
        cm = pd.crosstab(got["gender_true"], got[name]).reindex(
            index=GENDER.classes, columns=GENDER.classes, fill_value=0).to_numpy().tolist()
        assert cm == interp.classification_metrics(GENDER, t)["confusion_matrix"]
        # the other heads are as stored
        assert list(got["race_pred"]) == list(f["race_pred"])
        assert np.allclose(got["age_pred"], f["age_pred"])
    at_03 = pd.read_csv(pd.io.common.StringIO(
        report.predictions_csv(f, interp.heads, thresholds={"gender": 0.3})))
    assert (at_03["gender_pred_threshold_0.30"] != plain["gender_pred"]).any()  # it matters


def test_a_threshold_for_a_head_that_has_none_is_refused():
    interp = sample_interp()
    with pytest.raises(MetricsInputError, match="binary heads only"):
        report.predictions_csv(interp.frame_, interp.heads, thresholds={"race": 0.3})
    with pytest.raises(MetricsInputError, match="regression head"):
        report.predictions_csv(interp.frame_, interp.heads, thresholds={"age": 0.3})
    with pytest.raises(MetricsInputError, match="'eyewear', which is not a head"):
        report.predictions_csv(interp.frame_, interp.heads, thresholds={"eyewear": 0.3})


def test_the_report_says_which_checkpoint_its_metrics_come_from():
    interp = sample_interp()
    assert "Every metric below comes from" not in report.report_markdown(interp)  # unknown
    interp.frame.attrs.update(run="abc123", checkpoint={
        "checkpoint": "best", "epoch": 7, "epochs_done": 10,
        "text": "best checkpoint (epoch 7 of 10, lowest validation loss)"})
    md = report.report_markdown(interp)
    line = ("Every metric below comes from the predictions of run abc123's best checkpoint "
            "(epoch 7 of 10, lowest validation loss).")
    assert line in md
    assert md.index(line) > md.index("## Metrics") and md.index(line) < md.index("### gender")
    html = report.report_html(interp, figures=False, source="the run's last checkpoint (epoch 4)")
    assert "comes from the predictions of the run&#x27;s last checkpoint (epoch 4)." in html


def a_run_with_history():
    """A stored run (small CNN on synthetic, 16 px gray) with a hand-written three-epoch
    history: the report's model summary and curves are read from the run store."""
    from faceml.config import TrainConfig
    from faceml.data.prepare import PrepOptions
    from faceml.runs import RunStore

    cfg = TrainConfig(data=PrepOptions(dataset="synthetic", dataset_options={"n": 120}, size=16,
                                       color="gray"),
                      arch="small_cnn", heads=["eyewear"], epochs=5)
    run, _ = RunStore().create(cfg.run_id(), cfg.canonical())
    rows = [{"epoch": 1, "seconds": 1.0, "lr": 1e-3, "loss": 0.91, "accuracy": 0.55,
             "val_loss": 0.88, "val_accuracy": 0.58},
            {"epoch": 2, "seconds": 1.0, "lr": 1e-3, "loss": 0.71, "accuracy": 0.64,
             "val_loss": 0.79, "val_accuracy": 0.6125},
            {"epoch": 3, "seconds": 1.0, "lr": 1e-3, "loss": 0.52, "accuracy": 0.77,
             "val_loss": 0.83, "val_accuracy": 0.5975}]
    for r in rows:
        run.append_history(r)
    return cfg, run, rows


def test_the_report_holds_the_runs_model_summary_and_training_curves():
    from faceml.data.prepare import labels_for

    cfg, run, rows = a_run_with_history()
    interp = sample_interp()
    md = report.report_markdown(interp, config=run.config, run=run)
    # the model summary: the layer table of the real model, its totals
    model = cfg.kind.build(cfg, cfg.kind.placeholder_heads(cfg, labels_for(cfg.data)))
    total = model.count_params()
    trainable = int(sum(np.prod(w.shape) for w in model.trainable_weights))
    assert f"**{total:,}** parameters in total, **{trainable:,}** trainable" in md
    for layer in model.layers:
        assert f"| {layer.name} " in md
    assert md.index("## Model") < md.index("## Training curves") < md.index("## Metrics")
    # the curves' numbers, per epoch, train vs val, naming the dataset and the splits
    train = md[md.index("## Training curves"):md.index("## Metrics")]
    assert "dataset **synthetic**, 3 epoch(s) recorded of 5" in train
    assert "| epoch | loss (train) | loss (val) | accuracy (train) | accuracy (val) |" in train
    assert "| 2 | 0.7100 | 0.7900 | 0.6400 | 0.6125 |" in train
    assert "seconds" not in train and "lr (" not in train

    html = report.report_html(interp, config=run.config, run=run)
    # two more figures (loss, accuracy), drawn by the one embedded plotly.js
    assert html.count("Plotly.newPlot(") == 7
    assert html.count(get_plotlyjs()) == 1
    assert not [r for r in loads(html).refs if URL.match(r[2])]
    curves = report.training_curves(run.history())
    assert [c["metric"] for c in curves] == ["loss", "accuracy"]
    assert curves[1]["val"] == [r["val_accuracy"] for r in rows]
    assert curves[0]["train"] == [r["loss"] for r in rows]


def test_a_run_without_epochs_says_so_and_the_figure_takes_numbers():
    from faceml.evaluation.figures import curve_figure

    cfg, run, _ = a_run_with_history()
    (run.dir / "history.json").write_text("[]")
    md = report.report_markdown(sample_interp(), run=run)
    assert "No epoch finished yet" in md and "## Model" in md
    fig = curve_figure([1, 2], [0.5, 0.4], None, metric="loss")
    assert [t.name for t in fig.data] == ["train"] and list(fig.data[0].y) == [0.5, 0.4]
