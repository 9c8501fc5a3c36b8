"""AppTest of the Predict page: no upload, no model, a face, no face (nothing answered until
the whole photo or a box is chosen), a photo turned sideways, a tiny image, a big camera photo
(shown downscaled, as an inline data: URI), all models side by side, and every hostile or
rejected upload as an ``st.error`` in the page (never an exception) that clears the previous
photo's answers."""

from __future__ import annotations

import base64
import io
import os
import shutil

import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from photo_fixtures import canvas, jpeg
from test_predict import trained_run
from test_security import BAD, animated_gif, sixteen_bit

skd = pytest.importorskip("skimage.data")
TIMEOUT = 60


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return trained_run(tmp_path_factory)  # one tiny run for both predict test files


@pytest.fixture(autouse=True)
def _streamlit_cleaner_restored():
    """The page stops Streamlit's per-run Keras clear_session and freezes the heap for the
    whole process; other test files (in the same pytest process) get both back."""
    import gc

    from streamlit.runtime.scriptrunner import script_runner

    original = script_runner._clean_problem_modules
    yield
    script_runner._clean_problem_modules = original
    gc.unfreeze()


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


def images(at) -> list[tuple[str, str]]:
    """(url, caption) of every st.image on the page."""
    return [(i.url, i.caption) for el in at.get("image") for i in el.proto.imgs]


def shown(url: str) -> Image.Image:
    assert url.startswith("data:image/"), url[:40]
    return Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))


def answered(at) -> bool:
    md = " ".join(m.value for m in at.markdown)
    return bool(at.get("progress")) or "**eyewear**" in md or "**age**" in md


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
    # both inline (data: URIs): nothing in Streamlit's media store for another client to fetch
    (photo_url, cap), (crop_url, _) = images(at)
    assert cap.startswith("512×512 px · 1 face(s) found") and shown(photo_url).size == (512, 512)
    assert shown(crop_url).size == (128, 128)
    md = " ".join(m.value for m in at.markdown)
    assert "**eyewear**" in md and "**age**" in md and "years" in md
    assert "**expression**" in md
    assert len(at.get("progress")) == 5  # eyewear: both classes; expression: all three
    assert any("validation faces" in c.value for c in at.caption)  # the interval's note
    assert "80 % interval" in md
    assert "32×32 RGB" in str(at.get("image")[1].proto)  # the crop as the model sees it
    # the file's name was never used as a path
    assert not os.path.exists("../../etc/evil.png") and not os.path.exists("evil.png")


def test_no_face_shows_the_photo_and_answers_only_once_asked(env):
    """A plain grey photo: the message, the photo, no answer until the user chooses "the whole
    photo"; then its answers."""
    at = upload(page(), png(Image.new("RGB", (400, 300), (180, 170, 160))))
    assert not at.exception, at.exception
    assert any("No face found" in w.value for w in at.warning)
    radio = at.radio(key=[k for k in (r.key for r in at.radio) if k.startswith("pr_how_")][0])
    assert radio.options == ["the whole photo", "a box I enter"] and radio.value is None
    (url, cap), = images(at)  # the photo, and nothing else
    assert shown(url).size == (400, 300) and "no face found" in cap
    assert not answered(at) and not at.subheader and not errors(at)
    assert any("to get an answer" in i.value for i in at.info)
    radio.set_value("the whole photo").run()
    assert not at.exception, at.exception
    assert [s.value for s in at.subheader] == ["The whole photo"]
    assert answered(at) and len(images(at)) == 2


def test_no_face_then_a_box_entered_is_answered(env):
    at = upload(page(), png(Image.new("RGB", (400, 300), (180, 170, 160))))
    radio = next(r for r in at.radio if r.key.startswith("pr_how_"))
    radio.set_value("a box I enter").run()
    assert not at.exception, at.exception
    assert len(at.slider) == 4
    assert not answered(at) and not at.subheader  # sliders shown, nothing answered yet
    at.slider[2].set_value(100)
    next(b for b in at.button if b.key and b.key.startswith("pr_boxgo_")).click().run()
    assert not at.exception, at.exception
    assert [s.value for s in at.subheader] == ["Your box"]
    assert any("100×300" in c.value for c in at.caption), [c.value for c in at.caption]
    assert answered(at)
    # a box smaller than the model's input is a message, not an answer
    at.slider[2].set_value(20)
    at.slider[3].set_value(20)
    next(b for b in at.button if b.key and b.key.startswith("pr_boxgo_")).click().run()
    assert not at.exception, at.exception
    assert any("the box is 20×20 pixels" in e for e in errors(at)), errors(at)


def test_a_sideways_photo_is_answered_turned(env):
    from PIL import Image as _Image

    sideways = _Image.fromarray(skd.astronaut()).transpose(_Image.Transpose.ROTATE_90)
    at = upload(page(), jpeg(sideways, quality=95), name="phone.jpg", mime="image/jpeg")
    assert not at.exception, at.exception
    assert not errors(at), errors(at)
    assert [s.value for s in at.subheader] == ["Face 1"] and answered(at)
    (url, cap), _ = images(at)
    assert "turned a quarter turn clockwise" in cap, cap
    assert shown(url).size == (512, 512)


def test_a_tiny_image_gets_its_message(env):
    """Smaller than the model's 32×32 input (8×6, a 5000×1 strip): a message, no answer."""
    for img, size in ((Image.new("RGB", (8, 6), (10, 20, 30)), "8×6"),
                      (Image.new("L", (5000, 1), 128), "5000×1")):
        at = upload(page(), png(img))
        assert not at.exception, at.exception
        errs = errors(at)
        assert len(errs) == 1 and f"is {size} pixels, smaller than the model's 32×32" in errs[0]
        assert not answered(at) and not images(at)


def test_a_big_camera_photo_is_answered_and_shown_downscaled(env):
    """An 8000×6000 progressive JPEG (48 MP): answered, and the page gets a copy of at most
    900×560 px; the full-size photo never reaches the browser."""
    img, _ = canvas((8000, 6000), 6000)
    data = jpeg(img, progressive=True)
    at = upload(page(), data, name="camera.jpg", mime="image/jpeg")
    assert not at.exception, at.exception
    assert not errors(at), errors(at)
    assert [s.value for s in at.subheader] == ["Face 1"] and answered(at)
    (url, cap), _ = images(at)
    assert cap.startswith("8000×6000 px · 1 face(s) found")
    assert shown(url).size == (747, 560) and len(url) < 300_000


def test_a_rejected_upload_says_why_in_the_page_and_clears_the_previous_answers(env):
    at = upload(page(), png(Image.fromarray(skd.astronaut())))
    assert answered(at)
    assert any("up to 10 MB" in c.value for c in at.caption)  # what is accepted, in the page
    for data, name, mime, needle in (
            (b"%PDF-1.4 a document", "notes.pdf", "application/pdf", "not an image file"),
            (BAD["TIFF"][0], "scan.tiff", "image/tiff", "TIFF images are not accepted"),
            (b"\xff" * (11 * 1024 * 1024), "huge.jpg", "image/jpeg", "the limit is 10 MB")):
        upload(at, data, name=name, mime=mime)
        assert not at.exception, at.exception
        errs = errors(at)
        assert len(errs) == 1 and needle in errs[0], errs
        assert not answered(at) and not images(at) and not at.subheader
        upload(at, png(Image.fromarray(skd.astronaut())))
        assert answered(at) and not errors(at)


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


def test_side_by_side_models_are_chosen_and_readable(env):
    """Four models: a multiselect picks which are compared (default: the first three, bundled
    first); each model gets a third of a row (a fourth wraps to a new row), its crop at a
    readable size, and only the models chosen are shown."""
    runs, run_id, models = env
    for name in ("alpha", "beta", "gamma"):
        shutil.copy(runs / run_id / "best.keras", models / f"{name}.keras")
    at = page()
    at.selectbox(key="pr_model").set_value("All models side by side").run()
    pick = at.multiselect(key="pr_compare")
    assert pick.value == ["Bundled: alpha", "Bundled: beta", "Bundled: gamma"]
    assert len(pick.options) == 4 and any(o.startswith(f"Run {run_id}") for o in pick.options)
    upload(at, png(Image.fromarray(skd.astronaut())))
    assert not at.exception, at.exception
    assert not errors(at), errors(at)

    def names() -> list[str]:
        return [m.value[2:-2] for m in at.markdown
                if m.value.startswith("**") and m.value.endswith("**")
                and m.value[2:-2].startswith(("Bundled:", "Run "))]

    assert names() == ["Bundled: alpha", "Bundled: beta", "Bundled: gamma"]
    crops = [shown(u) for u, c in images(at) if c and c.startswith("what the model sees")]
    assert len(crops) == 3 and all(c.width >= 96 for c in crops), [c.size for c in crops]
    # no model column is narrower than a third of the page
    assert all(c.weight <= 1 / 3 + 1e-9 for c in at.columns), [c.weight for c in at.columns]

    run_label = next(o for o in pick.options if o.startswith(f"Run {run_id}"))
    at.multiselect(key="pr_compare").set_value([run_label, "Bundled: beta"]).run()
    assert not at.exception, at.exception
    assert names() == [run_label, "Bundled: beta"]
    assert len(at.get("progress")) == 10  # two models × 5 classes
    everything = [*pick.options]
    at.multiselect(key="pr_compare").set_value(everything).run()
    assert names() == everything and len(at.get("progress")) == 20  # 3 + 1 on a second row
    at.multiselect(key="pr_compare").set_value([]).run()
    assert not at.exception and not names()
    assert any("Choose at least one model" in i.value for i in at.info)


@pytest.mark.parametrize("name", [n for n in BAD if n != "zero bytes"])
def test_every_bad_upload_is_an_error_not_an_exception(env, name):
    data, needle = BAD[name]
    at = upload(page(), data, name="upload.png")
    assert not at.exception, at.exception
    errs = errors(at)
    assert len(errs) == 1 and "cannot be used" in errs[0] and needle in errs[0], errs


def test_keras_state_survives_between_runs(env):
    """Streamlit clears Keras's session after each run (TF's kernel cache with it: every upload
    would re-create the model's kernels); the app's entry point keeps it
    (ui.common.keep_keras_between_runs, called by streamlit_app.py), and loading a model
    freezes the heap out of Streamlit's post-run full collection."""
    import gc

    from keras.src.backend.common import global_state

    from ui import predict as pr
    from ui.common import keep_keras_between_runs

    keep_keras_between_runs()  # as streamlit_app.py does before any page
    pr._predictor.clear()  # loaded afresh here: the load freezes the heap
    at = upload(page(), png(Image.fromarray(skd.astronaut())))
    assert answered(at)
    tracker = global_state.GLOBAL_STATE_TRACKER
    upload(at, png(Image.fromarray(skd.astronaut()).resize((500, 500))))
    assert answered(at) and not at.exception
    assert global_state.GLOBAL_STATE_TRACKER is tracker
    assert gc.get_freeze_count() > 0  # the loaded model and libraries: out of gc's way


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
    assert len(errs) == 3, errs
    assert "empty" in errs[0] and "limit is" in errs[2]
    assert "64×16 pixels, smaller than the model's 32×32 input" in errs[1]  # the 16-bit ramp
    # the 32×32 GIF was decoded: no face in it, so it waits for the user's choice
    assert any("No face found" in w.value for w in at.warning) and not at.subheader


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
