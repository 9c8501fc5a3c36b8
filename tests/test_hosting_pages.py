"""Every page of a hosted copy, as a stranger sees it: no path input, caps shown, no control
over another visitor's runs, a huge model refused with a message (Streamlit AppTest)."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from faceml.training import jobs
from faceml.runs import RunStore
from tests.fixtures_formats import make_folder, make_utkface
from tests.test_hosting import HUGE

TIMEOUT = 120
PAGES = ["app_pages/data.py", "app_pages/train.py", "app_pages/evaluate.py",
         "app_pages/compare.py", "app_pages/vae.py", "app_pages/predict.py"]


@pytest.fixture
def hosted(tmp_path, monkeypatch):
    utk = make_utkface(tmp_path / "srv" / "utkface", n=12)
    make_folder(tmp_path / "private" / "celebs", n=3)
    cfg = tmp_path / "hosting.toml"
    cfg.write_text(f'[datasets]\nsynthetic = ""\nutkface = "{utk}"\n\n[caps]\nepochs = 4\n'
                   "faces = 600\nparams = 3000000\n")
    monkeypatch.setenv("FACEML_HOSTED", "1")
    monkeypatch.setenv("FACEML_HOSTING_CONFIG", str(cfg))
    monkeypatch.setenv("FACEML_SHARED_DATA", str(tmp_path / "empty"))
    monkeypatch.setattr(jobs, "ensure_worker", lambda store=None: None)  # nothing trains here
    return utk


def visitor(page: str | None = None, run: str | None = None) -> AppTest:
    at = AppTest.from_file("../streamlit_app.py", default_timeout=TIMEOUT)
    at.session_state["syn_n"] = 400
    at.session_state["size"] = 16
    at.session_state["color"] = "gray"
    if run:
        at.query_params["run"] = run
    at.run()
    if page:
        at.switch_page(page).run()
    return at


def path_inputs(at) -> list[str]:
    return [t.label for t in at.text_input if "path" in t.label.lower()]


@pytest.mark.parametrize("page", PAGES)
def test_no_page_has_a_path_input_for_any_dataset(hosted, page):
    at = visitor(page)
    assert not at.exception, at.exception
    assert not path_inputs(at)
    choices = at.selectbox(key="dataset").options if page in PAGES[:2] else []
    for choice in choices:
        at.selectbox(key="dataset").set_value(choice.split(" — ")[0]).run()
        assert not at.exception, at.exception
        assert not path_inputs(at), choice
    if choices:
        assert [c.split(" — ")[0] for c in choices] == ["synthetic", "utkface"]
    assert str(hosted) not in "".join(str(e.value) for e in at.error)


def test_the_data_page_reads_the_operators_dataset_and_caps_faces(hosted):
    at = visitor()
    at.selectbox(key="dataset").set_value("utkface").run()
    assert not at.exception, at.exception
    assert {m.label: m.value for m in at.metric}["Faces"] == "12"
    assert at.number_input  # the synthetic face count is gone for utkface; back to synthetic:
    at.selectbox(key="dataset").set_value("synthetic").run()
    assert at.number_input(key="syn_n").max == 600


def test_train_page_shows_the_caps_and_refuses_a_huge_model_with_a_message(hosted):
    import json

    at = visitor("app_pages/train.py")
    assert not at.exception, at.exception
    assert at.number_input(key="epochs").max == 4
    assert any("at most 4 epochs" in c.value for c in at.caption)
    at.selectbox(key="arch").set_value("custom").run()
    at.text_area(key="custom_json").set_value(json.dumps(HUGE)).run()
    assert not at.exception, at.exception
    assert any("this server trains models of at most 3,000,000" in e.value
               for e in at.error), [e.value for e in at.error]
    assert at.button(key="launch").disabled
    assert RunStore().list() == []


def test_visitor_b_cannot_stop_visitor_a_run_and_a_stopped_run_relaunches(hosted):
    a = visitor("app_pages/train.py")
    a.selectbox(key="arch").set_value("small_cnn").run()
    a.number_input(key="epochs").set_value(1).run()
    a.button(key="launch").click().run()
    assert not a.exception, a.exception
    (run,) = RunStore().list()
    assert any(b.key == f"stop_{run.id}" for b in a.button)  # A may stop its own run

    b = visitor("app_pages/train.py", run=run.id)
    assert not b.exception, b.exception
    assert any(run.id in m.value for m in b.markdown)  # B sees the run ...
    assert not any(x.key == f"stop_{run.id}" for x in b.button)  # ... but has no Stop
    assert any("another visitor" in c.value for c in b.caption)
    with pytest.raises(jobs.FaceMLError):
        jobs.stop(run, b.session_state["_visitor"])
    assert run.status()["state"] == "queued"

    a.button(key=f"stop_{run.id}").click().run()
    assert run.status()["state"] == "stopped"
    assert not any(x.key == f"resume_{run.id}" for x in a.button)  # hosted: no Resume ...
    b.run()
    b.selectbox(key="arch").set_value("small_cnn").run()
    b.number_input(key="epochs").set_value(1).run()
    b.button(key="launch").click().run()  # ... but no dead end: B launches it again
    assert not b.exception, b.exception
    assert run.status()["state"] == "queued"
    b.run()
    assert any(x.key == f"stop_{run.id}" for x in b.button)  # now it is B's
