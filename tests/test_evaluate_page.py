"""AppTest of the Evaluate page on a tiny trained run (shared with test_evaluate.py)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from faceml.evaluation.losses import cell_members
from faceml.runs import RunStore
from tests.test_evaluate import shared_utk_run
from ui.evaluate import PER_PAGE, cell_from_event, cell_keys

ROOT = Path(__file__).resolve().parents[1]

PAGE = "../app_pages/evaluate.py"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return shared_utk_run(tmp_path_factory)


@pytest.fixture
def store(run, tmp_path, monkeypatch):
    """A fresh store holding a copy of the shared run (tests may change their copy)."""
    root = tmp_path / "runs"
    shutil.copytree(run.dir, root / run.id)
    monkeypatch.setenv("FACEML_RUNS_DIR", str(root))
    return RunStore(root)


def page(run_id: str | None = None) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=120)
    if run_id:
        at.query_params["run"] = run_id
    at.run()
    assert not at.exception, at.exception
    return at


def metric(at, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def table_with(at, columns: list[str]):
    return next(d.value for d in at.dataframe if list(d.value.columns) == columns)


def test_no_runs_points_to_the_train_page(monkeypatch, tmp_path):
    monkeypatch.setenv("FACEML_RUNS_DIR", str(tmp_path / "empty"))
    at = page()
    assert at.title[0].value == "Evaluate"
    assert any("No trained runs yet" in i.value and "Train" in i.value for i in at.info)


def test_renders_every_head_and_names_dataset_and_split(store, run):
    at = page(run.id)
    banner = at.info[0].value
    assert "**utkface**" in banner and "**test** split" in banner
    assert at.selectbox(key="ev_run").value == run.id
    assert float(metric(at, "Accuracy")) >= 0
    assert len(at.get("plotly_chart")) >= 3  # confusion matrix, ROC, group bars
    assert len(at.get("download_button")) == 3  # report .md / .html, predictions .csv
    at.radio(key="ev_split").set_value("val").run()
    assert not at.exception, at.exception
    assert "**val** split" in at.info[0].value
    for head in ("race", "age"):
        at.selectbox(key="ev_head").set_value(head).run()
        assert not at.exception, at.exception
    assert float(metric(at, "MAE (years)")) > 0
    assert any("faces" in c.value and "val split" in c.value for c in at.caption)


def test_threshold_slider_moves_sensitivity_and_specificity(store, run):
    at = page(run.id)
    assert at.selectbox(key="ev_head").value == "gender"
    seen = {}
    for t in (0.0, 0.5, 1.0):
        at.slider(key="ev_thr_gender").set_value(t).run()
        assert not at.exception, at.exception
        seen[t] = (metric(at, "Sensitivity"), metric(at, "Specificity"))
    assert seen[0.0] == ("1.000", "0.000")  # everything predicted Female
    assert seen[1.0] == ("0.000", "1.000")  # nothing reaches P = 1
    cm = table_with(at, ["pred Male", "pred Female"])
    assert cm["pred Female"].sum() == 0


def test_selecting_a_cell_shows_exactly_that_cells_faces(store, run):
    assert cell_from_event({"selection": {"points": [{"x": "Male", "y": "Female"}]}},
                           ["Male", "Female"]) == ("Female", "Male")
    assert cell_from_event({"selection": {"points": []}}, ["Male", "Female"]) is None
    at = page(run.id)
    from faceml.evaluation.evaluate import load_interpretation

    interp = load_interpretation(run, "test")
    kt, kp = cell_keys(interp.heads[0])
    for true, pred in (("Female", "Male"), ("Male", "Male")):
        # what the matrix's click handler does: set the cell's two keys, rerun
        at.session_state[kt], at.session_state[kp] = true, pred
        at.run()
        assert not at.exception, at.exception
        want = cell_members(interp.frame_, "gender", true, pred, threshold=0.5)
        shown = table_with(at, ["file", "gender_true", "gender_pred", "confidence"])
        assert list(shown["file"]) == list(want["source"][:PER_PAGE])
        assert set(shown["gender_true"]) <= {true} and set(shown["gender_pred"]) <= {pred}
        captions = [c for img in at.get("image") for c in img.captions]
        for f in shown["file"]:
            assert any(c.endswith(f) and f"true {true} → pred {pred}" in c for c in captions)


def test_a_vanished_dataset_keeps_its_metrics_and_says_the_images_are_missing(store, run,
                                                                              tmp_path):
    moved = store.root / "moved"
    shutil.copytree(store.root / run.id, moved)
    cfg = json.loads((moved / "config.json").read_text())
    cfg["data"]["path"] = str(tmp_path / "gone")
    (moved / "config.json").write_text(json.dumps(cfg))
    at = page("moved")
    assert float(metric(at, "Accuracy")) >= 0
    assert any("images are missing" in w.value for w in at.warning)
    assert not at.get("image")


def test_a_running_run_is_evaluated_at_its_last_checkpoint(store, run):
    busy = store.root / "busy"
    shutil.copytree(store.root / run.id, busy)
    (busy / "predictions.csv").unlink()
    status = json.loads((busy / "status.json").read_text())
    (busy / "status.json").write_text(json.dumps({**status, "state": "running",
                                                  "pid": os.getpid()}))
    at = page("busy")
    assert any("still training" in w.value and "last checkpoint" in w.value for w in at.warning)
    assert "last checkpoint" in at.info[0].value


def test_cross_dataset_evaluation_shows_the_same_views(store, run, tmp_path):
    from fixtures_formats import make_fairface

    ff = make_fairface(tmp_path / "ff", n=28, n_val=7)
    at = page(run.id)
    at.selectbox(key="ev_x_dataset").set_value("fairface").run()
    at.text_input(key="ev_x_path_fairface").set_value(str(ff)).run()
    at.button(key="ev_x_go").click().run()
    assert not at.exception, at.exception
    assert "**fairface**, **all** split, 35 faces" in at.info[0].value
    assert any("East Asian → Asian" in c.value for c in at.caption)
    at.selectbox(key="ev_head").set_value("race").run()
    assert not at.exception, at.exception
    at.button(key="ev_x_back").click().run()
    assert "**utkface**" in at.info[0].value


# --- which checkpoint, the threshold in the export ---------------------------------------------

def _history(run_dir: Path, val_losses: list[float]) -> None:
    rows = [{"epoch": i + 1, "loss": 1.0, "val_loss": v} for i, v in enumerate(val_losses)]
    (run_dir / "history.json").write_text(json.dumps(rows))
    status = json.loads((run_dir / "status.json").read_text())
    status.pop("results", None)  # as a run stored before training recorded its checkpoint
    (run_dir / "status.json").write_text(json.dumps(status))


def test_the_metrics_say_which_checkpoint_they_come_from(store, run):
    _history(store.root / run.id, [0.9, 0.4, 0.6])
    at = page(run.id)
    best = "from the run's best checkpoint (epoch 2 of 3, lowest validation loss)"
    assert "stored predictions of the run's best checkpoint (epoch 2 of 3" in at.info[0].value
    assert any(best in c.value and "**gender**" in c.value for c in at.caption)
    at.selectbox(key="ev_head").set_value("age").run()
    assert any(best in c.value and "**age** (years)" in c.value for c in at.caption)
    busy = store.root / "busy"
    shutil.copytree(store.root / run.id, busy)
    (busy / "predictions.csv").unlink()
    status = json.loads((busy / "status.json").read_text())
    (busy / "status.json").write_text(json.dumps({**status, "state": "running",
                                                  "pid": os.getpid()}))
    at = page("busy")
    assert any("from the run's last checkpoint (epoch 3)" in c.value and "**gender**" in c.value
               for c in at.caption)


def test_the_exported_csv_and_report_use_the_chosen_threshold(store, run):
    import io

    import pandas as pd

    from ui import evaluate as ui_ev

    at = page(run.id)
    at.slider(key="ev_thr_gender").set_value(0.3).run()
    assert any("uses the threshold 0.30 for gender (its column gender_pred_threshold_0.30)"
               in c.value for c in at.caption)
    view = ui_ev.run_view(store.get(run.id), "test")
    head = view.interp.head("gender")
    files = ui_ev.exports(view, store.get(run.id), head, 0.3)
    got = pd.read_csv(io.StringIO(files["csv"][2]()))
    want = ["Female" if p >= 0.3 else "Male" for p in view.interp.frame_["gender_prob_Female"]]
    assert list(got["gender_pred_threshold_0.30"]) == want
    assert "gender_pred" not in got.columns
    md = files["md"][2]()
    assert "Decision threshold: P(Female) ≥ 0.30." in md
    assert "comes from the predictions of the run's best checkpoint" in md
    plain = pd.read_csv(io.StringIO(ui_ev.exports(view, store.get(run.id), head, None)["csv"][2]()))
    assert list(plain["gender_pred"]) == list(view.interp.frame_["gender_pred"])


# --- a hosted server ---------------------------------------------------------------------------

PATHLIKE = ("path", "folder", "file", "dir", "location")


@pytest.fixture
def hosted(store, run, tmp_path, monkeypatch):
    """Hosted mode; the allow-list: synthetic, the run's UTKFace fixture and a tiny folder."""
    from fixtures_formats import make_folder
    from test_evaluate import hosted_server

    folder = make_folder(tmp_path / "srv" / "faces", ("male", "female"), n=4)
    hosted_server(monkeypatch, tmp_path, {"synthetic": "", "utkface": run.config["data"]["path"],
                                          "folder": folder})
    return folder


def texts(at) -> list[str]:
    """Every text the page shows (messages, captions, markdown, labels, options)."""
    out = [e.value for kind in ("info", "warning", "error", "caption", "markdown", "success")
           for e in getattr(at, kind)]
    for w in (*at.selectbox, *at.radio, *at.multiselect):
        out += [w.label, *map(str, w.options)]
    return [str(t) for t in out]


def no_path_input(at) -> None:
    for t in at.text_input:
        name = f"{t.label} {t.key}".lower()
        assert not any(w in name for w in PATHLIKE), f"a path box on a hosted page: {name}"


def test_hosted_cross_dataset_panel_offers_the_allow_list_and_no_path_box(hosted, store, run):
    at = page(run.id)
    assert not at.exception, at.exception
    no_path_input(at)
    box = at.selectbox(key="ev_x_dataset")
    assert list(box.options) == ["synthetic", "utkface", "folder"]
    for name in box.options:
        at.selectbox(key="ev_x_dataset").set_value(name).run()
        assert not at.exception, at.exception
        no_path_input(at)
        if name == "synthetic":
            assert at.number_input(key="ev_x_n").max == 5000  # the server's cap on faces
        else:
            assert any("Read from where the server's operator put it" in c.value
                       for c in at.caption)
    at.selectbox(key="ev_x_dataset").set_value("folder").run()
    at.button(key="ev_x_go").click().run()
    assert not at.exception, at.exception
    assert "**folder**, **all** split, 8 faces" in at.info[0].value
    no_path_input(at)
    shown = " ".join(texts(at))
    assert str(hosted) not in shown and str(store.root) not in shown


def test_hosted_a_chosen_dataset_off_the_allow_list_is_refused_without_a_path(hosted, store,
                                                                              run, tmp_path):
    """A session that still holds a cross-dataset choice from before (or a crafted one)."""
    from fixtures_formats import make_folder

    private = make_folder(tmp_path / "home" / "secret-faces", ("male", "female"), n=4)
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.query_params["run"] = run.id
    at.session_state["ev_cross"] = {"run": run.id, "split": "all", "data": {
        "dataset": "folder", "path": str(private), "size": 16, "color": "gray"}}
    at.run()
    assert not at.exception, at.exception
    assert any("paths cannot be chosen on this server" in e.value for e in at.error)
    assert "**utkface**" in at.info[0].value  # back on the run's own predictions
    assert not any(str(private) in t or "secret-faces" in t for t in texts(at))


def test_hosted_a_vanished_dataset_banner_names_no_server_path(hosted, store, run, tmp_path):
    moved = store.root / "moved"
    shutil.copytree(store.root / run.id, moved)
    cfg = json.loads((moved / "config.json").read_text())
    cfg["data"]["path"] = str(tmp_path / "private-gone")
    (moved / "config.json").write_text(json.dumps(cfg))
    at = page("moved")
    assert float(metric(at, "Accuracy")) >= 0
    warning = next(w.value for w in at.warning if "images are missing" in w.value)
    assert "not available on this server" in warning
    assert not any("private-gone" in t or str(tmp_path) in t for t in texts(at))
    assert not at.get("image")
