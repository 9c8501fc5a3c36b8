"""AppTest of the Predict page: no upload, no model, a face, no face (whole image / own box),
all models side by side, and every hostile upload as an ``st.error`` (never an exception)."""

from __future__ import annotations

import io
import os
import shutil

import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from test_predict import trained_run
from test_security import BAD, animated_gif, sixteen_bit

skd = pytest.importorskip("skimage.data")
TIMEOUT = 60


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return trained_run(tmp_path_factory)  # one tiny run for both predict test files


@pytest.fixture
def env(trained, monkeypatch, tmp_path):
    runs, run_id = trained
    monkeypatch.setenv("FACEML_RUNS_DIR", str(runs))
    models = tmp_path / "models"
    models.mkdir()
    monkeypatch.setenv("FACEML_MODELS_DIR", str(models))
    return runs, run_id, models


def page() -> AppTest:
    at = AppTest.from_file("../app_pages/predict.py", default_timeout=TIMEOUT)
    at.run()
    return at


def upload(at: AppTest, data: bytes, name: str = "photo.png", mime: str = "image/png"):
    at.file_uploader(key="pr_upload").set_value((name, data, mime)).run()
    return at


def png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def errors(at) -> list[str]:
    return [e.value for e in at.error]


def test_page_renders_with_no_upload(env):
    at = page()
    assert not at.exception, at.exception
    assert at.title[0].value == "Predict"
    assert any("No bundled model in models/ yet" in i.value for i in at.info)
    assert any(env[1] in o for o in at.selectbox(key="pr_model").options)
    assert any("Upload a photo" in i.value for i in at.info)
    assert not errors(at)


def test_page_with_no_model_says_so(env, monkeypatch, tmp_path):
    monkeypatch.setenv("FACEML_RUNS_DIR", str(tmp_path / "empty_runs"))
    at = page()
    assert not at.exception, at.exception
    assert any("no model to predict with" in w.value for w in at.warning)


def test_a_face_is_boxed_and_answered(env):
    at = upload(page(), png(Image.fromarray(skd.astronaut())), name="../../etc/evil.png")
    assert not at.exception, at.exception
    assert not errors(at), errors(at)
    assert [s.value for s in at.subheader] == ["Face 1"]
    assert len(at.get("image")) == 2  # the boxed photo and the model's crop
    md = " ".join(m.value for m in at.markdown)
    assert "**eyewear**" in md and "**age**" in md and "years" in md
    assert "**expression**" in md
    assert len(at.get("progress")) == 5  # eyewear: both classes; expression: all three
    assert any("validation faces" in c.value for c in at.caption)  # the interval's note
    assert "80 % interval" in md
    assert "32×32 RGB" in str(at.get("image")[1].proto)  # the crop as the model sees it
    # the file's name was never used as a path
    assert not os.path.exists("../../etc/evil.png") and not os.path.exists("evil.png")


def test_no_face_offers_the_whole_image_or_a_box(env):
    at = upload(page(), png(Image.new("RGB", (400, 300), (180, 170, 160))))
    assert not at.exception, at.exception
    assert any("No face found" in w.value for w in at.warning)
    radio = at.radio[-1]
    assert radio.options == ["the whole image", "a box I choose"]
    assert [s.value for s in at.subheader] == ["The whole image"]
    radio.set_value("a box I choose").run()
    assert not at.exception, at.exception
    assert len(at.slider) == 4
    at.slider[2].set_value(100).run()
    assert [s.value for s in at.subheader] == ["Your box"]
    assert any("100×300" in c.value for c in at.caption), [c.value for c in at.caption]


def test_all_models_side_by_side(env):
    runs, run_id, models = env
    shutil.copy(runs / run_id / "best.keras", models / "classroom.keras")
    at = page()
    assert not any("No bundled model" in i.value for i in at.info)
    options = at.selectbox(key="pr_model").options
    assert options[0] == "Bundled: classroom" and options[-1] == "All models side by side"
    at.selectbox(key="pr_model").set_value("All models side by side").run()
    upload(at, png(Image.fromarray(skd.astronaut())))
    assert not at.exception, at.exception
    assert not errors(at), errors(at)
    md = [m.value for m in at.markdown]
    assert "**Bundled: classroom**" in md and any(m.startswith(f"**Run {run_id}") for m in md)
    assert len(at.get("progress")) == 10  # two models × (2 eyewear + 3 expression classes)


@pytest.mark.parametrize("name", [n for n in BAD if n != "zero bytes"])
def test_every_bad_upload_is_an_error_not_an_exception(env, name):
    data, needle = BAD[name]
    at = upload(page(), data, name="upload.png")
    assert not at.exception, at.exception
    errs = errors(at)
    assert len(errs) == 1 and "cannot be used" in errs[0] and needle in errs[0], errs


def test_the_per_upload_function_takes_bytes(env):
    """ui.predict.show_prediction is the page's per-upload logic; zero bytes (which the
    uploader may never deliver) and odd but valid images go straight through it."""

    def script():
        import streamlit as st

        from ui import predict as pr

        store_choices = pr.model_choices(__import__("faceml.runs").runs.RunStore())
        predictors = pr.load_predictors(store_choices[:1])
        for data in st.session_state["cases"]:
            pr.show_prediction(data, predictors, pr.detector(), max_bytes=10 * 1024 * 1024)

    at = AppTest.from_function(script, default_timeout=TIMEOUT)
    at.session_state["cases"] = [b"", animated_gif(), sixteen_bit(), b"x" * 11 * 1024 * 1024]
    at.run()
    assert not at.exception, at.exception
    errs = errors(at)
    assert len(errs) == 2 and "empty" in errs[0] and "limit is" in errs[1], errs
    # the GIF and the 16-bit image were decoded: no face in either, so the whole image answers
    assert [s.value for s in at.subheader] == ["The whole image", "The whole image"]


def test_odd_shapes_are_answered(env):
    """A 5000×1 strip (no face, no room for a box) and a tiny 3×3 image: the whole image is
    answered, nothing breaks."""
    for img in (Image.new("L", (5000, 1), 128), Image.new("RGB", (3, 3), (10, 20, 30))):
        at = upload(page(), png(img))
        assert not at.exception, at.exception
        assert not errors(at), errors(at)
        assert [s.value for s in at.subheader] == ["The whole image"]


def test_a_damaged_model_is_an_error_and_other_models_still_work(env, tmp_path, monkeypatch):
    runs, run_id, _ = env
    store = tmp_path / "runs"
    shutil.copytree(runs / run_id, store / run_id)
    shutil.copytree(runs / run_id, store / "damaged0001")
    (store / "damaged0001" / "best.keras").write_bytes(b"PK\x03\x04 not really a zip")
    monkeypatch.setenv("FACEML_RUNS_DIR", str(store))
    at = page()
    options = at.selectbox(key="pr_model").options
    damaged = next(o for o in options if "damaged0001" in o)
    at.selectbox(key="pr_model").set_value(damaged).run()
    assert not at.exception, at.exception
    assert any("could not be loaded" in e or "not a Keras model" in e for e in errors(at)), \
        errors(at)
    good = next(o for o in options if run_id in o)
    at.selectbox(key="pr_model").set_value(good).run()
    assert not at.exception and not errors(at)
    assert any("Upload a photo" in i.value for i in at.info)
