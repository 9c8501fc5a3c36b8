"""Streamlit AppTest of the Data and Train pages (in-process; the browser flows are in
tests/browser)."""

import pytest
from streamlit.testing.v1 import AppTest

from faceml.training import jobs
from faceml.runs import RunStore

TIMEOUT = 120


def app(page: str | None = None) -> AppTest:
    at = AppTest.from_file("../streamlit_app.py", default_timeout=TIMEOUT)
    at.session_state["syn_n"] = 400
    at.session_state["size"] = 32
    at.run()
    if page:
        at.switch_page(page).run()
    return at


def errors(at) -> list[str]:
    return [e.value for e in at.error]


def test_data_page_on_synthetic():
    at = app()
    assert not at.exception, at.exception
    assert at.title[0].value == "Data"
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Faces"] == "400"
    assert int(metrics["train"]) + int(metrics["val"]) + int(metrics["test"]) == 400
    subheaders = [s.value for s in at.subheader]
    assert {"Classes per split", "Age", "Sample", "Skipped files"} <= set(subheaders)
    assert len(at.get("plotly_chart")) >= 3  # expression, eyewear, age histogram
    assert len(at.get("image")) == 24  # the sample grid


def test_data_page_bad_path_is_an_error_not_a_traceback(tmp_path):
    at = app()
    at.selectbox(key="dataset").set_value("utkface").run()
    at.text_input(key="path_utkface").set_value(str(tmp_path / "nowhere")).run()
    assert not at.exception
    assert any("does not exist" in e for e in errors(at))
    empty = tmp_path / "empty"
    empty.mkdir()
    at.text_input(key="path_utkface").set_value(str(empty)).run()
    assert not at.exception
    assert any("no images" in e.lower() for e in errors(at)), errors(at)


def test_data_page_reports_skipped_files(tmp_path):
    from fixtures_formats import make_utkface

    make_utkface(tmp_path / "utk", 30)
    (tmp_path / "utk" / "notes.txt").write_text("not a face")
    (tmp_path / "utk" / "3_1_20170116174525125.jpg.chip.jpg").write_bytes(b"\xff\xd8broken")
    at = app()
    at.selectbox(key="dataset").set_value("utkface").run()
    at.text_input(key="path_utkface").set_value(str(tmp_path / "utk")).run()
    assert not at.exception, at.exception
    skipped = at.dataframe[-1].value
    assert "3_1_20170116174525125.jpg.chip.jpg" in set(skipped["source"])


def test_train_page_bad_hyperparameters_are_errors():
    at = app("app_pages/train.py")
    assert not at.exception, at.exception
    at.number_input(key="lr").set_value(0.0).run()
    assert any("learning rate must be > 0" in e for e in errors(at))
    at.number_input(key="lr").set_value(0.001)
    at.number_input(key="batch").set_value(0).run()
    assert any("batch size must be at least 1" in e for e in errors(at))
    at.number_input(key="batch").set_value(32)
    at.number_input(key="epochs").set_value(0).run()
    assert any("epochs must be at least 1" in e for e in errors(at))
    at.number_input(key="epochs").set_value(2)
    at.selectbox(key="arch").set_value("vgg16").run()
    at.radio(key="color").set_value("gray").run()
    assert any("RGB" in e for e in errors(at)), errors(at)
    assert not at.exception


def test_train_page_launches_a_background_run_and_shows_it():
    at = app("app_pages/train.py")
    at.selectbox(key="arch").set_value("small_cnn").run()
    at.number_input(key="epochs").set_value(1).run()
    assert not errors(at), errors(at)
    at.button(key="launch").click().run()
    assert not at.exception, at.exception
    store = RunStore()
    runs = store.list()
    assert len(runs) == 1
    run = runs[0]
    assert at.query_params["run"] == [run.id] or at.query_params["run"] == run.id
    assert any(run.id in m.value for m in at.markdown)
    st = jobs.wait(run, timeout=180)
    assert st["state"] == "done", st.get("reason")
    # launching the same configuration again shows the cached run, no new one
    at.button(key="launch").click().run()
    assert len(store.list()) == 1
    assert any("already ran" in i.value for i in at.info)
    # the finished run's curves are drawn; the note stays over later reruns
    at.run()
    assert len(at.get("plotly_chart")) >= 1
    assert any("already ran" in i.value for i in at.info)
    # until the form no longer shows that run's configuration
    at.number_input(key="epochs").set_value(2).run()
    assert not any("already ran" in i.value for i in at.info)


@pytest.mark.parametrize("page", ["app_pages/data.py", "app_pages/train.py"])
def test_every_page_renders(page):
    at = app(page)
    assert not at.exception, at.exception


def test_dataset_choices_survive_a_page_switch():
    at = app()
    at.selectbox(key="dataset").set_value("utkface").run()
    at.text_input(key="path_utkface").set_value("/somewhere/else").run()
    at.switch_page("app_pages/compare.py").run()
    at.switch_page("app_pages/data.py").run()
    assert at.selectbox(key="dataset").value == "utkface"
    assert at.text_input(key="path_utkface").value == "/somewhere/else"
    assert not at.exception


def test_hosted_mode_limits(monkeypatch, tmp_path):
    monkeypatch.setenv("FACEML_HOSTED", "1")
    monkeypatch.setenv("FACEML_SHARED_DATA", str(tmp_path))  # no real dataset on this "server"
    at = app()
    shown = [o.split(" — ")[0] for o in at.selectbox(key="dataset").options]
    assert "synthetic" in shown
    assert not {"utkface", "utkface-csv", "fairface", "celeba", "folder"} & set(shown)
    assert at.number_input(key="syn_n").max == 5000
    at.switch_page("app_pages/train.py").run()
    assert not at.exception
    assert at.number_input(key="epochs").max == 20
    at.switch_page("app_pages/compare.py").run()
    assert not at.exception


def test_data_sample_rows_each_have_their_own_columns():
    """Faces are laid out one row of 8 columns at a time, so a caption that wraps never
    staggers the faces under it (24 faces: 3 rows, each face alone in its column)."""
    at = app()
    assert not at.exception, at.exception
    with_face = [c for c in at.columns
                 if [type(e).__name__ for e in c.children.values()] == ["Image"]]
    assert len(with_face) == 24, len(with_face)


def test_data_sample_captions_are_short_lines():
    """Each sample face's caption is one short line a label (no caption wraps under an image
    an eighth of the page wide), and every face of a row has as many lines."""
    from ui.common import CAPTION_CHARS

    at = app()
    assert not at.exception, at.exception
    caps = [i.caption for el in at.get("image") for i in el.proto.imgs]
    assert len(caps) == 24
    lines = [c.split("  \n") for c in caps]
    assert all(len(ls) == 3 for ls in lines), caps  # age, expression, eyewear
    assert all(0 < len(line) <= CAPTION_CHARS for ls in lines for line in ls), caps
    assert all(ls[0].isdigit() for ls in lines), caps  # an age in years: "34", not "34.0"


def test_sample_caption_shortens_and_names_yes_no_attributes():
    from ui.common import sample_caption

    yes_no = ("no", "yes")
    assert sample_caption({"age": 34.0, "race": "Latino_Hispanic"}, {"race": ("White",)},
                          chars=11) == "34  \nLatino His…"
    classes = {a: yes_no for a in ("Smiling", "Wearing_Lipstick", "Bald", "Young")}
    assert sample_caption({"gender": "Female", "Smiling": "yes", "Bald": "no",
                           "Wearing_Lipstick": "yes", "Young": "yes"}, classes, chars=11,
                          lines=3) == "Female  \nSmiling  \n+2 more"
    assert sample_caption({"Bald": "no"}, classes) == "—"
