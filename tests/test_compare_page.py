"""Compare & sweep page (AppTest): runs read apart by their data options, each sweep parameter
keeps its own values, and a relaunched sweep says nothing new was queued."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from faceml.data.prepare import PrepOptions
from faceml.runs import RunStore
from faceml.config import TrainConfig
from ui.compare import run_label, sweep_message

PAGE = "../app_pages/compare.py"


def two_runs():
    """Two runs that differ only in their split seed and number of faces."""
    ids = []
    for n, seed in ((400, 0), (600, 1)):
        cfg = TrainConfig(data=PrepOptions(dataset="synthetic", dataset_options={"n": n},
                                           size=32, color="gray", seed=seed),
                          arch="small_cnn", heads=["eyewear"], epochs=1)
        run, _ = RunStore().create(cfg.run_id(), cfg.canonical())
        ids.append(run.id)
    return ids


def test_runs_differing_only_in_data_read_apart():
    a, b = two_runs()
    store = RunStore()
    la, lb = run_label(store.get(a)), run_label(store.get(b))
    assert la.startswith(a) and lb.startswith(b)
    assert "400 faces" in la and "split seed 0" in la and "32px gray" in la
    assert "600 faces" in lb and "split seed 1" in lb
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception, at.exception
    # pickers show more than bare ids
    assert set(at.multiselect(key="cmp_runs").options) == {la, lb}
    assert at.selectbox(key="sweep_base").options[-1] in (la, lb)
    caps = [c.value for c in at.caption]
    assert la in caps and lb in caps


def test_sweep_values_follow_the_parameter():
    two_runs()
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert at.text_input(key="sweep_va_lr").value == "0.003, 0.001, 0.0003"
    at.text_input(key="sweep_va_lr").set_value("0.01, 0.001").run()
    at.selectbox(key="sweep_a").set_value("epochs").run()
    assert not at.exception, at.exception
    assert at.text_input(key="sweep_va_epochs").value == ""  # not the learning rates
    at.selectbox(key="sweep_a").set_value("lr").run()
    assert at.text_input(key="sweep_va_lr").value == "0.01, 0.001"


def test_sweep_message_counts_only_new_runs():
    cells = [{"reused": True}] * 4
    msg = sweep_message({"id": "s1", "cells": cells})
    assert "queued" not in msg and "nothing new" in msg and "all 4" in msg
    msg = sweep_message({"id": "s1", "cells": [{"reused": False}] * 3 + [{"reused": True}]})
    assert "3 new run(s) queued" in msg and "1 reused" in msg
