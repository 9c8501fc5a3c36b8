"""Evaluation: stored vs recomputed predictions, cross-dataset label mapping, galleries, the
report and the ``evaluate`` command. One tiny model (UTKFace-format fixture, 16 px gray, one
epoch) is trained once per session and shared with test_evaluate_page.py."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from faceml.data.mapping import FAIRFACE_RACES, UTKFACE_RACES
from faceml.errors import DataError, FaceMLError
from faceml.evaluation.evaluate import (evaluate_model, face_images, group_columns, group_members,
                                        interpret, load_interpretation, stored_predictions)
from faceml.data.prepare import PrepOptions
from faceml.runs import Run, RunStore

ROOT = Path(__file__).resolve().parents[1]


def shared_utk_run(tmp_path_factory) -> Run:
    """A finished run (gender, race, age) on a UTKFace-format fixture, trained once per test
    session; its store and cache live under the session's base temp folder."""
    from fixtures_formats import make_utkface

    from faceml.config import TrainConfig
    from faceml.training.engine import train_run

    base = tmp_path_factory.getbasetemp() / "evaluate_shared"
    data = base / "utk"
    if not data.exists():
        make_utkface(base / "utk.tmp", 200, size=24)
        (base / "utk.tmp").rename(data)
    cfg = TrainConfig(data=PrepOptions(dataset="utkface", path=str(data), size=16,
                                       color="gray"),
                      arch="small_cnn", heads=["gender", "race", "age"],
                      head_weights={"age": 0.05}, epochs=1, batch_size=64)
    store = RunStore(base / "runs")
    run, _ = store.create(cfg.run_id(), cfg.canonical())
    if run.status().get("state") != "done":
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("FACEML_CACHE_DIR", str(base / "cache"))
            st = train_run(run)
        assert st["state"] == "done", st
    return run


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Run:
    return shared_utk_run(tmp_path_factory)


@pytest.fixture
def runs_env(run, monkeypatch):
    """Point the CLI's run store at the shared run."""
    monkeypatch.setenv("FACEML_RUNS_DIR", str(run.dir.parent))
    return run


def cli(*args: str) -> int:
    from faceml.cli import main

    return main(list(args))


# --- the library ---------------------------------------------------------------------------------

def test_evaluating_the_model_again_gives_the_stored_numbers(run):
    stored = load_interpretation(run, "test")
    frame = evaluate_model(run, None, "test")
    again = interpret(frame)
    assert list(frame["source"]) == list(stored.frame_["source"])
    a, b = again.summary(), stored.summary()
    assert (a["dataset"], a["split"], a["n"]) == (b["dataset"], b["split"], b["n"]) \
        == ("utkface", "test", stored.n_)
    for head, vals in b["heads"].items():
        for k, v in vals.items():
            assert a["heads"][head][k] == pytest.approx(v, abs=1e-6), (head, k)
    assert frame.attrs["notes"] == []
    assert frame.attrs["data"]["size"] == 16 and frame.attrs["data"]["color"] == "gray"


def test_stored_predictions_read_class_names_as_text_and_name_their_source(run):
    frame = stored_predictions(run)
    assert frame.attrs["dataset"] == "utkface" and frame.attrs["run"] == run.id
    assert set(frame["race_true"].dropna()) <= set(UTKFACE_RACES)
    with pytest.raises(FaceMLError, match="stored predictions for test, val only"):
        load_interpretation(run, "train")
    with pytest.raises(FaceMLError, match="unknown split 'bogus'"):
        load_interpretation(run, "bogus")


def test_cross_dataset_maps_fairface_races_into_the_models_five(run, tmp_path):
    from fixtures_formats import make_fairface

    ff = make_fairface(tmp_path / "ff", n=42, n_val=14)
    frame = evaluate_model(run, PrepOptions(dataset="fairface", path=str(ff)), "all")
    assert len(frame) == 56 and frame.attrs["dataset"] == "fairface"
    # the model's own preprocessing, not the dataset options' defaults
    assert (frame.attrs["data"]["size"], frame.attrs["data"]["color"]) == (16, "gray")
    assert frame.attrs["cross_dataset"] is True
    # race: 7 FairFace groups in the data, the model's 5 classes in the truth column
    assert set(frame["group_race"]) == set(FAIRFACE_RACES)
    assert set(frame["race_true"]) <= set(UTKFACE_RACES)
    pairs = set(zip(frame["group_race"], frame["race_true"]))
    assert ("East Asian", "Asian") in pairs and ("Southeast Asian", "Asian") in pairs
    assert ("Latino_Hispanic", "Others") in pairs and ("Middle Eastern", "Others") in pairs
    assert ("White", "White") in pairs
    # age: FairFace bins become their representative years for the regression head
    assert set(frame["age_true"]) <= {1.0, 6.0, 14.5, 24.5, 34.5, 44.5, 54.5, 64.5, 75.0}
    notes = " ".join(frame.attrs["notes"])
    assert "East Asian → Asian" in notes and "representative age" in notes
    m = interpret(frame).summary()
    assert set(m["heads"]) == {"gender", "race", "age"} and m["split"] == "all"


def test_heads_the_dataset_lacks_are_skipped_with_a_note(run, tmp_path):
    from fixtures_formats import make_folder

    folder = make_folder(tmp_path / "folder", ("men", "women"), n=6)
    frame = evaluate_model(run, PrepOptions(dataset="folder", path=str(folder)), "all")
    assert [h["name"] for h in frame.attrs["heads"]] == ["gender"]
    assert set(frame["gender_true"]) == {"Male", "Female"}
    notes = frame.attrs["notes"]
    assert any("no 'race' label" in n for n in notes) and any("no 'age' label" in n
                                                               for n in notes)


def test_a_class_with_no_mapping_is_named(tmp_path):
    """A model with FairFace's 7 race groups cannot be scored on UTKFace's 'Asian'/'Others'."""
    import keras
    from fixtures_formats import make_utkface

    from faceml.modeling import architectures
    from faceml.data.heads import HeadSpec
    from faceml.modeling.modelio import save_model

    model = architectures.build("mlp", image_size=16, color="gray",
                                heads=[HeadSpec("race", "multiclass", list(FAIRFACE_RACES))],
                                metadata={"dataset": "fairface"})
    path = tmp_path / "ff_race.keras"
    save_model(model, path)
    keras.backend.clear_session()
    utk = make_utkface(tmp_path / "utk", 12)
    with pytest.raises(DataError, match=r"race: no mapping for 'Asian', 'Others'"):
        evaluate_model(path, PrepOptions(dataset="utkface", path=str(utk)), "all")
    with pytest.raises(FaceMLError, match="does not say which dataset"):
        evaluate_model(path, None, "all")


def test_a_run_still_training_is_evaluated_at_its_last_checkpoint(run, tmp_path):
    store = RunStore(tmp_path / "runs")
    shutil.copytree(run.dir, store.root / "training")
    busy = store.get("training")
    (busy.dir / "best.keras").unlink()
    busy.set_status(state="running", pid=os.getpid())
    frame = evaluate_model(busy, None, "val")
    assert any("still training" in n and "last checkpoint" in n for n in frame.attrs["notes"])
    assert "last.keras" in frame.attrs["model"]


def test_a_file_that_is_not_a_model_is_a_clear_error(tmp_path):
    bogus = tmp_path / "notes.keras"
    bogus.write_text("not a model")
    with pytest.raises(FaceMLError, match="not a Keras model"):
        evaluate_model(bogus)
    with pytest.raises(FaceMLError, match="unknown split"):
        evaluate_model(bogus, split="everything")


def test_face_images_read_the_rows_asked_and_none_when_gone(run, tmp_path):
    data = run.config["data"]
    frame = stored_predictions(run)
    sources = list(frame["source"][:3]) + ["no-such-face.jpg"]
    imgs = face_images(data, sources, size=32, color="rgb")
    assert [None if i is None else i.shape for i in imgs] == [(32, 32, 3)] * 3 + [None]
    assert imgs[0].dtype == np.uint8
    moved = dict(data, path=str(tmp_path / "gone"))
    assert face_images(moved, sources[:2]) == [None, None]


def test_group_columns_and_members(run):
    interp = load_interpretation(run, "test")
    assert group_columns(interp.frame_, "gender") == ["race", "age"]
    assert group_columns(interp.frame_, "age") == ["race", "gender"]
    table = interp.group_breakdown("gender", ["race"])
    row = table.iloc[0]
    members = group_members(interp, "gender", ["race"], {"race": row["race"]})
    assert len(members) == row["n"]
    assert set(members["group_race"]) == {row["race"]}
    assert members["loss"].is_monotonic_decreasing


# --- report and CSV ------------------------------------------------------------------------------

def test_report_names_dataset_split_and_has_the_ethics_section(run):
    from faceml.evaluation.report import report_html, report_markdown

    interp = load_interpretation(run, "val")
    md = report_markdown(interp, config=run.config, title=f"run {run.id}")
    assert "dataset **utkface**, split **val**" in md
    assert "## Ethics and limits" in md and "no decisions about people" in md.lower()
    assert "### race (multiclass) — utkface, val" in md
    assert "| true \\ predicted | White | Black | Asian | Indian | Others |" in md
    assert "## Per-group breakdown" in md and "### gender by race × age" in md
    at_03 = report_markdown(interp, thresholds={"gender": 0.3})
    assert "Decision threshold: P(Female) ≥ 0.30." in at_03
    assert at_03.count("Decision threshold") == 1
    html = report_html(interp, config=run.config, title=f"run {run.id}")
    assert html.startswith("<!DOCTYPE html>") and "<h2>Ethics and limits</h2>" in html
    assert "<strong>utkface</strong>" in html and "plotly" in html


# --- the command ---------------------------------------------------------------------------------

def test_cli_json_prints_the_summary_shape(runs_env, capsys):
    assert cli("evaluate", runs_env.id, "--json") == 0
    out = json.loads(capsys.readouterr().out)
    assert list(out) == ["dataset", "split", "n", "heads"]
    assert (out["dataset"], out["split"]) == ("utkface", "test")
    assert list(out["heads"]) == ["gender", "race", "age"]
    for h in ("gender", "race"):
        assert list(out["heads"][h]) == ["accuracy", "balanced_accuracy", "f1_macro", "auc"]
    assert list(out["heads"]["age"]) == ["mae", "rmse"]
    assert out == load_interpretation(runs_env, "test").summary()


def test_cli_writes_predictions_csv_and_reports(runs_env, tmp_path, capsys):
    csv, md, html = tmp_path / "p.csv", tmp_path / "r.md", tmp_path / "r.html"
    assert cli("evaluate", runs_env.id, "--split", "val", "--predictions", str(csv),
               "--report", str(md)) == 0
    assert "utkface · val" in capsys.readouterr().out
    got = pd.read_csv(csv)
    want = (["file", "gender_true", "gender_pred", "gender_prob_Male", "gender_prob_Female",
             "race_true", "race_pred"] + [f"race_prob_{c}" for c in UTKFACE_RACES]
            + ["age_true", "age_pred"])
    assert list(got.columns) == want
    assert len(got) == load_interpretation(runs_env, "val").n_
    assert "Ethics and limits" in md.read_text()
    # the model on another split (no stored predictions for train): evaluated now
    assert cli("evaluate", runs_env.id, "--split", "train", "--report", str(html), "--json") == 0
    out = json.loads(capsys.readouterr().out)
    assert out["split"] == "train" and out["n"] > 100
    assert "split <strong>train</strong>" in html.read_text()


@pytest.mark.parametrize("args,message", [
    (["nope-run"], "no run 'nope-run'"),
    (["RUN", "--split", "everything"], "unknown split 'everything'"),
    (["RUN", "--dataset", "imagenet"], "unknown dataset 'imagenet'"),
    (["RUN", "--report", "out.pdf"], "must end in .md or .html"),
    ([], "give a run id or --model"),
])
def test_cli_bad_input_exits_2_with_one_line(runs_env, capsys, args, message):
    args = [runs_env.id if a == "RUN" else a for a in args]
    assert cli("evaluate", *args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_cli_a_file_that_is_not_a_model_exits_2(tmp_path, capsys):
    bogus = tmp_path / "model.keras"
    bogus.write_text("hello")
    assert cli("evaluate", "--model", str(bogus)) == 2
    assert "is not a Keras model" in capsys.readouterr().err


def test_the_command_exits_2_without_loading_tensorflow(tmp_path):
    code = ("import sys; from faceml.cli import main; rc = main(['evaluate', 'nope']); "
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules; "
            "sys.exit(rc)")
    env = {**os.environ, "FACEML_RUNS_DIR": str(tmp_path)}
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 2, p.stderr
    assert p.stderr.strip().splitlines()[-1] == f"error: no run 'nope' in {tmp_path}"


# --- which checkpoint ----------------------------------------------------------------------------

def _with_history(run: Run, dest: Path, val_losses: list[float]) -> Run:
    """A copy of ``run`` whose history has one epoch per validation loss."""
    shutil.copytree(run.dir, dest)
    copy = RunStore(dest.parent).get(dest.name)
    rows = [{"epoch": i + 1, "loss": 1.0, "val_loss": v} for i, v in enumerate(val_losses)]
    (copy.dir / "history.json").write_text(json.dumps(rows))
    status = json.loads((copy.dir / "status.json").read_text())
    status.pop("results", None)  # as a run stored before training recorded its checkpoint
    (copy.dir / "status.json").write_text(json.dumps(status))
    return copy


def test_checkpoint_info_names_the_best_epoch_or_the_last(run, tmp_path):
    from faceml.evaluation.evaluate import checkpoint_info

    # a run just trained: training recorded which checkpoint its predictions come from
    assert run.status()["results"]["checkpoint"] == "best"
    assert checkpoint_info(run)["text"] == ("best checkpoint (epoch 1 of 1, lowest validation "
                                            "loss; also the last epoch)")
    r = _with_history(run, tmp_path / "runs" / "five", [0.9, 0.4, 0.6, 0.4, 0.7])
    best = checkpoint_info(r)  # stored predictions: training saved a best.keras
    assert (best["checkpoint"], best["epoch"], best["epochs_done"]) == ("best", 2, 5)
    assert best["text"] == "best checkpoint (epoch 2 of 5, lowest validation loss)"
    assert checkpoint_info(r, "last")["text"] == "last checkpoint (epoch 5)"
    frame = stored_predictions(r)
    assert frame.attrs["checkpoint"] == best
    assert "best checkpoint (epoch 2 of 5" in frame.attrs["model"]
    (r.dir / "best.keras").unlink()  # no best saved: the predictions came from last.keras
    assert checkpoint_info(r)["checkpoint"] == "last"
    same = _with_history(run, tmp_path / "runs" / "same", [0.9, 0.5])
    assert checkpoint_info(same)["text"] == ("best checkpoint (epoch 2 of 2, lowest "
                                             "validation loss; also the last epoch)")
    with pytest.raises(FaceMLError, match="unknown checkpoint"):
        checkpoint_info(same, "first")
    # what training recorded when it stored the predictions wins over what is on disk now
    same.set_status(results={"checkpoint": "last", "epoch": 2, "monitor": "val_loss"})
    assert (same.dir / "best.keras").exists()
    assert checkpoint_info(same)["text"] == "last checkpoint (epoch 2)"
    same.set_status(results={"checkpoint": "best", "epoch": 1, "monitor": "loss"})
    assert checkpoint_info(same)["text"] == "best checkpoint (epoch 1 of 2, lowest training loss)"


def test_an_evaluated_model_says_which_checkpoint_it_was(run, tmp_path):
    from faceml.evaluation.report import report_markdown

    done = _with_history(run, tmp_path / "runs" / "done", [0.9, 0.4, 0.6])
    frame = evaluate_model(done, None, "val")
    assert frame.attrs["checkpoint"]["checkpoint"] == "best"
    assert frame.attrs["checkpoint"]["epoch"] == 2
    md = report_markdown(interpret(frame))
    assert f"from the predictions of run {done.id}'s best checkpoint (epoch 2 of 3" in md
    stored = report_markdown(load_interpretation(done, "val"))
    assert f"from the predictions of run {done.id}'s best checkpoint (epoch 2 of 3" in stored
    busy = _with_history(run, tmp_path / "runs" / "busy", [0.9, 0.4, 0.6])
    busy.set_status(state="running", pid=os.getpid())
    frame = evaluate_model(busy, None, "val")
    assert frame.attrs["checkpoint"]["text"] == "last checkpoint (epoch 3)"
    assert "last checkpoint (epoch 3)" in report_markdown(interpret(frame))


# --- a hosted server -----------------------------------------------------------------------------

def hosted_server(monkeypatch, tmp_path, datasets: dict[str, str]) -> Path:
    """Turn on hosted mode with an operator config whose [datasets] allow-list is ``datasets``
    (name -> server path, "" = built in). Returns the config file."""
    cfg = tmp_path / "hosting.toml"
    cfg.write_text("[datasets]\n" + "".join(f"{k} = {json.dumps(str(v))}\n"
                                            for k, v in datasets.items()))
    monkeypatch.setenv("FACEML_HOSTED", "1")
    monkeypatch.setenv("FACEML_HOSTING_CONFIG", str(cfg))
    monkeypatch.setenv("FACEML_SHARED_DATA", str(tmp_path / "no-shared-data"))
    return cfg


def test_hosted_evaluation_refuses_other_paths_and_datasets_without_naming_them(
        run, tmp_path, monkeypatch):
    from fixtures_formats import make_fairface, make_folder

    from faceml.hosting import PolicyError

    offered = make_folder(tmp_path / "srv" / "offered", ("male", "female"), n=4)
    private = make_folder(tmp_path / "home" / "private-photos", ("male", "female"), n=4)
    ff = make_fairface(tmp_path / "home" / "ff", n=14)
    hosted_server(monkeypatch, tmp_path, {"synthetic": "", "utkface": run.config["data"]["path"],
                                          "folder": offered})
    messages = set()
    for path in (private, "/etc", tmp_path / "no" / "such" / "folder"):
        with pytest.raises(PolicyError) as e:
            evaluate_model(run, PrepOptions(dataset="folder", path=str(path)), "all")
        msg = str(e.value)
        assert str(path) not in msg and "/" not in msg and "\n" not in msg
        messages.add(msg)
    assert len(messages) == 1, messages  # the same answer whatever is there: nothing to probe
    with pytest.raises(PolicyError, match="'fairface' is not offered") as e:
        evaluate_model(run, PrepOptions(dataset="fairface", path=str(ff)), "all")
    assert str(ff) not in str(e.value) and "synthetic, utkface, folder" in str(e.value)
    # galleries read the operator's copy only: real images at a private path are not read
    sources = ["male/male_0.jpg", "female/female_1.jpg"]
    assert face_images({"dataset": "folder", "path": str(private)}, sources) == [None, None]
    assert all(i is not None for i in face_images({"dataset": "folder"}, sources, size=16))
    # the operator's folder, no path typed: evaluated
    frame = evaluate_model(run, PrepOptions(dataset="folder"), "all")
    assert len(frame) == 8 and frame.attrs["cross_dataset"] is True
    assert frame.attrs["data"]["path"] is None


def test_hosted_evaluation_messages_name_no_server_path(run, tmp_path, monkeypatch):
    empty = tmp_path / "srv" / "empty-folder"
    (empty / "notes").mkdir(parents=True)
    (empty / "notes" / "readme.txt").write_text("not a face")
    hosted_server(monkeypatch, tmp_path, {"folder": empty})
    with pytest.raises(DataError, match="no images found") as e:
        evaluate_model(run, PrepOptions(dataset="folder"), "all")
    assert str(tmp_path) not in str(e.value) and "<folder>" in str(e.value)
    from faceml import paths

    gone = paths.runs_dir() / "gone.keras"  # a message from outside the data pipeline
    with pytest.raises(FaceMLError, match="model file not found") as e:
        evaluate_model(gone)
    assert str(gone.parent) not in str(e.value) and "<runs>/gone.keras" in str(e.value)
    monkeypatch.delenv("FACEML_HOSTED")  # not hosted: the path is the user's own, and shown
    with pytest.raises(DataError, match="no images found") as e:
        evaluate_model(run, PrepOptions(dataset="folder", path=str(empty)), "all")
    assert str(empty) in str(e.value)
