"""Compare & sweep page (AppTest): runs read apart by their data options, each sweep parameter
keeps its own values, a relaunched sweep says nothing new was queued, and the ROC overlay's
sensitivity / specificity / F1 / AUC are scikit-learn's on each run's stored predictions."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import confusion_matrix, f1_score, recall_score, roc_auc_score
from streamlit.testing.v1 import AppTest

from faceml.data.heads import HeadSpec
from faceml.evaluation.predictions import predictions_frame

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
    # the CelebA notebook's grid: 3 learning rates x 4 batch sizes
    assert at.text_input(key="sweep_va_lr").value == "0.01, 0.001, 0.0001"
    assert at.text_input(key="sweep_vb_batch_size").value == "8, 16, 32, 64"
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


EYEWEAR = HeadSpec("eyewear", "binary", ["no", "yes"])


def runs_with_predictions(n_runs: int = 3, n: int = 80):
    """Runs whose val and test predictions are stored by hand (different skill per run): what
    training stores, without training."""
    ids = []
    for k in range(n_runs):
        cfg = TrainConfig(data=PrepOptions(dataset="synthetic", dataset_options={"n": 400},
                                           size=32, color="gray"),
                          arch="small_cnn", heads=["eyewear"], epochs=1, seed=k)
        run, _ = RunStore().create(cfg.run_id(), cfg.canonical())
        rng = np.random.default_rng(k)
        parts = []
        for split in ("val", "test"):
            y = rng.integers(0, 2, n)
            p = np.clip(0.15 * (k + 1) * y + rng.uniform(0, 1 - 0.15 * (k + 1), n), 0, 1)
            parts.append(predictions_frame([f"{split}{i}.png" for i in range(n)], [EYEWEAR],
                                           {"eyewear": y}, {"eyewear": p[:, None]}, split))
        run.write_results(pd.concat(parts, ignore_index=True), {}, [EYEWEAR])
        run.set_status(state="done")
        ids.append(run.id)
    return ids


def _sklearn_row(run, split):
    frame = run.predictions()
    f = frame[frame["split"] == split]
    y = (f["eyewear_true"] == "yes").astype(int).to_numpy()
    p = f["eyewear_prob_yes"].to_numpy()
    pred = (p >= 0.5).astype(int)
    tn, fp, fn, tp = confusion_matrix(y, pred, labels=[0, 1]).ravel()
    return {"sensitivity": recall_score(y, pred, pos_label=1),
            "specificity": recall_score(y, pred, pos_label=0),
            "f1": f1_score(y, pred, pos_label=1), "auc": roc_auc_score(y, p),
            "n": len(y), "tn": tn, "tp": tp}


@pytest.mark.parametrize("split", ["test", "val"])
def test_roc_overlay_and_rates_match_sklearn_on_the_stored_predictions(split):
    ids = runs_with_predictions()
    store = RunStore()
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception, at.exception
    at.multiselect(key="cmp_runs").set_value(ids).run()  # the user picks three runs
    if split == "val":
        at.radio(key="cmp_split").set_value("val").run()
    assert not at.exception, at.exception
    tables = [d.value for d in at.dataframe if "sensitivity" in d.value.columns]
    assert len(tables) == 1
    table = tables[0]
    assert list(table["run_id"]) == ids
    assert set(table["split"]) == {split} and set(table["dataset"]) == {"synthetic"}
    for _, row in table.iterrows():
        want = _sklearn_row(store.get(row["run_id"]), split)
        assert row["n"] == want["n"]
        for k in ("sensitivity", "specificity", "f1", "auc"):
            assert row[k] == pytest.approx(want[k], abs=1e-12), k
    assert table["auc"].nunique() == 3  # three different runs, not one repeated
    # one figure with a curve per run (plus the chance diagonal), named by the split
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    title = f"ROC of eyewear — {split} split"
    roc = [s for s in specs if title in json.dumps(s["layout"], ensure_ascii=False)]
    assert len(roc) == 1
    names = [t["name"] for t in roc[0]["data"]]
    assert names[0] == "chance" and len(names) == 4
    for rid, name in zip(ids, names[1:]):
        auc = table.set_index("run_id").loc[rid, "auc"]
        assert name == f"{rid} (AUC {auc:.3f})"
    assert any(f"stored predictions of its **{split}** split" in c.value for c in at.caption)


def test_runs_without_a_shared_binary_head_get_no_roc():
    two_runs()  # no predictions stored: no heads yet
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception, at.exception
    assert any("share no binary head" in c.value for c in at.caption)


def test_runs_without_a_test_split_default_to_val():
    """Runs trained with a test share of 0 have val metrics only: the split switch starts at
    val (test would show an empty table); a run with test metrics keeps test first."""
    ids = runs_with_predictions()
    store = RunStore()
    for rid in ids:
        store.get(rid).write_metrics({"val": {"eyewear": {"accuracy": 0.5}}})
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    at.multiselect(key="cmp_runs").set_value(ids).run()
    assert not at.exception, at.exception
    assert at.radio(key="cmp_split").value == "val"
    store.get(ids[-1]).write_metrics({"val": {"eyewear": {"accuracy": 0.5}},
                                      "test": {"eyewear": {"accuracy": 0.5}}})
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    at.multiselect(key="cmp_runs").set_value(ids).run()
    assert at.radio(key="cmp_split").value == "test"
    # choosing only runs without a test split moves the switch to val in the same session
    at.multiselect(key="cmp_runs").set_value(ids[:-1]).run()
    assert not at.exception, at.exception
    assert at.radio(key="cmp_split").value == "val"
