"""Bundling a run into models/ with a model card whose command reproduces the run."""

import shlex

import numpy as np

import pytest

from faceml.serving.bundle import bundle, train_command
from faceml.cli import build_parser
from faceml.cli.train import train_config
from faceml.errors import FaceMLError
from faceml.modeling.modelio import load_model
from faceml.data.prepare import PrepOptions
from faceml.runs import RunStore
from faceml.config import TrainConfig
from faceml.training.engine import train_run


def test_the_card_command_reproduces_the_config():
    cfg = TrainConfig(data=PrepOptions(dataset="utkface", path="/data/utk face", size=48,
                                       color="gray", fraction=0.5, age="custom",
                                       age_edges=[18, 40], seed=3),
                      arch="custom", arch_params={"dense": [{"units": 8}]},
                      heads=["gender", "race", "age"], head_weights={"age": 0.1},
                      age_loss="huber", class_weights=True, optimizer="adamw", lr=0.002,
                      schedule="cosine", batch_size=32, epochs=7, early_stopping=2,
                      augmentation=["flip", "zoom"], seed=5)
    argv = shlex.split(train_command(cfg.canonical()))[3:]  # drop "python -m faceml"
    parsed = train_config(build_parser().parse_args(argv))
    assert parsed.canonical() == cfg.canonical()
    assert parsed.run_id() == cfg.run_id()


def test_bundle_writes_a_safe_model_and_a_card(tmp_path):
    from fixtures_formats import make_utkface

    make_utkface(tmp_path / "utk", 80)
    cfg = TrainConfig(data=PrepOptions(dataset="utkface", path=str(tmp_path / "utk"), size=16,
                                       stratify="gender"),
                      arch="small_cnn", heads=["gender", "race", "age"],
                      head_weights={"age": 0.05}, epochs=1, batch_size=16)
    store = RunStore()
    run, _ = store.create(cfg.run_id(), cfg.canonical())
    with pytest.raises(FaceMLError, match="only finished runs"):
        bundle(run, "tiny", tmp_path / "models")
    assert train_run(run)["state"] == "done"
    mpath, card = bundle(run, "tiny", tmp_path / "models")
    model = load_model(mpath)
    assert sorted(model.output_names) == ["age", "gender", "race"]
    text = card.read_text()
    assert train_command(run.config) in text
    assert "split `test`" in text and "## Limits and ethics" in text
    assert "**gender by race**" in text and "**age by gender**" in text
    val = (tmp_path / "models" / "tiny.predictions.csv").read_text().splitlines()
    assert val[0] == "split,gender_true,gender_pred,race_true,race_pred,age_true,age_pred"
    assert all(line.startswith("val,") for line in val[1:])
    with pytest.raises(FaceMLError, match="model name"):
        bundle(run, "../evil", tmp_path / "models")


def test_a_run_trained_on_a_shrunk_copy_is_scored_on_the_originals(tmp_path):
    from fixtures_formats import make_utkface

    from faceml.data.shrink import shrink
    from faceml.data.prepare import prepare

    orig = make_utkface(tmp_path / "utk", 60, size=40)
    (orig / "61_1_2017.jpg.chip.jpg").write_bytes((orig / next(orig.iterdir()).name).read_bytes())
    r = shrink(orig, tmp_path / "small", 16, quality=90)
    assert r["written"] == 60 and [n for n, _ in r["skipped"]] == ["61_1_2017.jpg.chip.jpg"]
    assert sorted(p.name for p in (tmp_path / "small").iterdir()) == sorted(
        p.name for p in orig.iterdir() if p.name != "61_1_2017.jpg.chip.jpg")
    with pytest.raises(FaceMLError, match="another folder"):
        shrink(orig, orig, 16)
    # the copy holds the training pipeline's own pixels, up to JPEG rounding; same split
    a = prepare(PrepOptions(dataset="utkface", path=str(orig), size=16, stratify="gender"))
    b = prepare(PrepOptions(dataset="utkface", path=str(tmp_path / "small"), size=16,
                            stratify="gender"))
    assert list(a.frame["source"]) == list(b.frame["source"])
    assert list(a.frame["split"]) == list(b.frame["split"])
    diff = np.abs(a.x.astype(int) - b.x.astype(int))
    assert diff.mean() < 8  # 4.9 measured on these 16 px cartoons; 1.8 on real faces at 64 px

    cfg = TrainConfig(data=PrepOptions(dataset="utkface", path=str(tmp_path / "small"),
                                       size=16, stratify="gender"),
                      arch="small_cnn", heads=["gender", "age"], epochs=1, batch_size=16)
    run, _ = RunStore().create(cfg.run_id(), cfg.canonical())
    assert train_run(run)["state"] == "done"
    _, card = bundle(run, "tiny", tmp_path / "models", test_path=str(orig))
    text = card.read_text()
    assert f"python -m faceml shrink --path {orig}" in text
    assert f"--test-path {orig}" in text and f"the original images in `{orig}`" in text
    assert "**gender by race**" in text
    with pytest.raises(FaceMLError, match="'s own val split"):
        bundle(run, "tiny", tmp_path / "models", test_path=str(make_utkface(tmp_path / "o", 70)))
    # the NAME=FOLDER form of several datasets names the one dataset's folder too
    from faceml.serving.bundle import parse_test_paths

    assert parse_test_paths(run, f"utkface={orig}") == parse_test_paths(run, str(orig)) == \
        str(orig)
    with pytest.raises(FaceMLError, match="names 'fairface'"):
        parse_test_paths(run, f"fairface={orig}")


def test_an_ensemble_of_runs_averages_them_and_its_card_names_every_command(tmp_path):
    from fixtures_formats import make_utkface

    from faceml.modeling.ensemble import build_ensemble

    data = PrepOptions(dataset="utkface", path=str(make_utkface(tmp_path / "utk", 60)), size=16,
                       stratify="gender")
    runs = []
    for arch in ("small_cnn", "default_cnn"):
        cfg = TrainConfig(data=data, arch=arch, heads=["gender", "race", "age"], epochs=1,
                          batch_size=16)
        run, _ = RunStore().create(cfg.run_id(), cfg.canonical())
        assert train_run(run)["state"] == "done"
        runs.append(run)
    mpath, card = bundle(runs, "duo", tmp_path / "models", mirror=True)
    model = load_model(mpath)  # safe_mode=True: only registered layers
    x = np.random.default_rng(0).integers(0, 256, (5, 16, 16, 3), dtype=np.uint8)
    got = model.predict(x, verbose=0)
    parts = [r.load_model("best").predict(v, verbose=0) for r in runs for v in (x, x[:, :, ::-1])]
    for head in ("gender", "race", "age"):
        want = np.mean([p[head] for p in parts], axis=0)
        np.testing.assert_allclose(got[head], want, rtol=1e-5, atol=1e-4)
    text = card.read_text()
    for r in runs:
        assert train_command(r.config) in text and f"run `{r.id}`" in text
    assert f"python -m faceml bundle {runs[0].id} {runs[1].id} --name duo --mirror" in text
    assert "the average of 2 models" in text and "**race by gender**" in text
    val = (tmp_path / "models" / "duo.predictions.csv").read_text().splitlines()
    assert len(val) - 1 == int((runs[0].predictions()["split"] == "val").sum())

    other = TrainConfig(data=PrepOptions(dataset="utkface", path=data.path, size=16, seed=1,
                                         stratify="gender"),
                        arch="small_cnn", heads=["gender", "race", "age"], epochs=1, batch_size=16)
    run3, _ = RunStore().create(other.run_id(), other.canonical())
    assert train_run(run3)["state"] == "done"
    with pytest.raises(FaceMLError, match="different data or heads"):
        bundle([runs[0], run3], "bad", tmp_path / "models")
    with pytest.raises(FaceMLError, match="once"):
        bundle([runs[0], runs[0]], "bad", tmp_path / "models")
    gray = TrainConfig(data=PrepOptions(dataset="utkface", path=data.path, size=16, color="gray",
                                        stratify="gender"),
                       arch="small_cnn", heads=["gender"], epochs=1, batch_size=16)
    run4, _ = RunStore().create(gray.run_id(), gray.canonical())
    assert train_run(run4)["state"] == "done"
    with pytest.raises(FaceMLError, match="same input"):
        build_ensemble([runs[0].load_model("best"), run4.load_model("best")])
    one = runs[0].load_model("best")
    name = one.name
    assert build_ensemble([one]) is one and one.name == name  # nothing to average: unchanged
    mirrored = build_ensemble([one], mirror=True)
    assert mirrored is not one and one.name.startswith("member1_")


def test_a_fairface_copy_keeps_its_labels_split_and_face_box_pixels(tmp_path, capsys):
    """shrink --dataset fairface: the label CSVs travel as found, each image keeps its relative
    path, and the copy is written just large enough that the face box (0.95) cut from it has
    the asked size: several datasets framed alike read nearly the originals' pixels, split
    alike. A label row pointing outside the folder is skipped, never written there."""
    import shutil

    from PIL import Image
    from fixtures_formats import make_fairface, make_utkface

    from faceml.cli import main
    from faceml.data.prepare import prepare
    from faceml.data.shrink import copy_size

    ff = make_fairface(tmp_path / "ff", 40, n_val=12, size=40)
    shutil.copyfile(ff / "train" / "1.jpg", tmp_path / "outside.jpg")
    with open(ff / "fairface_label_train.csv", "a") as f:
        f.write("../outside.jpg,20-29,Male,White,False\n")
    utk = make_utkface(tmp_path / "utk", 40, size=40)
    assert copy_size(64, (0.95, 0.0)) == 70 and copy_size(16, (1.0, 0.0)) == 16
    assert main(["shrink", "--dataset", "fairface", "--path", str(ff), "--size", "16",
                 "--quality", "90", "--out", str(tmp_path / "ff16")]) == 0
    out = capsys.readouterr().out
    assert "skipped ../outside.jpg: its path leads outside the dataset folder" in out
    assert "52 faces written to" in out and f"at {copy_size(16, (0.95, 0.0))} px" in out
    copy = tmp_path / "ff16"
    for name in ("fairface_label_train.csv", "fairface_label_val.csv"):
        assert (copy / name).read_bytes() == (ff / name).read_bytes()
    assert sorted(p.name for p in (copy / "val").iterdir()) == sorted(
        p.name for p in (ff / "val").iterdir())
    # the file the bad row points at is left as it was (the copy never writes outside itself)
    assert (tmp_path / "outside.jpg").read_bytes() == (ff / "train" / "1.jpg").read_bytes()
    with Image.open(copy / "train" / "1.jpg") as im:
        assert im.size == (copy_size(16, (0.95, 0.0)),) * 2
    shrink_utk = tmp_path / "utk16"
    assert main(["shrink", "--path", str(utk), "--size", "16", "--out", str(shrink_utk)]) == 0
    capsys.readouterr()
    opts = {"dataset": "utkface,fairface", "size": 16, "framing": "face"}
    a = prepare(PrepOptions.from_dict({**opts, "path": {"utkface": str(utk), "fairface": str(ff)}}))
    b = prepare(PrepOptions.from_dict({**opts, "path": {"utkface": str(shrink_utk),
                                                        "fairface": str(copy)}}))
    assert "../outside.jpg" not in set(a.frame["source"]) | set(b.frame["source"])
    assert list(a.frame["source"]) == list(b.frame["source"])
    assert list(a.frame["split"]) == list(b.frame["split"])
    diff = np.abs(a.x.astype(int) - b.x.astype(int))
    assert diff.mean() < 8


def test_shrink_cli_refuses_other_datasets_with_one_line(tmp_path, capsys):
    from faceml.cli import main

    assert main(["shrink", "--dataset", "synthetic", "--path", str(tmp_path), "--out",
                 str(tmp_path / "o")]) == 2
    assert "shrink works on utkface" in capsys.readouterr().err
    assert main(["shrink", "--path", str(tmp_path / "absent"), "--out", str(tmp_path / "o")]) == 2


def test_half_kernels_halve_the_file_and_keep_the_answers(tmp_path):
    """half_kernels: Conv2D and Dense kernels stored as float16 (so the .keras file is about
    half), every other weight as it was, answers within the kernels' rounding; the file loads
    with safe_mode=True and keeps the model's name and preprocessing."""
    import keras
    from fixtures_formats import make_utkface

    from faceml.modeling.ensemble import half_kernels
    from faceml.modeling.layers import HalfConv2D, HalfDense, find_preprocessing
    from faceml.modeling.modelio import save_model

    cfg = TrainConfig(data=PrepOptions(dataset="utkface", size=32,
                                       path=str(make_utkface(tmp_path / "utk", 60))),
                      arch="default_cnn", heads=["gender", "race", "age"], epochs=1,
                      batch_size=32)
    run, _ = RunStore().create(cfg.run_id(), cfg.canonical())
    assert train_run(run)["state"] == "done"
    model = run.load_model("best")
    half = half_kernels(model)
    assert half.name == model.name
    assert find_preprocessing(half).get_config() == find_preprocessing(model).get_config()
    kinds = {type(layer).__name__ for layer in half.layers}
    assert {"HalfConv2D", "HalfDense"} <= kinds and not {"Conv2D", "Dense"} & kinds
    kept = {w.path: w for w in model.weights}
    halved = []
    for w in half.weights:
        a = keras.ops.convert_to_numpy(w)
        b = keras.ops.convert_to_numpy(kept[w.path])
        if a.dtype == np.float16:
            halved.append(w.path)
            np.testing.assert_array_equal(a, b.astype(np.float16))
        else:
            np.testing.assert_array_equal(a, b)
    swapped = [x for x in half.layers if isinstance(x, HalfConv2D | HalfDense)]
    assert sorted(halved) == sorted(x._kernel.path for x in swapped)  # every kernel, nothing else
    save_model(model, tmp_path / "full.keras")
    save_model(half, tmp_path / "half.keras")
    full_mb, half_mb = ((tmp_path / f"{n}.keras").stat().st_size for n in ("full", "half"))
    assert 0.45 < half_mb / full_mb < 0.62, (half_mb, full_mb)
    loaded = load_model(tmp_path / "half.keras")
    assert [type(x).__name__ for x in loaded.layers] == [type(x).__name__ for x in half.layers]
    x = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    want, got = model.predict(x, verbose=0), loaded.predict(x, verbose=0)
    for head in ("gender", "race"):
        assert got[head].dtype == np.float32
        np.testing.assert_allclose(got[head], want[head], atol=2e-3)
        assert np.abs(got[head] - want[head]).max() > 0  # it is rounded, not the same weights
    np.testing.assert_allclose(got["age"], want["age"], atol=0.05)
