"""Sweeps (grid of queued runs, cached cells reused) and run comparison."""

import numpy as np
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
        assert row["lowest_val_loss"] == pytest.approx(hist["val_loss"].min())
        assert row["highest_val_acc"] == pytest.approx(hist[acc].max())
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

    # the page renders both tabs on these runs
    at = AppTest.from_file("../app_pages/compare.py", default_timeout=120).run()
    assert not at.exception, at.exception
    assert len(at.get("plotly_chart")) >= 1


def test_compare_page_without_runs():
    at = AppTest.from_file("../app_pages/compare.py", default_timeout=60).run()
    assert not at.exception
    assert "No runs yet" in at.info[0].value
