"""Recipes page (AppTest): grouped by notebook with each recipe's counts; the comparison table
puts a run's own figure beside the notebook's claim and the corrected one, with a link to
Evaluate; Launch queues the recipe's run with the page's overrides; "Fill the Train form"
opens Train holding the recipe (Launch there gives the same run id); hosted: no path box."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from faceml.runs import RunStore
from faceml.training import jobs, recipes
from tests.fixtures_formats import make_fairface

TIMEOUT = 120
PAGE = "app_pages/recipes.py"


@pytest.fixture(autouse=True)
def no_worker(monkeypatch):
    monkeypatch.setattr(jobs, "ensure_worker", lambda store=None: None)  # nothing trains here


def page() -> AppTest:
    at = AppTest.from_file("../streamlit_app.py", default_timeout=TIMEOUT)
    at.run()
    at.switch_page(PAGE).run()
    assert not at.exception, at.exception
    return at


def box(at, name: str):
    return next(e for e in at.expander if e.label.startswith(f"**{name}**"))


def table_of(at, name: str):
    return box(at, name).dataframe[0].value


def test_grouped_by_notebook_with_counts():
    at = page()
    assert at.title[0].value == "Recipes"
    assert [t.label for t in at.tabs] == ["FairFace", "UTKFace CSV", "UTKFace", "CelebA",
                                          "Class-per-folder gender"]
    assert len(at.expander) == len(recipes.RECIPES)
    text = " ".join(m.value for m in box(at, "utk128-vgg16-gender").markdown)
    assert "**14,846,273** total, **131,585** trainable" in text
    t = table_of(at, "fairface-mlp-age")
    assert list(t["notebook's claim"]) == ["0.830"] and list(t["corrected"]) == ["0.360"]
    assert list(t["ours"]) == ["—"] and list(t["run"]) == ["no run yet"]


def test_ours_fills_from_a_matching_run_and_links_to_evaluate():
    r = recipes.get("fairface-mlp-gender")
    cfg = r.config(epochs=1, split=[0.8, 0.1, 0.1])
    run, _ = RunStore().create(cfg.run_id(), cfg.canonical())
    run.write_metrics({"val": {"n": 10, "heads": {"gender": {"accuracy": 0.6875}}}})
    run.set_status(state="done")
    other = r.config()
    other.lr = 0.5  # not this recipe
    RunStore().create(other.run_id(), other.canonical())
    at = page()
    t = table_of(at, "fairface-mlp-gender")
    assert len(t) == 1
    row = t.iloc[0]
    assert (row["notebook's claim"], row["corrected"], row["ours"]) == ("0.716", "—", "0.688")
    assert row["run"] == f"{run.id} (done)"
    assert row["overrides"] == "epochs 1, split 0.8,0.1,0.1 (carve validation)"
    links = [m.value for m in box(at, "fairface-mlp-gender").markdown]
    assert any(f"(/evaluate?run={run.id})" in v for v in links)


def test_launch_queues_the_recipe_with_the_overrides(tmp_path):
    root = make_fairface(tmp_path / "ff", n=12, n_val=4)
    at = page()
    at.text_input(key="recipe_path_fairface").set_value(str(root)).run()
    at.number_input(key="recipe_epochs_fairface").set_value(1).run()
    at.button(key="launch_fairface-small-cnn-gender").click().run()
    assert not at.exception, at.exception
    want = recipes.get("fairface-small-cnn-gender").config(path=str(root), epochs=1)
    assert [r.id for r in RunStore().list()] == [want.run_id()]
    assert any(want.run_id() in s.value for s in at.success)
    assert table_of(at, "fairface-small-cnn-gender").iloc[0]["run"] == \
        f"{want.run_id()} (queued)"


def test_launch_without_the_data_says_where_and_queues_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEML_SHARED_DATA", str(tmp_path / "none"))
    at = page()
    at.button(key="launch_utk-csv-gender").click().run()
    assert not at.exception
    errs = [e.value for e in at.error]
    assert any("utkface-csv dataset is not on disk" in e and "location box" in e for e in errs)
    root = make_fairface(tmp_path / "ff", n=12, n_val=4)
    (root / "fairface_label_val.csv").unlink()
    at.text_input(key="recipe_path_fairface").set_value(str(root)).run()
    at.button(key="launch_fairface-mlp-gender").click().run()
    assert any("Carve validation from train" in e.value for e in at.error)
    assert not RunStore().list()


def test_fill_the_train_form_opens_train_with_the_recipe(tmp_path):
    root = make_fairface(tmp_path / "ff", n=12, n_val=4)
    at = page()
    at.text_input(key="recipe_path_fairface").set_value(str(root)).run()
    at.button(key="fill_fairface-own-cnn-gender").click().run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Train"
    assert at.session_state["arch"] == "own_cnn" and at.session_state["size"] == 32
    assert at.session_state["scaling"] == "minmax" and at.session_state["holdout"] == "official"
    # AppTest's next run() goes back to the page it was switched to; the browser stays on Train
    at.switch_page("app_pages/train.py").run()
    at.button(key="launch").click().run()
    assert not at.exception, at.exception
    want = recipes.get("fairface-own-cnn-gender").config(path=str(root))
    assert [r.id for r in RunStore().list()] == [want.run_id()]


def test_hosted_shows_no_path_box(tmp_path, monkeypatch):
    cfg = tmp_path / "hosting.toml"
    cfg.write_text('[datasets]\nsynthetic = ""\n\n[caps]\nepochs = 4\n')
    monkeypatch.setenv("FACEML_HOSTED", "1")
    monkeypatch.setenv("FACEML_HOSTING_CONFIG", str(cfg))
    at = page()
    assert not [t for t in at.text_input if t.key.startswith("recipe_path")]
    at.button(key="launch_fairface-mlp-gender").click().run()
    assert not at.exception and at.error and not RunStore().list()
