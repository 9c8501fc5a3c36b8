"""faceml.serving.detect and faceml.serving.predict: faces found, crops exactly as the model sees
them, stable
answers, EXIF orientation, intervals and rare-group warnings, and the ``predict`` CLI."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from faceml.cli import main
from faceml.data.imageio import to_pixels
from faceml.serving.detect import FaceDetector
from faceml.errors import DataError, FaceMLError
from faceml.data.heads import HeadSpec
from faceml.serving.predict import (Predictor, Reference, predict_all, predict_box, predict_faces,
                                    read_upload)

skd = pytest.importorskip("skimage.data")
ROOT = Path(__file__).resolve().parents[1]
# the astronaut's face in skimage.data.astronaut() (512×512), by eye: x 175–275, y 65–190
ASTRO_FACE = (175, 65, 275, 190)


# --- fixtures -------------------------------------------------------------------------------------

_TRAINED: dict = {}


def trained_run(tmp_path_factory) -> tuple[Path, str]:
    """A tiny run (synthetic, 32 px RGB, binary + multiclass + age heads), trained once per
    test session and shared with test_predict_page.py (training is the slow part)."""
    if "run" in _TRAINED:
        return _TRAINED["run"]
    import os

    from faceml.data.prepare import PrepOptions
    from faceml.runs import RunStore
    from faceml.config import TrainConfig
    from faceml.training.engine import train_run

    base = tmp_path_factory.mktemp("predict_store")
    old = {k: os.environ.get(k) for k in ("FACEML_RUNS_DIR", "FACEML_CACHE_DIR")}
    os.environ["FACEML_RUNS_DIR"] = str(base / "runs")
    os.environ["FACEML_CACHE_DIR"] = str(base / "cache")
    try:
        cfg = TrainConfig(data=PrepOptions(dataset="synthetic", dataset_options={"n": 200},
                                           size=32, color="rgb"),
                          arch="small_cnn", heads=["eyewear", "expression", "age"], epochs=1,
                          batch_size=32)
        run, _ = RunStore().create(cfg.run_id(), cfg.canonical())
        st = train_run(run)
        assert st["state"] == "done", st
    finally:
        for k, v in old.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    _TRAINED["run"] = (base / "runs", run.id)
    return _TRAINED["run"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return trained_run(tmp_path_factory)


@pytest.fixture
def store(trained, monkeypatch, tmp_path):
    runs, run_id = trained
    monkeypatch.setenv("FACEML_RUNS_DIR", str(runs))
    monkeypatch.setenv("FACEML_MODELS_DIR", str(tmp_path / "no_models"))
    return runs, run_id


@pytest.fixture
def predictor(store):
    from faceml.runs import RunStore

    return Predictor.from_run(RunStore().get(store[1]))


@pytest.fixture(scope="module")
def detector():
    return FaceDetector()


@pytest.fixture(scope="module")
def astronaut() -> Image.Image:
    return Image.fromarray(skd.astronaut())


def png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def gray_model():
    """An untrained gray 24 px model with a binary head (shapes and preprocessing only)."""
    from faceml.modeling import architectures

    return architectures.build("small_cnn", image_size=24, color="gray",
                               heads=[HeadSpec("gender", "binary", ["male", "female"])],
                               mean=(100.0,), std=(50.0,))


def inside(box, region) -> bool:
    x, y, w, h = box
    cx, cy = x + w / 2, y + h / 2
    return region[0] <= cx <= region[2] and region[1] <= cy <= region[3]


# --- detection ------------------------------------------------------------------------------------

def test_a_face_is_found_on_the_astronaut(detector, astronaut):
    dets = detector.detect(astronaut)
    assert len(dets) == 1
    d = dets[0]
    assert inside(d.raw_box, ASTRO_FACE) and not d.weak and d.score >= 15
    x, y, w, h = d.box
    assert w == h and x >= 0 and y >= 0 and x + w <= 512 and y + h <= 512
    # the crop is the detector's box moved down by 9 % of its side (UTKFace-like)
    assert abs(w - d.raw_box[2]) <= 1 and y - d.raw_box[1] == pytest.approx(0.09 * w, abs=1.5)


def test_boxes_are_in_original_pixels_after_downscaling(detector, astronaut):
    """The same face pasted into a 1600×1200 canvas at an offset: the box moves with it."""
    canvas = Image.new("RGB", (1600, 1200), (90, 90, 90))
    big = astronaut.resize((1024, 1024))
    canvas.paste(big, (400, 100))
    dets = detector.detect(canvas)
    assert len(dets) == 1
    x, y, w, h = dets[0].raw_box
    fx0, fy0, fx1, fy1 = (v * 2 for v in ASTRO_FACE)
    assert inside((x - 400, y - 100, w, h), (fx0, fy0, fx1, fy1))
    assert 150 <= w <= 260  # the face is about 200 px wide at this scale


def test_second_pass_finds_a_small_face(astronaut):
    """A face about 6 % of a 2000 px photo is below the 256 px pass's 20 px window."""
    canvas = Image.new("RGB", (2000, 1500), (120, 120, 120))
    canvas.paste(astronaut.resize((600, 600)), (700, 450))
    assert FaceDetector(second_pass=False).detect(canvas) == []
    dets = FaceDetector().detect(canvas)
    assert len(dets) == 1
    assert inside(dets[0].raw_box, (700 + 175 * 600 / 512, 450 + 65 * 600 / 512,
                                    700 + 275 * 600 / 512, 450 + 190 * 600 / 512))


def test_a_face_is_found_on_each_shared_photo(photos_dir, detector):
    """Measured (see faceml.serving.detect): one face on each of the 5 portraits; the bearded man
    with
    glasses (angelina-litvin) is found with 11 neighbours, below the weak threshold of 15."""
    files = sorted(photos_dir.glob("*.jpg"))
    assert len(files) == 5
    for f in files:
        img = read_upload(f.read_bytes())
        dets = detector.detect(img)
        assert len(dets) == 1, f.name
        x, y, w, h = dets[0].box
        assert w == h and x + w <= img.width and y + h <= img.height
        assert w >= 0.25 * min(img.size), f.name  # portraits: a large face
        assert dets[0].weak == f.name.startswith("angelina"), (f.name, dets[0].score)


def test_no_face_is_an_empty_list_and_the_whole_image_still_answers(predictor, detector):
    blank = Image.new("RGB", (640, 480), (200, 180, 160))
    assert predict_faces(blank, predictor, detector) == []
    whole = predict_box(blank, predictor, None)
    assert whole.source == "whole image" and whole.box == (0, 0, 640, 480)
    manual = predict_box(blank, predictor, (600, 400, 500, 500))  # clipped to the image
    assert manual.box == (600, 400, 40, 80) and manual.source == "manual"


def test_a_tiny_image_or_box_is_a_clear_message_not_an_answer(predictor, detector):
    """Smaller than the model's 32×32 input: no face to find and nothing to answer from."""
    tiny = Image.new("RGB", (8, 6), (128, 128, 128))
    assert predict_faces(tiny, predictor, detector) == []
    with pytest.raises(DataError) as e:
        predict_box(tiny, predictor, None)
    assert str(e.value) == ("the image is 8×6 pixels, smaller than the model's 32×32 input: "
                            "too little of a face to answer; use a larger photo")
    with pytest.raises(DataError, match="the image is 5000×1 pixels"):
        predict_box(Image.new("L", (5000, 1), 128), predictor, None)
    with pytest.raises(DataError, match="the box is 20×20 pixels, .* enter a larger box"):
        predict_box(Image.new("RGB", (640, 480)), predictor, (10, 10, 20, 20))
    assert predict_box(Image.new("RGB", (32, 40)), predictor, None).box == (0, 0, 32, 40)


def test_a_small_detected_face_is_answered_with_a_warning(predictor, detector, astronaut):
    """A face smaller than the model's input in a small photo is still answered (the
    detector found it), with a warning that it was enlarged."""
    small = astronaut.resize((140, 140))
    faces = predict_faces(small, predictor, detector)
    assert len(faces) == 1 and faces[0].box[2] < 32
    assert any("smaller than the model's 32×32 input" in w for w in faces[0].warnings)


# --- what the model sees --------------------------------------------------------------------------

def test_the_crop_shown_is_exactly_the_models_input(predictor, detector, astronaut):
    faces = predict_faces(astronaut, predictor, detector)
    assert len(faces) == 1
    f = faces[0]
    x, y, w, h = f.box
    expected = to_pixels(astronaut.crop((x, y, x + w, y + h)), predictor.size, predictor.color)
    assert np.array_equal(f.crop, expected)
    assert np.array_equal(predictor.crop_as_model_sees(astronaut, f.box), expected)
    assert f.crop.dtype == np.uint8
    assert f.crop.shape == tuple(predictor.model.input_shape[1:]) == (32, 32, 3)
    # and the answers are the model's outputs on exactly that array (the engine's predict)
    from faceml.modeling.modelio import predict_arrays

    out = predict_arrays(predictor.model, expected[None])
    assert f.heads["eyewear"].probs["glasses"] == pytest.approx(float(out["eyewear"][0, 0]),
                                                                abs=1e-5)
    assert f.heads["age"].years == pytest.approx(float(out["age"][0, 0]), abs=1e-3)


def test_a_gray_models_crop_is_gray_at_its_own_size(astronaut):
    p = Predictor(gray_model(), "gray")
    crop = p.crop_as_model_sees(astronaut, (174, 73, 102, 102))
    assert crop.shape == (24, 24, 1) == tuple(p.model.input_shape[1:])
    assert np.array_equal(crop, to_pixels(astronaut.crop((174, 73, 276, 175)), 24, "gray"))


def test_predictions_are_stable_and_probabilities_sum_to_one(predictor, detector, astronaut):
    a = predict_faces(astronaut, predictor, detector)[0]
    b = predict_faces(astronaut, predictor, detector)[0]
    assert a.to_dict() == b.to_dict()
    eye, expr = a.heads["eyewear"], a.heads["expression"]
    assert set(eye.probs) == {"none", "glasses"} and sum(eye.probs.values()) == pytest.approx(1)
    assert set(expr.probs) == {"neutral", "smiling", "frowning"}
    assert sum(expr.probs.values()) == pytest.approx(1, abs=1e-5)
    assert expr.label == max(expr.probs, key=expr.probs.get)
    age = a.heads["age"]
    assert age.interval is not None and age.interval[0] <= age.interval[1]
    assert "validation faces" in age.interval_note


def test_all_models_side_by_side_share_the_detection(predictor, detector, astronaut):
    dets, results = predict_all(astronaut, {"run": predictor, "gray": Predictor(gray_model(),
                                                                                "gray")}, detector)
    assert len(dets) == 1 and set(results) == {"run", "gray"}
    assert results["run"][0].box == results["gray"][0].box == dets[0].box
    assert results["run"][0].crop.shape == (32, 32, 3)
    assert results["gray"][0].crop.shape == (24, 24, 1)
    assert results["gray"][0].heads["gender"].interval is None  # a classifier: no years


def test_a_vae_or_foreign_model_is_refused_clearly():
    import keras

    plain = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Flatten(),
                              keras.layers.Dense(1)])
    with pytest.raises(FaceMLError, match="no FacePreprocessing layer"):
        Predictor(plain, "plain")
    from faceml.modeling import vae

    with pytest.raises(FaceMLError, match="VAE"):
        Predictor(vae.build_vae(16, "gray", latent_dim=2, filters=[8]), "v")


# --- decoding -------------------------------------------------------------------------------------

def test_exif_orientation_is_applied():
    """40×20 JPEG, left half red, right half blue, EXIF orientation 6 (rotate 90° clockwise to
    display): decoded 20 wide × 40 high with red on top."""
    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:, :20] = (255, 0, 0)
    arr[:, 20:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", exif=exif, quality=95)
    img = read_upload(buf.getvalue())
    assert img.size == (20, 40) and img.mode == "RGB"
    px = np.asarray(img).astype(int)
    assert px[5, 10, 0] > 200 and px[5, 10, 2] < 60  # top: red
    assert px[35, 10, 2] > 200 and px[35, 10, 0] < 60  # bottom: blue
    # without the tag the same pixels stay landscape
    buf2 = io.BytesIO()
    Image.fromarray(arr).save(buf2, "JPEG", quality=95)
    assert read_upload(buf2.getvalue()).size == (40, 20)


# --- intervals and rare groups --------------------------------------------------------------------

def _frame(n_val=200, seed=0):
    rng = np.random.default_rng(seed)
    true = rng.uniform(1, 90, n_val)
    pred = true + rng.normal(0, 5, n_val)
    race = np.resize(np.array(["White"] * 150 + ["Black"] * 46 + ["Others"] * 4), n_val)
    return pd.DataFrame({"source": [f"f{i}" for i in range(n_val)], "split": "val",
                         "age_true": true, "age_pred": pred, "race_true": race,
                         "race_pred": race})


def test_reference_interval_and_rare_group_warnings():
    heads = [HeadSpec("age", "regression"),
             HeadSpec("race", "multiclass", ["White", "Black", "Asian", "Others"])]
    frame = _frame()
    test_rows = frame.assign(split="test", race_true="Asian")  # test rows are never used
    ref = Reference.from_frame(pd.concat([frame, test_rows]), heads, "t")
    assert ref.counts["race"] == {"White": 150, "Black": 46, "Asian": 0, "Others": 4}
    (lo, hi), note = ref.interval("age", 30.0)
    val = frame
    res = val["age_true"] - val["age_pred"]
    assert "all 200 validation faces" in note  # ~22 faces predicted 30–39: below 30
    assert lo == pytest.approx(30 + np.percentile(res, 10))
    assert hi == pytest.approx(30 + np.percentile(res, 90))
    from faceml.serving.predict import HeadAnswer

    assert ref.rare(heads[1], HeadAnswer("race", "multiclass", "Others")) is not None
    assert "0 of 200" in ref.rare(heads[1], HeadAnswer("race", "multiclass", "Asian"))
    assert ref.rare(heads[1], HeadAnswer("race", "multiclass", "Black")) is None
    # a decade with enough validation faces gets its own interval
    big = _frame(2000, seed=1)
    ref2 = Reference.from_frame(big, heads, "t")
    _, note2 = ref2.interval("age", 45.0)
    assert "predicted 40–49" in note2
    assert ref2.interval("age", 45.0)[0][0] >= 0


# --- CLI ------------------------------------------------------------------------------------------

def test_cli_predict_json(store, tmp_path, capsys, astronaut):
    img = tmp_path / "astro.png"
    astronaut.save(img)
    blank = tmp_path / "blank.jpg"
    Image.new("RGB", (300, 200), (30, 30, 30)).save(blank)
    code = main(["predict", str(img), str(blank), "--run", store[1], "--json"])
    out = capsys.readouterr().out.strip().splitlines()
    assert code == 0 and len(out) == 2
    first, second = json.loads(out[0]), json.loads(out[1])
    assert first["image"] == str(img) and len(first["faces"]) == 1
    face = first["faces"][0]
    assert len(face["box"]) == 4 and all(isinstance(v, int) for v in face["box"])
    assert face["score"] > 0 and face["weak"] is False
    eye = face["heads"]["eyewear"]
    assert eye["label"] in ("none", "glasses") and set(eye["probs"]) == {"none", "glasses"}
    age = face["heads"]["age"]
    assert isinstance(age["years"], float) and len(age["interval"]) == 2
    assert second["faces"] == []
    code = main(["predict", str(blank), "--run", store[1], "--json", "--whole"])
    assert code == 0
    assert json.loads(capsys.readouterr().out)["faces"][0]["source"] == "whole image"


@pytest.mark.parametrize("case,needle", [
    ("missing", "no such image file"),
    ("text", "not an image"),
    ("no_model", "pass --model FILE.keras or --run RUN_ID"),
    ("bad_model", "not a Keras model"),
    ("bad_run", "no run"),
])
def test_cli_predict_bad_input_exits_2_with_one_line(store, tmp_path, capsys, astronaut,
                                                     case, needle):
    img = tmp_path / "a.png"
    astronaut.save(img)
    args = {"missing": [str(tmp_path / "nope.jpg"), "--run", store[1]],
            "text": [str(tmp_path / "t.png"), "--run", store[1]],
            "no_model": [str(img)],
            "bad_model": [str(img), "--model", str(tmp_path / "t.png")],
            "bad_run": [str(img), "--run", "nope"]}[case]
    (tmp_path / "t.png").write_text("not an image at all")
    code = main(["predict", *args])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and needle in err and err.count("\n") == 1, err


def test_cli_whole_on_a_tiny_image_exits_2_with_one_line(store, tmp_path, capsys):
    tiny = tmp_path / "tiny.png"
    Image.new("RGB", (8, 6), (128, 128, 128)).save(tiny)
    code = main(["predict", str(tiny), "--run", store[1], "--whole"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith("error: tiny.png: the image is 8×6 pixels, smaller than the model's")


def test_cli_predict_model_and_run_together_is_an_argparse_error(store, capsys):
    with pytest.raises(SystemExit) as e:
        main(["predict", "x.jpg", "--model", "m.keras", "--run", store[1]])
    assert e.value.code == 2 and "not allowed with" in capsys.readouterr().err


def test_importing_predict_loads_neither_keras_nor_opencv():
    code = ("import sys, faceml.cli, faceml.serving.predict; faceml.cli.build_parser(); "
            "print(sorted(m for m in ('keras', 'tensorflow', 'cv2') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_read_upload_is_memory_only_and_takes_bytes():
    with pytest.raises(DataError, match="empty"):
        read_upload(b"")
    with pytest.raises(DataError, match="limit is 1 MB"):
        read_upload(b"\xff" * 1_100_000, max_bytes=1_000_000)


def test_the_default_bundled_model_is_the_newest_release(tmp_path, monkeypatch):
    """models/: faceml-vN first, the newest first (v10 after v9), then the rest by name; the
    default is the first; an empty or missing folder has none."""
    from faceml.serving.predict import bundled_models, default_model

    monkeypatch.setenv("FACEML_MODELS_DIR", str(tmp_path / "models"))
    assert bundled_models() == [] and default_model() is None
    (tmp_path / "models").mkdir()
    assert default_model() is None
    for name in ("utkface-multitask", "faceml-v2", "faceml-v10", "alpha", "faceml-v9",
                 "faceml-vx"):
        (tmp_path / "models" / f"{name}.keras").write_bytes(b"")
    (tmp_path / "models" / "notes.md").write_text("")
    assert [p.stem for p in bundled_models()] == ["faceml-v10", "faceml-v9", "faceml-v2",
                                                  "alpha", "faceml-vx", "utkface-multitask"]
    assert default_model() == tmp_path / "models" / "faceml-v10.keras"
