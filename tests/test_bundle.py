"""Bundling a run into models/ with a model card whose command reproduces the run."""

import shlex

import numpy as np

import pytest

from faceml.bundle import bundle, train_command
from faceml.cli import _train_config, build_parser
from faceml.errors import FaceMLError
from faceml.modelio import load_model
from faceml.preprocessing import PrepOptions
from faceml.runs import RunStore
from faceml.training import TrainConfig, train_run


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
    parsed = _train_config(build_parser().parse_args(argv))
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
    from faceml.preprocessing import prepare

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
    with pytest.raises(FaceMLError, match="not the run's own test split"):
        bundle(run, "tiny", tmp_path / "models", test_path=str(make_utkface(tmp_path / "o", 70)))
