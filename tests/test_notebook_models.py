"""The course notebooks' models, layer for layer: every preset builds to the notebook's printed
``model.summary()`` total (and the weight-free sizing agrees with Keras), binary heads as a
2-unit softmax end to end, the builder's pool stride, the configurable VGG16 head and the
notebook's conv VAE."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from faceml.config import TrainConfig
from faceml.data.heads import HeadSpec
from faceml.data.prepare import PrepOptions
from faceml.errors import ConfigError
from faceml.flags import train_command
from faceml.modeling import architectures as A
from faceml.modeling import builder, kinds, modelio, vae
from faceml.modeling.sizing import model_size

GENDER2 = HeadSpec("gender", "binary", ["Female", "Male"], output="softmax2")
GENDER1 = HeadSpec("gender", "binary", ["Female", "Male"])
AGE9 = HeadSpec("age", "multiclass", [f"a{i}" for i in range(9)])
AGE10 = HeadSpec("age", "multiclass", [f"d{i}" for i in range(10)])
RACE5 = HeadSpec("race", "multiclass", list("ABCDE"))
AGE_YEARS = HeadSpec("age", "regression", target_mean=33.0, target_std=19.0)
SMALL = {"filters": [2, 4], "dense_units": 0}

FAIRFACE = PrepOptions(dataset="fairface", size=32, color="gray", age="fairface9")
UTK_CSV = PrepOptions(dataset="utkface-csv", size=48, color="gray", age="decades")
UTK128 = PrepOptions(dataset="utkface", size=128, color="rgb")

# name, (arch, size, colour, heads, params), config for sizing, (total, trainable)
NOTEBOOK = {
    "fairface mlp gender": (("mlp", 32, "gray", [GENDER2], {}),
                            dict(data=FAIRFACE, heads=["gender"], binary_output="softmax2"),
                            (1_625_902, 1_625_902)),
    "fairface mlp age9": (("mlp", 32, "gray", [AGE9], {}),
                          dict(data=FAIRFACE, heads=["age"]), (1_626_609, 1_626_609)),
    "fairface small_cnn gender": (("small_cnn", 32, "gray", [GENDER2], {}),
                                  dict(data=FAIRFACE, heads=["gender"], binary_output="softmax2"),
                                  (785_342, 785_342)),
    "fairface small_cnn age9": (("small_cnn", 32, "gray", [AGE9], {}),
                                dict(data=FAIRFACE, heads=["age"]), (786_049, 786_049)),
    "fairface own_cnn gender": (("own_cnn", 32, "gray", [GENDER2], {}),
                                dict(data=FAIRFACE, heads=["gender"], binary_output="softmax2"),
                                (651_266, 651_266 - 448)),
    "fairface own_cnn age9": (("own_cnn", 32, "gray", [AGE9], {}),
                              dict(data=FAIRFACE, heads=["age"]), (652_169, 652_169 - 448)),
    "fairface multitask_cnn": (("multitask_cnn", 32, "gray", [GENDER2, AGE9], {}),
                               dict(data=FAIRFACE, heads=["gender", "age"],
                                    binary_output="softmax2"),
                               (106_315, 106_315)),
    "utk-csv age10": (("utk_csv_cnn", 48, "gray", [AGE10], {}),
                      dict(data=UTK_CSV, heads=["age"]), (38_298, 38_298)),
    "utk-csv ethnicity": (("utk_csv_cnn", 48, "gray", [RACE5], SMALL),
                          dict(data=UTK_CSV, heads=["race"], arch_params=SMALL), (2_981, 2_981)),
    "utk-csv gender": (("utk_csv_cnn", 48, "gray", [GENDER1], SMALL),
                       dict(data=UTK_CSV, heads=["gender"], arch_params=SMALL), (673, 673)),
    "utk128 vgg16": (("vgg16", 128, "rgb", [GENDER1], {"weights": None}),
                     dict(data=UTK128, heads=["gender"]), (14_846_273, 131_585)),
    # not printed by the notebook: what these layers give (Conv valid, Dense 256 → 128)
    "utk128 utk_cnn4": (("utk_cnn4", 128, "rgb", [GENDER1, AGE_YEARS], {}),
                        dict(data=UTK128, heads=["gender", "age"]), (2_781_122, 2_781_122)),
    # the gender-folder notebook at 100×100 RGB: ≈9.05 M with its stride-1 pools
    "folder gender_baseline": (("gender_baseline", 100, "rgb", [GENDER1], {}),
                               dict(data=PrepOptions(dataset="utkface", size=100, color="rgb"),
                                    heads=["gender"]),
                               (9_050_961, 9_050_961)),
}


@pytest.mark.parametrize("case", list(NOTEBOOK))
def test_notebook_models_build_to_the_notebooks_parameter_counts(case):
    (arch, size, color, heads, params), cfg, counts = NOTEBOOK[case]
    model = A.build(arch, image_size=size, color=color, heads=heads, **params)
    assert A.param_counts(model) == counts
    # the weight-free sizing (Train page, hosted cap) gives the same numbers
    sized = model_size(TrainConfig(arch=arch, **cfg))
    assert (sized.total, sized.trainable) == counts
    assert sized.table["params"].sum() == counts[0]


def test_gender_baseline_is_about_9_05_million_and_pools_with_stride_1():
    model = A.build("gender_baseline", image_size=100, color="rgb", heads=[GENDER1])
    assert abs(model.count_params() - 9.05e6) < 0.01e6
    for b in (1, 2):
        assert model.get_layer(f"block{b}_pool").strides == (1, 1)
    assert tuple(model.get_layer("flatten").output.shape) == (None, 94 * 94 * 16)


def test_own_cnn_is_conv_relu_then_batchnorm_then_pool():
    model = A.build("own_cnn", image_size=32, color="gray", heads=[GENDER2])
    types = [type(layer).__name__ for layer in model.layers[2:]]
    assert types == ["Conv2D", "BatchNormalization", "MaxPooling2D"] * 3 + [
        "Flatten", "Dense", "Dropout", "Dense", "Dropout", "Dense"]
    assert model.get_layer("block1_conv").activation is keras.activations.relu
    assert [model.get_layer(n).rate for n in ("fc1_drop", "fc2_drop")] == [0.5, 0.5]


def test_utk_cnn4_has_the_dense_256_128_stack_and_legacy_dense_units_builds_the_old_one():
    model = A.build("utk_cnn4", image_size=128, color="rgb", heads=[GENDER1, AGE_YEARS])
    assert [model.get_layer(n).units for n in ("fc1", "fc2")] == [256, 128]
    assert model.get_layer("fc2_drop").rate == 0.5
    old = A.build("utk_cnn4", image_size=128, color="rgb", heads=[GENDER1], dense_units=128)
    # the earlier preset: Flatten (9,216) → Dense 128 → Dropout → sigmoid
    assert old.count_params() == 388_416 + (9216 * 128 + 128) + 129
    with pytest.raises(ConfigError, match="give dense .* or dense_units .*, not both"):
        A.check("utk_cnn4", 128, "rgb", [GENDER1], dense=[64], dense_units=32)


def test_utk_csv_cnn_without_dense_goes_straight_to_the_head():
    model = A.build("utk_csv_cnn", image_size=48, color="gray", heads=[GENDER1], **SMALL)
    names = [layer.name for layer in model.layers]
    assert "fc1" not in names and names[-2:] == ["flatten", "gender"]
    with pytest.raises(ConfigError, match="filters must name at least one convolution"):
        A.check("utk_csv_cnn", 48, "gray", [GENDER1], filters=[])
    with pytest.raises(ConfigError, match="dense_units must be a whole number ≥ 0; got -1"):
        A.check("utk_csv_cnn", 48, "gray", [GENDER1], dense_units=-1)


# --- the builder's pool stride ---------------------------------------------------------------
def test_custom_pool_stride_changes_the_map_and_the_plan():
    blocks = [{"filters": 4, "padding": "valid", "pool": 2, "pool_stride": 1}]
    model = A.build("custom", image_size=10, color="gray", heads=[GENDER1], conv_blocks=blocks,
                    dense=[])
    # 10 → 8 (conv 3 valid) → 7 (pool 2 stride 1): 7·7·4 features
    assert tuple(model.get_layer("flatten").output.shape) == (None, 196)
    assert model.get_layer("block1_pool").strides == (1, 1)
    assert model.count_params() == (9 * 4 + 4) + (196 + 1)
    plan = A.get("custom").plan(10, {"conv_blocks": [{"kernel": 3, "padding": "valid",
                                                      "pool": 2, "pool_stride": 1}]})
    assert A.final_map_size(10, plan) == 7
    default = A.build("custom", image_size=10, color="gray", heads=[GENDER1],
                      conv_blocks=[{**blocks[0], "pool_stride": None}], dense=[])
    assert tuple(default.get_layer("flatten").output.shape) == (None, 4 * 4 * 4)
    # the default blocks the Train page shows do not name pool_stride (same run ids)
    assert all("pool_stride" not in b for b in A.get("custom").defaults["conv_blocks"])


@pytest.mark.parametrize("block,message", [
    ({"filters": 4, "pool": 2, "pool_stride": 0},
     "conv block 1: pool_stride must be a whole number ≥ 1; got 0"),
    ({"filters": 4, "pool": 2, "pool_stride": 1.5},
     "conv block 1: pool_stride must be a whole number ≥ 1; got 1.5"),
    ({"filters": 4, "pool": 0, "pool_stride": 1},
     "conv block 1: pool_stride needs a pool (pool is 0)"),
])
def test_custom_pool_stride_errors(block, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        A.check("custom", 16, "gray", [GENDER1], conv_blocks=[block])


def test_a_pool_stride_that_empties_the_map_names_the_block():
    blocks = [{"filters": 4, "padding": "valid", "pool": 4, "pool_stride": 3}] * 2
    with pytest.raises(ConfigError, match=r"conv block 2 \(max-pool 4, stride 3\) would shrink "
                                          r"the 1×1 map to 0×0"):  # 12 → 10 → 3 → 1
        A.check("custom", 12, "gray", [GENDER1], conv_blocks=blocks)


# --- the VGG16 head --------------------------------------------------------------------------
VGG = 14_714_688  # the backbone without its top


def test_vgg16_defaults_build_the_same_model_as_before():
    model = A.build("vgg16", image_size=32, color="rgb", heads=[GENDER1], weights=None)
    names = [layer.name for layer in model.layers]
    assert names[-4:] == ["gap", "fc1", "fc1_drop", "gender"]
    assert A.param_counts(model) == (14_846_273, 131_585)
    legacy = A.build("vgg16", image_size=32, color="rgb", heads=[GENDER1], weights=None,
                     dense_units=256)
    assert [layer.name for layer in legacy.layers] == names
    assert A.param_counts(legacy) == A.param_counts(model)


def test_vgg16_bare_flatten_head_with_softmax2_and_several_fc_layers():
    bare = A.build("vgg16", image_size=64, color="rgb", heads=[GENDER2], weights=None,
                   pooling="flatten", dense=[])
    assert [layer.name for layer in bare.layers][-2:] == ["flatten", "gender"]
    assert bare.get_layer("gender").units == 2
    assert A.param_counts(bare) == (VGG + 2 * 2 * 512 * 2 + 2, 2 * 2 * 512 * 2 + 2)
    deep = A.build("vgg16", image_size=32, color="rgb", heads=[GENDER1], weights=None,
                   dense=[1024, 512], dropout=0.25)
    head = (512 * 1024 + 1024) + (1024 * 512 + 512) + 513
    assert A.param_counts(deep) == (VGG + head, head)
    assert deep.get_layer("fc2_drop").rate == 0.25
    with pytest.raises(ConfigError, match="pooling must be 'gap' .* or 'flatten'; got 'max'"):
        A.check("vgg16", 32, "rgb", [GENDER1], weights=None, pooling="max")
    with pytest.raises(ConfigError, match="dense entry 2 must be a whole number ≥ 1; got 0"):
        A.check("vgg16", 32, "rgb", [GENDER1], weights=None, dense=[8, 0])


# --- binary heads as a 2-unit softmax --------------------------------------------------------
def test_binary_output_is_left_out_of_the_run_id_when_default():
    # ids computed by the code before binary_output existed
    assert TrainConfig().run_id() == "0726df005525"
    own = TrainConfig(data=FAIRFACE, arch="own_cnn", heads=["gender", "age"], epochs=10,
                      batch_size=32)
    assert own.run_id() == "4dc8e8fb0eea"
    v = TrainConfig(data=PrepOptions(dataset="synthetic", dataset_options={"n": 200}, size=32,
                                     color="gray"), arch="vae", arch_params={"latent_dim": 10})
    assert v.run_id() == "3af5eb5ef3c6"
    assert "binary_output" not in own.canonical()
    soft = TrainConfig(data=FAIRFACE, arch="own_cnn", heads=["gender", "age"], epochs=10,
                       batch_size=32, binary_output="softmax2")
    assert soft.canonical()["binary_output"] == "softmax2" and soft.run_id() != own.run_id()
    assert TrainConfig.from_dict(soft.canonical()).run_id() == soft.run_id()
    assert "--binary-output softmax2" in train_command(soft.canonical())
    assert "--binary-output" not in train_command(own.canonical())
    with pytest.raises(ConfigError, match="unknown binary output 'tanh'; choose sigmoid or "
                                          "softmax2"):
        TrainConfig(data=FAIRFACE, arch="mlp", heads=["gender"], binary_output="tanh").validate()


def test_cli_flag_fills_binary_output():
    from faceml.cli.common import Parser
    from faceml.flags import add_train_args, train_values

    p = Parser()
    add_train_args(p)
    assert train_values(p.parse_args(["--binary-output", "softmax2"]))["binary_output"] == \
        "softmax2"
    assert train_values(p.parse_args([]))["binary_output"] == "sigmoid"


def test_head_spec_output():
    assert GENDER2.loss == "sparse_categorical_crossentropy" and GENDER2.units == 2
    assert GENDER1.loss == "binary_crossentropy" and GENDER1.units == 1
    assert "output" not in GENDER1.to_dict()  # heads stored before the field read the same
    assert HeadSpec.from_dict(GENDER2.to_dict()) == GENDER2
    assert GENDER1.with_output("softmax2") == GENDER2
    assert AGE9.with_output("softmax2") is AGE9
    with pytest.raises(ValueError, match="only a binary head"):
        HeadSpec("age", "multiclass", ["a", "b", "c"], output="softmax2")


def test_kind_applies_binary_output_to_binary_heads_only():
    from faceml.data.prepare import labels_for

    cfg = TrainConfig(data=FAIRFACE, arch="multitask_cnn", heads=["gender", "age"],
                      binary_output="softmax2")
    heads = cfg.kind.placeholder_heads(cfg, labels_for(FAIRFACE))
    assert [(h.name, h.output, h.units) for h in heads] == [("gender", "softmax2", 2),
                                                            ("age", "sigmoid", 9)]


def test_named_outputs_gives_p_class1_for_a_softmax2_head():
    model = A.build("mlp", image_size=8, color="gray", heads=[GENDER2, AGE9])
    x = np.random.default_rng(0).integers(0, 256, (5, 8, 8, 1), dtype=np.uint8)
    raw = model(x.astype("float32"), training=False)
    assert tuple(raw["gender"].shape) == (5, 2)
    out = modelio.predict_arrays(model, x)
    assert out["gender"].shape == (5, 1) and out["age"].shape == (5, 9)
    np.testing.assert_allclose(out["gender"][:, 0],
                               keras.ops.convert_to_numpy(raw["gender"])[:, 1], rtol=1e-5)
    # a sigmoid model is untouched
    sig = A.build("mlp", image_size=8, color="gray", heads=[GENDER1])
    assert modelio.predict_arrays(sig, x)["gender"].shape == (5, 1)


def test_softmax2_trains_predicts_evaluates_and_reloads_safely(tmp_path):
    from faceml.runs import RunStore
    from faceml.training.engine import train_run

    data = PrepOptions(dataset="synthetic", dataset_options={"n": 160}, size=16, color="gray")
    cfg = TrainConfig(data=data, arch="small_cnn", heads=["eyewear", "expression"], epochs=1,
                      batch_size=32, binary_output="softmax2")
    run, _ = RunStore().create(cfg.run_id(), cfg.canonical())
    st = train_run(run)
    assert st["state"] == "done", st
    assert [(h.name, h.output) for h in run.heads()] == [("eyewear", "softmax2"),
                                                         ("expression", "sigmoid")]
    preds = run.predictions()
    p = preds["eyewear_prob_glasses"].to_numpy()
    assert ((p >= 0) & (p <= 1)).all() and np.allclose(p + preds["eyewear_prob_none"], 1)
    m = run.metrics()
    assert 0 <= m["test"]["heads"]["eyewear"]["accuracy"] <= 1
    assert 0 <= m["test"]["heads"]["eyewear"]["auc"] <= 1
    # Keras's own accuracy of the 2-unit output (argmax) agrees with the frame's P(class 1)
    hist = run.history()
    assert m["val"]["heads"]["eyewear"]["accuracy"] == \
        pytest.approx(hist["val_eyewear_accuracy"].iloc[-1], abs=1e-6)
    saved = tmp_path / "model.keras"
    modelio.save_model(run.load_model("best"), saved)
    model = modelio.load_model(saved)  # safe_mode=True
    assert model.get_layer("eyewear").units == 2
    x = np.random.default_rng(1).integers(0, 256, (4, 16, 16, 1), dtype=np.uint8)
    assert modelio.predict_arrays(model, x)["eyewear"].shape == (4, 1)


def test_ensemble_members_must_agree_on_the_binary_output():
    from faceml.errors import FaceMLError
    from faceml.modeling.ensemble import build_ensemble

    a = A.build("mlp", image_size=8, color="gray", heads=[GENDER2])
    b = A.build("mlp", image_size=8, color="gray", heads=[GENDER1])
    with pytest.raises(FaceMLError, match="same heads"):
        build_ensemble([a, b])


# --- the notebook's conv VAE -----------------------------------------------------------------
def test_notebook_vae_layers_counts_and_output():
    model = vae.build_notebook_vae(32, "gray")
    enc, dec = vae.vae_parts(model)
    assert (enc.count_params(), dec.count_params(), model.count_params()) == \
        (58_772, 45_569, 104_341)
    assert tuple(dec.outputs[0].shape) == (None, 32, 32, 1)
    assert dec.get_layer("dec_out").activation is keras.activations.sigmoid
    assert [tuple(dec.get_layer(n).output.shape)[1:3] for n in
            ("dec_reshape", "dec_deconv0", "dec_deconv1", "dec_conv", "dec_deconv2")] == \
        [(2, 2), (4, 4), (9, 9), (7, 7), (15, 15)]
    assert vae.recognise(model) and vae.latent_dim(model) == 10
    x = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 1), dtype=np.uint8)
    assert vae.reconstruct(model, x).shape == (3, 32, 32, 1)
    sized = model_size(TrainConfig(data=FAIRFACE, arch="vae_notebook"))
    assert (sized.total, sized.trainable) == (104_341, 104_341)


def test_notebook_vae_loss_is_the_notebooks():
    model = vae.build_notebook_vae(32, "gray")
    kw = vae.vae_compile_kwargs(model)
    assert kw["loss_weights"] == {"recon": 1.0, "kl": 0.1}
    rng = np.random.default_rng(0)
    y = rng.integers(0, 256, (4, 32, 32, 1)).astype("float32")
    p = rng.random((4, 32, 32, 1)).astype("float32")
    recon = float(kw["loss"]["recon"](y, p))
    mse = float(np.mean((y / 255 - p) ** 2))
    assert recon == pytest.approx(mse * 1024, rel=1e-5)  # the notebook's MSE × 1024
    mu, lv = rng.normal(size=(4, 10)).astype("float32"), rng.normal(size=(4, 10)).astype("float32")
    kl = keras.ops.convert_to_numpy(vae.KLDivergence()([mu, lv]))[:, 0]
    notebook = 0.05 * np.sum(np.exp(lv) + mu ** 2 - lv - 1, axis=1)
    np.testing.assert_allclose(0.1 * kl, notebook, rtol=1e-5)


def test_notebook_vae_through_its_kind_and_a_safe_reload(tmp_path):
    kind = kinds.for_arch("vae_notebook")
    assert kind.name == "vae" and kind.defaults_for("vae_notebook")["beta"] == 0.1
    assert "filters" not in kind.defaults_for("vae_notebook")
    cfg = TrainConfig(data=FAIRFACE, arch="vae_notebook", arch_params={"latent_dim": 4})
    cfg.validate()
    model = kind.build(cfg, [])
    kind.compile(model, cfg, [], "adam")
    x = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 1), dtype=np.uint8)
    model.fit(x, vae.vae_targets(x), epochs=1, batch_size=4, verbose=0)
    saved = tmp_path / "vae.keras"
    modelio.save_model(model, saved)
    again = modelio.load_model(saved)
    assert vae.recognise(again) and vae.latent_dim(again) == 4
    assert vae.decode(again, np.zeros(4)).shape == (1, 32, 32, 1)


@pytest.mark.parametrize("cfg,message", [
    (dict(data=PrepOptions(dataset="fairface", size=64, color="gray")),
     "the notebook VAE is built for 32×32 faces .* got 64×64: use size 32"),
    (dict(data=FAIRFACE, arch_params={"filters": [8]}),
     "unknown option 'filters' of the notebook VAE"),
    (dict(data=FAIRFACE, arch_params={"beta": -1}), "beta must be a finite number >= 0"),
])
def test_notebook_vae_errors(cfg, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(arch="vae_notebook", **cfg).validate()


def test_head_output_builds_a_softmax2_dense_named_by_the_head():
    x = keras.Input((4,))
    y = builder.head_output(x, GENDER2)
    layer = y._keras_history.operation
    assert (layer.name, layer.units, layer.activation) == ("gender", 2, keras.activations.softmax)
