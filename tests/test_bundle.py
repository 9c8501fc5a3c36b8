"""Bundling a run into models/ with a model card whose command reproduces the run."""

import shlex

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
