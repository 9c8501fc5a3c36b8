"""The training engine and the run store (in-process; background jobs are in test_jobs.py)."""

import json

import numpy as np
import pandas as pd
import pytest

from faceml import data as datasets
from faceml.training import jobs
from faceml.data.base import DatasetAdapter, LabelSpec, Scan
from faceml.errors import ConfigError
from faceml.data.prepare import PrepOptions, prepare
from faceml.runs import RunStore
from faceml.config import TrainConfig
from faceml.training.engine import build_model, train_run


def tiny(**kw) -> TrainConfig:
    data = PrepOptions(dataset="synthetic", dataset_options={"n": 160}, size=16,
                       color=kw.pop("color", "gray"))
    base = dict(data=data, arch="small_cnn", heads=["eyewear"], epochs=2, batch_size=32)
    base.update(kw)
    return TrainConfig(**base)


@datasets.register
class _NanAges(DatasetAdapter):
    """Constant faces with random ages: with a huge learning rate the loss blows up."""

    name = "_nan_ages"
    needs_path = False

    def label_specs(self):
        return {"age": LabelSpec("age", "years")}

    def scan(self, path=None):
        frame = pd.DataFrame({"source": [f"f{i}" for i in range(60)],
                              "age": np.arange(60) % 50 + 1.0})
        return Scan(self.name, None, frame, self.label_specs())

    def read(self, scan, rows, size, color, progress=None):
        return np.full((len(rows), size, size, 1 if color == "gray" else 3), 7, np.uint8), []


def test_run_id_is_a_hash_of_the_canonical_config():
    a, b = tiny(), tiny()
    assert a.run_id() == b.run_id()
    assert tiny(lr=0.01).run_id() != a.run_id()
    assert tiny(seed=1).run_id() != a.run_id()
    assert (tiny(augmentation=["zoom", "flip"]).run_id()
            == tiny(augmentation=["flip", "zoom"]).run_id())
    round_trip = TrainConfig.from_dict(json.loads(json.dumps(a.canonical())))
    assert round_trip.run_id() == a.run_id()
    assert round_trip.canonical() == a.canonical()


@pytest.mark.parametrize("kw,message", [
    (dict(lr=0), "learning rate must be > 0"),
    (dict(lr=-1e-3), "learning rate must be > 0"),
    (dict(batch_size=0), "batch size must be at least 1"),
    (dict(epochs=0), "epochs must be at least 1"),
    (dict(heads=["race"]), "has no label 'race'"),
    (dict(heads=[]), "at least one label"),
    (dict(optimizer="adagrad"), "unknown optimizer"),
    (dict(arch="vgg16", arch_params={"weights": None}), "RGB"),
    (dict(arch="nope"), "nope"),
])
def test_bad_configs_fail_before_training(kw, message):
    with pytest.raises(ConfigError, match=message):
        tiny(**kw).validate()


def test_pooling_to_nothing_names_the_layer():
    cfg = tiny(arch="custom", arch_params={"conv_blocks": [{"filters": 4, "pool": 2}] * 6,
                                           "dense": []})
    with pytest.raises(ConfigError, match="block"):
        cfg.validate()


def test_train_run_stores_everything():
    store = RunStore()
    cfg = tiny(heads=["eyewear", "expression", "age"], head_weights={"age": 0.05})
    run, new = store.create(cfg.run_id(), cfg.canonical())
    assert new
    st = train_run(run)
    assert st["state"] == "done", st
    hist = run.history()
    assert hist["epoch"].tolist() == [1, 2]
    assert {"loss", "val_loss", "seconds", "eyewear_accuracy", "age_mae"} <= set(hist.columns)
    assert run.has_checkpoint("best") and run.has_checkpoint("last")
    assert run.status()["device"]["backend"] == "tensorflow"
    preds = run.predictions()
    assert set(preds["split"]) == {"val", "test"}
    assert {"source", "eyewear_true", "eyewear_prob_glasses", "age_pred"} <= set(preds.columns)
    m = run.metrics()
    assert m["test"]["dataset"] == "synthetic" and m["test"]["split"] == "test"
    assert 0 <= m["test"]["heads"]["expression"]["accuracy"] <= 1
    model = run.load_model()
    assert sorted(model.output_names) == ["age", "expression", "eyewear"]


def test_same_config_and_seed_give_the_same_history():
    store = RunStore()
    h = []
    for repeat in (0, 1):
        cfg = tiny(repeat=repeat)
        run, _ = store.create(cfg.run_id(), cfg.canonical())
        assert train_run(run)["state"] == "done"
        h.append(run.history())
    np.testing.assert_allclose(h[0]["loss"], h[1]["loss"], rtol=1e-4)
    np.testing.assert_allclose(h[0]["val_loss"], h[1]["val_loss"], rtol=1e-4)


def test_launching_a_known_config_returns_the_cached_run():
    store = RunStore()
    cfg = tiny()
    run, new = jobs.submit(cfg, store, start_worker=False)
    assert new
    again, new2 = jobs.submit(tiny(), store, start_worker=False)
    assert again.id == run.id and not new2
    fresh, new3 = jobs.submit(tiny(), store, again=True, start_worker=False)
    assert new3 and fresh.id != run.id and fresh.config["repeat"] == 1


def test_nan_loss_fails_the_run_with_the_epoch():
    store = RunStore()
    cfg = TrainConfig(data=PrepOptions(dataset="_nan_ages", size=8, color="gray"), arch="mlp",
                      heads=["age"], epochs=3, batch_size=16, optimizer="sgd", lr=1e30)
    run, _ = store.create(cfg.run_id(), cfg.canonical())
    st = train_run(run)
    assert st["state"] == "failed"
    assert st["reason"] == "loss became NaN at epoch 1", st
    assert run.history().empty  # the NaN epoch is not recorded as a result


def test_a_damaged_run_does_not_break_the_others():
    store = RunStore()
    good, _ = store.create("good", tiny().canonical())
    bad, _ = store.create("bad", tiny(seed=3).canonical())
    (bad.dir / "config.json").write_text("{not json")
    (good.dir / "history.json").write_text(json.dumps([{"epoch": 1, "loss": 0.5}]))
    table = store.table().set_index("run_id")
    assert table.loc["bad", "state"] == "damaged"
    assert "config.json is damaged" in table.loc["bad", "reason"]
    assert table.loc["good", "state"] == "queued"
    assert table.loc["good", "epochs_done"] == 1


def test_out_of_memory_fails_the_run_with_the_reason(monkeypatch):
    import keras

    def boom(*a, **k):
        raise MemoryError("Unable to allocate 32.0 GiB for an array")

    monkeypatch.setattr(keras.Model, "fit", boom)
    store = RunStore()
    cfg = tiny(seed=11)
    run, _ = store.create(cfg.run_id(), cfg.canonical())
    st = train_run(run)
    assert st["state"] == "failed"
    assert st["reason"].startswith("out of memory") and "smaller batch size" in st["reason"]


def test_rotation_and_zoom_models_are_jit_compiled_under_jax(monkeypatch):
    """Keras marks RandomRotation/RandomZoom non-jittable (for TF's XLA); under JAX that made a
    whole training step run op by op (70 s an epoch on an H200), so the engine allows jit."""
    import keras

    from faceml.training.engine import allow_jax_jit

    cfg = TrainConfig(data=PrepOptions(dataset="synthetic", dataset_options={"n": 60}, size=16),
                      arch="small_cnn", heads=["age"], augmentation=["flip", "rotation", "zoom"])
    prep = prepare(cfg.data)
    heads = prep.heads(cfg.heads)
    model = build_model(cfg, prep, heads)
    augment = [la for la in model.layers if la.name.startswith("augment_")]
    assert len(augment) == 3 and not all(la.supports_jit for la in augment)
    allow_jax_jit(model)  # this test runs on TensorFlow: nothing changes
    assert not all(la.supports_jit for la in augment)
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    allow_jax_jit(model)
    assert all(la.supports_jit for la in model.layers)


def test_stored_results_say_which_checkpoint_they_come_from():
    from faceml.training.engine import results_checkpoint

    store = RunStore()
    cfg = tiny(epochs=3, seed=7)
    run, _ = store.create(cfg.run_id(), cfg.canonical())
    st = train_run(run)
    assert st["state"] == "done", st
    hist = run.history()
    best_epoch = int(hist.loc[hist["val_loss"].idxmin(), "epoch"])
    assert st["results"] == {"checkpoint": "best", "epoch": best_epoch, "monitor": "val_loss"}
    assert results_checkpoint(run) == st["results"]
    run.checkpoint("best").unlink()  # without a best checkpoint the last one is used
    assert results_checkpoint(run) == {"checkpoint": "last", "epoch": 3, "monitor": "val_loss"}


def test_checkpoints_leave_no_temporary_files_behind():
    store = RunStore()
    cfg = tiny(epochs=2, seed=8)
    run, _ = store.create(cfg.run_id(), cfg.canonical())
    assert train_run(run)["state"] == "done"
    assert not [p.name for p in run.dir.iterdir() if p.name.startswith(".")]
    assert run.has_checkpoint("best") and run.has_checkpoint("last")


def test_named_augmentations_train_with_the_builders_one_table():
    """A run's augmentation names become the builder's layers at the builder's strengths
    (there was a second table in training, with contrast 0.2 against the builder's 0.1)."""
    from faceml.modeling import architectures
    from faceml.data.prepare import prepare
    from faceml.config import AUGMENTATIONS
    from faceml.training.engine import build_model

    assert set(AUGMENTATIONS) == set(architectures.AUGMENTATIONS)
    cfg = tiny(arch="small_cnn", augmentation=list(AUGMENTATIONS))
    prep = prepare(cfg.data)
    model = build_model(cfg, prep, prep.heads(cfg.heads))
    import keras

    layers = {type(layer).__name__: layer for layer in model.layers}
    assert architectures.AUGMENTATIONS["contrast"]["factor"] == 0.2
    assert layers["RandomContrast"].factor == keras.layers.RandomContrast(0.2).factor
    assert layers["RandomRotation"].factor == keras.layers.RandomRotation(
        architectures.AUGMENTATIONS["rotation"]["factor"]).factor
