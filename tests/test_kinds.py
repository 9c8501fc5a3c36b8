"""Model kinds (faceml.modeling.kinds): the classifier and the VAE behind one interface, no
code comparing an architecture's name with "vae", and a third kind added in one place (here,
in this file) that trains through the normal engine."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from faceml.config import TrainConfig
from faceml.data.prepare import PrepOptions
from faceml.errors import ConfigError
from faceml.modeling import architectures, kinds
from faceml.runs import RunStore

ROOT = Path(__file__).resolve().parents[1]
VAE_CHECK = re.compile(r'[!=]= "vae"|in \("vae"|is_vae')


def test_no_code_compares_an_architecture_with_vae():
    found = []
    for folder in ("faceml", "ui", "app_pages"):
        for p in sorted((ROOT / folder).rglob("*.py")):
            for n, line in enumerate(p.read_text().splitlines(), 1):
                if VAE_CHECK.search(line):
                    found.append(f"{p.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not found, "ask the model kind instead:\n" + "\n".join(found)


def test_the_grep_can_fail():
    assert VAE_CHECK.search('if cfg.get("arch") == "vae":')
    assert VAE_CHECK.search("if cfg.is_vae:")
    assert not VAE_CHECK.search('name = "vae"')


def test_every_architecture_has_its_kind():
    assert kinds.names()[:2] == ["classifier", "vae"]
    assert kinds.for_arch("vae").name == "vae"
    assert all(kinds.for_arch(a).name == "classifier" for a in architectures.names())
    assert kinds.for_arch("no_such_arch").name == "classifier"  # whose check names it
    assert kinds.for_arch("vae_notebook").name == "vae"
    assert kinds.arch_names() == architectures.names() + ["vae", "vae_notebook"]
    vae, clf = kinds.get("vae"), kinds.get("classifier")
    assert (vae.studio, vae.evaluable, vae.predicts_labels, vae.uses_heads) == \
        (True, False, False, False)
    assert (clf.studio, clf.evaluable, clf.predicts_labels, clf.uses_heads) == \
        (False, True, True, True)
    assert TrainConfig(arch="vae").kind is vae and TrainConfig().kind is clf
    with pytest.raises(ConfigError, match="unknown model kind"):
        kinds.get("nope")
    with pytest.raises(ValueError, match="already"):
        kinds.register(kinds.VAE())


def test_transfer_presets_come_from_the_registry():
    assert [n for n in architectures.names() if architectures.get(n).transfer] == \
        ["vgg16", "mobilenetv3small", "efficientnetb0"]


# --- a third kind, in one place ------------------------------------------------------------
class AgeRegressor(kinds.ModelKind):
    """Years of age from the mean colour of the face: one regression head, always "age"."""

    name = "age_regressor"
    title = "age regressor"
    archs = ("mean_colour_age",)
    defaults = {"units": 4}

    def check(self, cfg, labels):
        if list(cfg.heads) != ["age"] or labels["age"].kind != "years":
            raise ConfigError("the age regressor predicts age in years, and only that")
        if set(cfg.arch_params) - {"units"}:
            raise ConfigError("the age regressor's only option is units")

    def build(self, cfg, heads, prep=None, metadata=None):
        import keras

        from faceml.modeling.layers import FacePreprocessing

        c = 1 if cfg.data.color == "gray" else 3
        mean, std = prep.scaling() if prep is not None else ((0.0,), (255.0,))
        meta = {**(metadata or {}), "arch": cfg.arch, "heads": [h.to_dict() for h in heads]}
        x = keras.Input((cfg.data.size, cfg.data.size, c))
        z = FacePreprocessing(cfg.data.size, cfg.data.color, mean, std, metadata=meta)(x)
        z = keras.layers.GlobalAveragePooling2D()(z)
        z = keras.layers.Dense(cfg.arch_params.get("units", 4), activation="relu")(z)
        return keras.Model(x, {h.name: architectures.head_output(z, h) for h in heads})


@pytest.fixture
def third_kind():
    kind = kinds.register(AgeRegressor())
    yield kind
    kinds.unregister(kind.name)


def test_a_third_kind_trains_through_the_engine(third_kind, tmp_path):
    from faceml.training.engine import train_run

    data = PrepOptions(dataset="synthetic", dataset_options={"n": 120}, size=16, color="gray",
                       age="years")
    cfg = TrainConfig(data=data, arch="mean_colour_age", heads=["age"], epochs=1,
                      batch_size=32)
    assert cfg.kind is third_kind and "mean_colour_age" in kinds.arch_names()
    cfg.validate()
    with pytest.raises(ConfigError, match="only that"):
        TrainConfig(data=data, arch="mean_colour_age", heads=["eyewear"]).validate()
    store = RunStore(tmp_path / "runs")
    run = store.create(cfg.run_id(), cfg.canonical())[0]
    status = train_run(run)
    assert status["state"] == "done", status
    assert run.kind == "age_regressor" and store.find(kind="age_regressor") == [run]
    # it predicts labels: the run stores predictions and their metrics, like a classifier's
    assert third_kind.predicts_labels
    pred = run.predictions()
    assert {"age_true", "age_pred"} <= set(pred.columns) and set(pred["split"]) == {"val", "test"}
    assert [h.name for h in run.heads()] == ["age"] and run.heads()[0].kind == "regression"
    assert set(run.metrics()) == {"val", "test"}
    model = run.load_model()
    assert set(model.output_names) == {"age"}


def test_a_kind_that_predicts_no_labels_stores_its_own_metrics(third_kind, tmp_path):
    """The engine stores ``split_metrics`` for a kind that predicts no labels."""
    from faceml.training.engine import train_run

    class Silent(AgeRegressor):
        name = "silent_age"
        archs = ("silent_age",)
        predicts_labels = evaluable = False

        def split_metrics(self, model, cfg, prep, split):
            return {"split": split, "n": int(len(prep.split_index(split)))}

    kinds.register(Silent())
    try:
        data = PrepOptions(dataset="synthetic", dataset_options={"n": 120}, size=16,
                           color="gray", age="years")
        cfg = TrainConfig(data=data, arch="silent_age", heads=["age"], epochs=1, batch_size=32)
        run = RunStore(tmp_path / "runs").create(cfg.run_id(), cfg.canonical())[0]
        assert train_run(run)["state"] == "done"
        assert not run.has_predictions()
        assert run.metrics() == {"val": {"split": "val", "n": 18},  # 15 % of 120 each
                                 "test": {"split": "test", "n": 18}}
    finally:
        kinds.unregister("silent_age")


def test_a_kind_without_its_own_form_part_gets_the_generic_one(third_kind):
    import json

    from ui.kind_forms import FORMS, GENERIC, form_for
    from ui.runs import form_state

    assert form_for(kinds.get("vae")) is FORMS["vae"] and form_for(third_kind) is GENERIC
    cfg = TrainConfig(data=PrepOptions(dataset="synthetic", age="years"),
                      arch="mean_colour_age", arch_params={"units": 8}, heads=["age"])
    s = form_state(cfg)
    assert s["arch"] == "mean_colour_age" and s["heads_synthetic"] == ["age"]
    assert json.loads(s["params_age_regressor"]) == {"units": 8}
