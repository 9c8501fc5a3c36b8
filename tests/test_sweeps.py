"""Sweeps (grid of queued runs, cached cells reused) and run comparison."""

import base64

import numpy as np
import plotly.io as pio
import pytest
from streamlit.testing.v1 import AppTest

from faceml.training import jobs, sweeps
from faceml.errors import ConfigError
from faceml.data.prepare import PrepOptions
from faceml.runs import RunStore
from faceml.config import TrainConfig


def base(**kw) -> TrainConfig:
    args = dict(data=PrepOptions(dataset="synthetic", dataset_options={"n": 160}, size=16,
                                 color="gray"),
                arch="small_cnn", heads=["eyewear"], epochs=2, batch_size=32)
    return TrainConfig(**{**args, **kw})


def test_parse_values():
    assert sweeps.parse_values("lr", "0.01, 0.001") == [0.01, 0.001]
    assert sweeps.parse_values("batch_size", "32,64") == [32, 64]
    with pytest.raises(ConfigError, match="must be ints"):
        sweeps.parse_values("batch_size", "32, big")
    with pytest.raises(ConfigError, match="cannot sweep"):
        sweeps.parse_values("colour", "1")
    with pytest.raises(ConfigError, match="at least one value"):
        sweeps.parse_values("lr", " , ")


def test_grid_validates_every_cell():
    cfgs = sweeps.grid(base(), "lr", [0.01, 0.001], "batch_size", [16, 32, 64])
    assert [(c.lr, c.batch_size) for c in cfgs][:3] == [(0.01, 16), (0.01, 32), (0.01, 64)]
    assert len({c.run_id() for c in cfgs}) == 6
    with pytest.raises(ConfigError, match="learning rate"):
        sweeps.grid(base(), "lr", [0.01, 0.0], "batch_size", [16])
    with pytest.raises(ConfigError, match="two different"):
        sweeps.grid(base(), "lr", [0.01], "lr", [0.1])


def test_sweep_reuses_cached_runs_and_summarises_the_grid():
    store = RunStore()
    existing, _ = jobs.submit(base(lr=0.01, batch_size=32), store, start_worker=False)
    sw = sweeps.launch(base(), "lr", [0.01, 0.001], "batch_size", [32, 64], store,
                       start_worker=False)
    assert len(sw["cells"]) == 4
    assert [c["reused"] for c in sw["cells"]] == [True, False, False, False]
    assert sw["cells"][0]["run_id"] == existing.id
    assert sweeps.list_sweeps(store)[0]["id"] == sw["id"]
    assert jobs.work(store) == 4
    table = sweeps.sweep_table(sw, store)
    assert (table["state"] == "done").all()
    for _, row in table.iterrows():
        hist = store.get(row["run_id"]).history()
        acc = [c for c in hist if c.startswith("val_") and c.endswith("accuracy")][0]
        assert row["final_val_acc"] == pytest.approx(hist[acc].iloc[-1])
        assert row["final_val_loss"] == pytest.approx(hist["val_loss"].iloc[-1])
        assert row["highest_val_acc"] == pytest.approx(hist[acc].max())
        best = hist[acc].idxmax()
        assert row["best_epoch"] == hist["epoch"][best]
        assert row["val_loss_at_highest_val_acc"] == pytest.approx(hist["val_loss"][best])
        assert row["val_loss_at_lowest_val_acc"] == \
            pytest.approx(hist["val_loss"][hist[acc].idxmin()])
    assert "lowest_val_loss" not in table and "highest_val_loss" not in table
    grid = sweeps.pivot(table, sw, "final_val_loss")
    assert grid.shape == (2, 2)
    assert list(grid.index) == [0.01, 0.001] and list(grid.columns) == [32, 64]
    assert np.isfinite(grid.to_numpy()).all()

    # comparison of two cells
    runs = [store.get(c["run_id"]) for c in sw["cells"][:2]]
    diff = sweeps.config_differences(runs)
    assert list(diff.index) == ["batch_size"]
    long = sweeps.histories(runs)
    assert set(long["run_id"]) == {r.id for r in runs}
    mt = sweeps.metrics_table(runs, "test")
    assert set(mt["split"]) == {"test"} and set(mt["dataset"]) == {"synthetic"}

    # the page renders both tabs on these runs: six heatmaps, each loss labelled as taken at
    # its accuracy's epoch, with that cell's numbers
    at = AppTest.from_file("../app_pages/compare.py", default_timeout=120).run()
    assert not at.exception, at.exception
    figs = [pio.from_json(c.proto.spec) for c in at.get("plotly_chart")]
    specs = {f.layout.title.text: f for f in figs}
    for value, title in sweeps.SUMMARY.items():
        assert title in specs, title
        z = _array(specs[title].data[0].z)
        assert np.allclose(z, sweeps.pivot(table, sw, value).to_numpy(dtype=float))
        assert specs[title].layout.height >= 300
    assert "val loss at the epoch of the highest val accuracy" in specs


def _array(v) -> np.ndarray:
    """A figure's array as the browser gets it (Plotly sends numpy arrays as base64)."""
    if isinstance(v, dict) and "bdata" in v:
        shape = [int(x) for x in str(v.get("shape", "-1")).split(",")]
        return np.frombuffer(base64.b64decode(v["bdata"]), v["dtype"]).reshape(shape)
    return np.array(v, dtype=float)


def _history(run, rows):
    for i, (loss, val_loss, val_acc) in enumerate(rows, 1):
        run.append_history({"epoch": i, "loss": loss, "val_loss": val_loss,
                            "val_accuracy": val_acc})


def test_losses_are_taken_at_the_epoch_of_the_accuracy_extremes():
    store = RunStore()
    run, _ = store.create("r1", base().canonical())
    # the lowest val loss (0.40, epoch 1) is not at the best val accuracy (0.80, epoch 3)
    _history(run, [(0.9, 0.40, 0.50), (0.7, 0.55, 0.45), (0.5, 0.60, 0.80), (0.4, 0.70, 0.80)])
    s = sweeps.run_curve_summary(run)
    assert s["highest_val_acc"] == 0.80 and s["best_epoch"] == 3  # the first of the ties
    assert s["val_loss_at_highest_val_acc"] == 0.60 and s["train_loss_at_highest_val_acc"] == 0.5
    assert s["lowest_val_acc"] == 0.45 and s["val_loss_at_lowest_val_acc"] == 0.55
    assert s["final_val_acc"] == 0.80 and s["final_val_loss"] == 0.70
    empty, _ = store.create("r2", base(lr=0.5).canonical())
    s = sweeps.run_curve_summary(empty)
    assert s["epochs"] == 0 and np.isnan(s["highest_val_acc"])


def test_a_grid_of_any_config_keys_gives_the_pages_run_ids():
    b = base()
    page = sweeps.grid(b, "lr", [0.01, 0.001], "batch_size", [8, 16])
    cells = sweeps.cells(b, {"lr": [0.01, 0.001], "batch_size": [8, 16]})
    assert [c.run_id() for _, c in cells] == [c.run_id() for c in page]
    assert cells[1][0] == {"lr": 0.01, "batch_size": 16}
    three = sweeps.cells(b, {"data.size": [16, 24], "arch": ["small_cnn", "default_cnn"],
                             "epochs": [1]})
    assert [(c.data.size, c.arch) for _, c in three] == [
        (16, "small_cnn"), (16, "default_cnn"), (24, "small_cnn"), (24, "default_cnn")]
    with pytest.raises(ConfigError, match="not a key"):
        sweeps.cells(b, {"colour": [1]})
    with pytest.raises(ConfigError, match="at least one value"):
        sweeps.cells(b, {"lr": []})
    with pytest.raises(ConfigError, match="batch size"):
        sweeps.cells(b, {"batch_size": [8, 0]})


def test_compare_page_without_runs():
    at = AppTest.from_file("../app_pages/compare.py", default_timeout=60).run()
    assert not at.exception
    assert "No runs yet" in at.info[0].value
