"""The run store owns its layout: a run is read and written through :class:`faceml.runs.Run`
(checkpoints, heads, typed predictions, records, the store's query), and no other module
spells a run's file names."""

from __future__ import annotations

import ast
import io
import json
import tarfile
from contextlib import redirect_stdout
from pathlib import Path

import pandas as pd
import pytest

from faceml.errors import FaceMLError
from faceml.data.heads import HeadSpec
from faceml.data.prepare import PrepOptions
from faceml.runs import Run, RunStore
from faceml.config import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
RUN_FILES = {"config.json", "status.json", "history.json", "metrics.json", "heads.json",
             "predictions.csv", "best.keras", "last.keras", "STOP", "log.txt"}


def make_run(store: RunStore, **cfg) -> Run:
    c = TrainConfig(data=PrepOptions(dataset="synthetic", size=32), **cfg)
    return store.create(c.run_id(), c.canonical())[0]


@pytest.fixture
def store(tmp_path) -> RunStore:
    return RunStore(tmp_path / "runs")


def test_results_round_trip_and_class_names_stay_text(store):
    run = make_run(store, arch="small_cnn", heads=["expression"])
    assert run.predictions() is None and run.heads() == [] and not run.has_predictions()
    heads = [HeadSpec("digit", "binary", ["1", "2"]), HeadSpec("age", "regression")]
    frame = pd.DataFrame({"source": ["007", "010"], "split": ["val", "test"],
                          "digit_true": ["1", "2"], "digit_pred": ["2", "2"],
                          "digit_p_2": [0.7, 0.9], "age_true": [30.0, 41.0],
                          "age_pred": [28.5, 40.0]})
    run.write_results(frame, {"test": {"n": 1}}, heads)
    assert run.heads() == heads
    assert run.metrics() == {"test": {"n": 1}}
    got = run.predictions()
    assert list(got["digit_true"]) == ["1", "2"] and list(got["source"]) == ["007", "010"]
    assert got["age_pred"].dtype.kind == "f"
    v1 = run.predictions_version()
    run.write_results(frame.iloc[:1], {}, heads)
    assert run.predictions_version() != v1 and len(run.predictions()) == 1


def test_checkpoints_are_named_by_the_run(store):
    run = make_run(store, arch="small_cnn", heads=["expression"])
    assert run.checkpoint("best").parent == run.dir == run.checkpoint("last").parent
    with pytest.raises(FaceMLError, match="best or last"):
        run.checkpoint("worst")
    assert run.saved_checkpoint() is None
    run.checkpoint("last").write_bytes(b"x")
    assert run.saved_checkpoint("best") == "last" and run.has_checkpoint("last")
    run.checkpoint("best").write_bytes(b"x")
    assert run.saved_checkpoint("best") == "best" and run.saved_checkpoint("last") == "last"


def test_find_by_kind_and_state_skips_damaged_runs(store):
    clf = make_run(store, arch="small_cnn", heads=["expression"])
    vae = make_run(store, arch="vae", heads=[])
    damaged = store.root / "broken"
    damaged.mkdir()
    (damaged / "config.json").write_text("{not json")
    clf.set_status(state="done")
    assert {r.id for r in store.list()} == {clf.id, vae.id, "broken"}
    assert [r.id for r in store.find(kind="vae")] == [vae.id]
    assert [r.id for r in store.find(kind="classifier")] == [clf.id]
    assert [r.id for r in store.find(state="done")] == [clf.id]
    assert [r.id for r in store.find(state=("done", "queued"))] == [clf.id, vae.id]
    assert store.find(kind="vae", state="done") == []


def test_pack_runs_takes_each_runs_records(store, tmp_path):
    from scripts.pack_runs import main as pack

    run = make_run(store, arch="small_cnn", heads=["expression"], epochs=2)
    run.append_history({"epoch": 1, "loss": 1.0, "seconds": 2.0})
    run.append_history({"epoch": 2, "loss": 0.5, "seconds": 4.0})
    run.write_metrics({"test": {"heads": {"expression": {"accuracy": 0.5}}}})
    out = io.StringIO()
    with redirect_stdout(out):
        pack(str(store.root), str(tmp_path / "out"))
    summary = json.loads(out.getvalue().splitlines()[0])
    assert summary["run"] == run.id and summary["epochs_done"] == 2
    assert summary["test"] == {"expression": 0.5}
    with tarfile.open(tmp_path / "out" / "runs.tgz") as tar:
        names = set(tar.getnames())
    assert names == {f"{run.id}/{n}" for n in ("config.json", "status.json", "history.json",
                                                "metrics.json")}


def _spelled_names(path: Path) -> set[str]:
    """The run file names a module's code (not its docstrings or messages) spells."""
    tree = ast.parse(path.read_text(), str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and node.value in RUN_FILES:
            found.add(node.value)
    return found


def test_no_other_module_spells_a_runs_file_names():
    spelled = {}
    for folder in ("faceml", "ui", "app_pages", "scripts", "bench"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path == ROOT / "faceml" / "runs.py":
                continue
            names = _spelled_names(path)
            if names:
                spelled[str(path.relative_to(ROOT))] = sorted(names)
    assert spelled == {}
