"""AppTest of the VAE studio page with a tiny VAE (and a tiny classifier) trained in-process,
plus the page's helpers in ui/vae.py."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from faceml.data.heads import HeadSpec
from faceml.data.prepare import PrepOptions
from faceml.runs import RunStore
from faceml.config import TrainConfig
from faceml.training.engine import train_run
from ui import vae as uv

TIMEOUT = 120
LATENT = 3
TAB = {"recon": 0, "prior": 1, "sliders": 2, "traversal": 3, "interp": 4, "map": 5}


def _data() -> PrepOptions:
    return PrepOptions(dataset="synthetic", dataset_options={"n": 200}, size=16, color="gray")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished tiny VAE and a finished tiny classifier on the same data, in one run store."""
    root = tmp_path_factory.mktemp("vae_page")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FACEML_RUNS_DIR", str(root / "runs"))
        mp.setenv("FACEML_CACHE_DIR", str(root / "cache"))
        store = RunStore()
        out = {}
        for name, cfg in {
            "vae": TrainConfig(data=_data(), arch="vae", epochs=3, batch_size=32, lr=3e-3,
                               arch_params={"latent_dim": LATENT, "filters": [8, 16],
                                            "hidden": 32, "beta": 0.05}),
            "clf": TrainConfig(data=_data(), arch="small_cnn", heads=["eyewear", "expression"],
                               epochs=1, batch_size=32),
        }.items():
            run, _ = store.create(cfg.run_id(), cfg.canonical())
            status = train_run(run)
            assert status["state"] == "done", status
            out[name] = run.id
    return root / "runs", out


@pytest.fixture
def runs(trained, monkeypatch):
    root, ids = trained
    monkeypatch.setenv("FACEML_RUNS_DIR", str(root))
    return ids


def page(run: str | None = None) -> AppTest:
    at = AppTest.from_file("../app_pages/vae.py", default_timeout=TIMEOUT)
    if run:
        at.query_params["run"] = run
    at.run()
    return at


def decoded(at) -> str:
    [img] = [i for i in at.tabs[TAB["sliders"]].image if i.captions == ["Decoded face"]]
    return img.value[0]


def n_images(block) -> int:
    return sum(len(i.value) for i in block.image)


# --------------------------------------------------------------------------- the page

def test_page_shows_everything_for_a_vae_run(runs):
    at = page()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert at.title[0].value == "VAE studio"
    metrics = {m.label: m.value for m in at.metric}
    assert float(metrics["Reconstruction MSE (val)"]) < float(metrics["Mean-image MSE"]) * 2
    assert metrics["Latent size"] == str(LATENT)
    # reconstructions: a row of originals and a row of reconstructions, 12 each
    rec = at.tabs[TAB["recon"]].image
    assert [len(i.value) for i in rec] == [12, 12]
    assert all(c.startswith("mse ") for c in rec[1].captions)
    # random faces from the prior, and a reseed that changes them
    prior = at.tabs[TAB["prior"]].image
    assert len(prior) == 1 and len(prior[0].value) == 12
    before = prior[0].value
    at.button(key="vae_reseed").click().run()
    assert at.tabs[TAB["prior"]].image[0].value != before
    # one slider per latent dimension
    keys = {s.key for s in at.slider}
    assert {f"vae_z_{runs['vae']}_{i}" for i in range(LATENT)} <= keys
    # traversal: latent x 7 cells
    trav = at.tabs[TAB["traversal"]].image
    assert [len(i.value) for i in trav] == [7] * LATENT
    # interpolation: the gallery, then A + 8 steps + B
    interp = at.tabs[TAB["interp"]].image
    assert len(interp[-1].value) == 10
    # the latent map
    assert len(at.tabs[TAB["map"]].get("plotly_chart")) == 1


def test_moving_a_slider_changes_the_decoded_face(runs):
    at = page(runs["vae"])
    assert not at.exception, at.exception
    start = decoded(at)
    key = f"vae_z_{runs['vae']}_0"
    at.slider(key=key).set_value(3.0).run()
    assert not at.exception, at.exception
    moved = decoded(at)
    assert moved != start
    at.slider(key=key).set_value(0.0).run()
    assert decoded(at) == start  # deterministic: back to the same face
    # starting from a face sets every slider to its mu
    at.number_input(key="vae_start_face").set_value(2).run()
    at.button(key="vae_from_face").click().run()
    values = [at.slider(key=f"vae_z_{runs['vae']}_{i}").value for i in range(LATENT)]
    assert any(abs(v) > 0 for v in values)
    assert all(-3 <= v <= 3 for v in values)


def test_attribute_direction_and_classifier_prediction(runs):
    at = page(runs["vae"])
    assert at.selectbox(key="vae_attr_label").value in ("age", "expression", "eyewear")
    at.selectbox(key="vae_attr_label").set_value("expression").run()
    assert not at.exception, at.exception
    start = decoded(at)
    at.slider(key=f"vae_alpha_{runs['vae']}").set_value(2.0).run()
    assert not at.exception, at.exception
    assert decoded(at) != start
    assert len(at.tabs[TAB["sliders"]].image[-1].value) == 7  # the α strip
    # age in years: a threshold splits old from young
    at.selectbox(key="vae_attr_label").set_value("age").run()
    assert not at.exception, at.exception
    assert at.number_input(key="vae_thr_age").value > 0
    # the classifier on the same data predicts the decoded face live
    assert at.selectbox(key="vae_clf").value == runs["clf"]
    text = " ".join(m.value for m in at.tabs[TAB["sliders"]].markdown)
    assert "**eyewear**" in text and "**expression**" in text


def test_a_classifier_run_gets_a_clear_message(runs):
    at = page(runs["clf"])
    assert not at.exception, at.exception
    msg = f"run {runs['clf']} is a classifier, not a VAE: train one with Architecture = vae " \
          "on the Train page"
    assert any(msg in w.value for w in at.warning), [w.value for w in at.warning]
    assert at.selectbox(key="vae_run").value == runs["vae"]  # the VAE is still offered


def test_only_a_classifier_is_an_error(trained, tmp_path, monkeypatch):
    root, ids = trained
    shutil.copytree(root / ids["clf"], tmp_path / ids["clf"])
    monkeypatch.setenv("FACEML_RUNS_DIR", str(tmp_path))
    at = page(ids["clf"])
    assert not at.exception, at.exception
    assert any("is a classifier, not a VAE" in e.value for e in at.error)
    assert any("Architecture = vae" in i.value and "Train page" in i.value for i in at.info)


def test_no_runs_points_to_the_train_page():
    at = page()
    assert not at.exception, at.exception
    assert any("no finished VAE run" in i.value and "Architecture = vae" in i.value
               for i in at.info), [i.value for i in at.info]
    at = page("nope123")
    assert any("no run 'nope123'" in e.value for e in at.error)


# --------------------------------------------------------------------------- helpers

def test_vae_and_classifier_run_lists(runs):
    store = RunStore()
    assert [r.id for r in uv.vae_runs(store)] == [runs["vae"]]
    clfs = uv.classifiers_for(store, _data().canonical())
    assert [r.id for r in clfs] == [runs["clf"]]
    other = {**_data().canonical(), "size": 32}
    assert uv.classifiers_for(store, other) == []
    key = uv.model_key(store.get(runs["vae"]))
    assert key[0].endswith(runs["vae"]) and runs["vae"] in key[1]  # the best.keras version


def test_attribute_labels_categorical_and_threshold():
    assert list(uv.attribute_labels(pd.Series(["a", "b", "a"]))) == ["a", "b", "a"]
    out = uv.attribute_labels(pd.Series([10.0, 40.0, 70.0, np.nan]), 40)
    assert list(out) == ["< 40", "≥ 40", "≥ 40", "unknown"]
    assert uv.threshold_classes(40) == ("< 40", "≥ 40")


def test_dim_kl_and_slider_dims():
    mu = np.array([[0.0, 2.0], [0.0, -2.0]])
    lv = np.zeros_like(mu)
    kl = uv.dim_kl(mu, lv)
    assert kl[0] == pytest.approx(0.0) and kl[1] == pytest.approx(2.0)
    assert uv.slider_dims(np.arange(5.0)) == [0, 1, 2, 3, 4]
    assert uv.slider_dims(np.array([0.1, 5, 0.2, 3]), limit=2) == [1, 3]
    assert uv.clip_z([5.0, -0.123, -9]) == [3.0, -0.12, -3.0]


def test_spread_subset_covers_the_map():
    rng = np.random.default_rng(0)
    xy = np.vstack([rng.normal(0, 0.01, (500, 2)), [[10.0, 10.0]], [[-10.0, 10.0]]])
    pick = uv.spread_subset(xy, 16)
    assert len(pick) <= 16 and len(set(pick)) == len(pick)
    assert {500, 501} <= set(pick)  # the lonely corners are shown, not only the crowd
    assert len(uv.spread_subset(xy[:0], 16)) == 0


def test_selected_index_reads_customdata():
    assert uv.selected_index({"selection": {"points": [{"customdata": [7], "x": 1}]}}) == 7
    assert uv.selected_index({"selection": {"points": [{"customdata": 3}]}}) == 3
    assert uv.selected_index({"selection": {"points": []}}) is None
    assert uv.selected_index(None) is None


def test_describe_outputs_and_pictures():
    heads = [HeadSpec("eyewear", "binary", ["none", "glasses"]),
             HeadSpec("expression", "multiclass", ["neutral", "smiling", "frowning"]),
             HeadSpec("age", "regression")]
    lines = uv.describe_outputs({"eyewear": np.array([0.2]), "expression": np.array([.1, .7, .2]),
                                 "age": np.array([41.26])}, heads)
    assert lines == ["**eyewear**: none (80%)", "**expression**: smiling (70%)", "**age** ≈ 41.3"]
    gray = np.zeros((4, 4, 1), np.uint8)
    assert uv.to_display(gray).shape == (4, 4)
    assert uv.to_display(np.zeros((4, 4, 3), np.uint8)).shape == (4, 4, 3)
    assert uv.data_uri(gray).startswith("data:image/png;base64,")
    row = pd.Series({"expression": "smiling", "age": "30-39", "age_years": 34.0})
    assert uv.face_caption(row, ["expression", "age", "age_years"]) == "smiling · 30-39"
    assert uv.face_caption(pd.Series({"age": 34.0}), ["age"]) == "34y"


def test_label_columns_add_years_only_for_binned_age():
    labels = {"age": None, "expression": None}
    years = pd.DataFrame({"age": [3.0, 40.0], "expression": ["a", "b"], "age_years": [3.0, 40.0]})
    assert uv.label_columns(years, labels) == ["age", "expression"]
    binned = years.assign(age=["0-9", "40-49"])
    assert uv.label_columns(binned, labels) == ["age", "expression", "age_years"]


def test_sample_faces_is_seeded_sorted_and_bounded():
    a = uv.sample_faces(100, 12, seed=3)
    assert len(a) == 12 and len(set(a)) == 12 and list(a) == sorted(a)
    assert list(a) == list(uv.sample_faces(100, 12, seed=3))
    assert list(a) != list(uv.sample_faces(100, 12, seed=4))
    assert list(uv.sample_faces(5, 12)) == [0, 1, 2, 3, 4]
    assert len(uv.sample_faces(0, 12)) == 0
