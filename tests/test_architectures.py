"""Architecture registry: every preset builds, parameter counts are pinned (two by hand), dict
outputs per head, config / .keras round trips, augmentation only in training, and every
ConfigError raised by check() before anything trains."""

from __future__ import annotations

import keras
import numpy as np
import pandas as pd
import pytest

from faceml.modeling import architectures as A
from faceml.modeling import builder
from faceml.modeling.layers import ImageNetPreprocessing
from faceml.errors import ConfigError
from faceml.data.heads import HeadSpec
from faceml.modeling.layers import FacePreprocessing, find_preprocessing

GENDER = HeadSpec("gender", "binary", ["female", "male"])
RACE = HeadSpec(
    "race",
    "multiclass",
    [
        "Black",
        "East Asian",
        "Indian",
        "Latino_Hispanic",
        "Middle Eastern",
        "Southeast Asian",
        "White",
    ],
)
AGE = HeadSpec("age", "regression", target_mean=33.5, target_std=19.0)

PRESETS = [
    "mlp",
    "small_cnn",
    "own_cnn",
    "multitask_cnn",
    "utk_csv_cnn",
    "utk_cnn4",
    "gender_baseline",
    "default_cnn",
    "deep_cnn",
    "vgg16",
    "mobilenetv3small",
    "efficientnetb0",
    "custom",
]
TRANSFER = ("vgg16", "mobilenetv3small", "efficientnetb0")
# VGG16 and EfficientNet-B0 are built once each, at 32 px: after global average pooling their
# parameter counts do not depend on the input size, so these equal the counts at default_size.
BUILD_SIZE = {"vgg16": 32, "efficientnetb0": 32}

# (total, trainable) at the default input (size, colour) with one binary head.
PINNED = {
    "mlp": (1_625_801, 1_625_801),  # 32 gray
    "small_cnn": (785_241, 785_241),  # 32 gray
    "own_cnn": (651_137, 650_689),  # 32 gray; 448 BatchNorm moving statistics
    "multitask_cnn": (64_513, 64_513),  # 32 gray
    "utk_csv_cnn": (38_145, 38_145),  # 48 gray
    "utk_cnn4": (2_780_993, 2_780_993),  # 128 rgb; Dense 256 → Dense 128 as the notebook
    "gender_baseline": (9_050_961, 9_050_961),  # 100 rgb; stride-1 pools keep a 94×94 map
    "default_cnn": (456_385, 455_425),  # 64 rgb; 960 BatchNorm moving statistics
    "deep_cnn": (1_241_185, 1_239_265),  # 64 rgb; 1,920 BatchNorm moving statistics
    "vgg16": (14_846_273, 131_585),  # frozen 14,714,688-parameter backbone
    "mobilenetv3small": (1_087_089, 147_969),  # 96 rgb, frozen backbone
    "efficientnetb0": (4_377_764, 328_193),  # frozen backbone
    "custom": (2_116_801, 2_116_801),  # 64 rgb, default blocks
}

_MODELS: dict[str, keras.Model] = {}


def default_model(name: str) -> keras.Model:
    """One build per preset for the whole file (transfer ones with weights=None)."""
    if name not in _MODELS:
        spec = A.get(name)
        params = {"weights": None} if name in TRANSFER else {}
        _MODELS[name] = A.build(
            name,
            image_size=BUILD_SIZE.get(name, spec.default_size),
            color=spec.default_color,
            heads=[GENDER],
            **params,
        )
    return _MODELS[name]


def pixels(model: keras.Model, n: int = 3, seed: int = 0) -> np.ndarray:
    shape = model.inputs[0].shape[1:]
    return np.random.default_rng(seed).integers(0, 256, (n, *shape), dtype=np.uint8)


def test_registry_lists_every_preset_with_its_spec():
    assert A.names()[: len(PRESETS)] == PRESETS
    spec = A.get("mlp")
    assert (spec.name, spec.default_size, spec.default_color, spec.multitask) == (
        "mlp",
        32,
        "gray",
        False,
    )
    assert "FairFace" in spec.description
    assert A.get("multitask_cnn").multitask
    vgg = A.get("vgg16")
    assert vgg.needs_rgb and vgg.min_size == 32 and vgg.defaults["weights"] == "imagenet"
    assert vgg.defaults["fine_tune"] is False
    assert A.get("default_cnn").min_size == 16  # four max-pools of 2
    assert set(A.get("custom").to_dict()) >= {
        "name",
        "title",
        "description",
        "default_size",
        "default_color",
        "defaults",
        "min_size",
        "needs_rgb",
        "multitask",
    }


@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_builds_for_its_default_input_with_pinned_counts(name):
    spec = A.get(name)
    model = default_model(name)
    size = BUILD_SIZE.get(name, spec.default_size)
    assert tuple(model.inputs[0].shape) == (
        None,
        size,
        size,
        1 if spec.default_color == "gray" else 3,
    )
    pre = model.layers[1]
    assert isinstance(pre, FacePreprocessing) and find_preprocessing(model) is pre
    assert pre.metadata["arch"] == name and pre.metadata["heads"] == [GENDER.to_dict()]
    assert isinstance(model.output, dict) and list(model.output) == ["gender"]
    assert tuple(model.output["gender"].shape) == (None, 1)
    out = model.get_layer("gender")
    assert out.dtype_policy.name == "float32" and out.activation is keras.activations.sigmoid
    assert A.param_counts(model) == PINNED[name]


def test_mlp_and_small_cnn_counts_by_hand():
    mlp = (32 * 32 * 1024 + 1024) + (1024 * 512 + 512) + (512 * 100 + 100) + (100 * 1 + 1)
    assert mlp == 1_625_801 and A.param_counts(default_model("mlp")) == (mlp, mlp)
    conv = 5 * 5 * 1 * 40 + 40  # 32 -> 28 (valid 5x5) -> 14 (pool 2)
    small = conv + (14 * 14 * 40 * 100 + 100) + (100 * 1 + 1)
    assert small == 785_241 and A.param_counts(default_model("small_cnn")) == (small, small)


def test_layer_table_sums_to_the_parameter_count():
    for name in ("default_cnn", "vgg16"):
        model = default_model(name)
        table = A.layer_table(model)
        assert isinstance(table, pd.DataFrame)
        assert list(table.columns) == ["layer", "type", "output_shape", "params", "trainable"]
        assert table["params"].sum() == model.count_params()
        assert table["trainable"].sum() == A.param_counts(model)[1]
        assert table["layer"].iloc[1] == "preprocessing"
    row = table.set_index("layer").loc["vgg16"]
    assert (row["params"], row["trainable"]) == (14_714_688, 0)  # frozen backbone
    assert table.set_index("layer").loc["gender", "output_shape"] == "(None, 1)"


def test_multitask_preset_has_one_branch_and_output_per_head():
    model = A.build("multitask_cnn", image_size=32, color="gray", heads=[GENDER, RACE, AGE])
    assert sorted(model.output) == ["age", "gender", "race"]
    for h in ("gender", "race", "age"):
        assert model.get_layer(f"{h}_fc1").units == 128 and model.get_layer(f"{h}_fc2").units == 64
        assert model.get_layer(h).dtype_policy.name == "float32"
    out = model(pixels(model), training=False)
    assert (
        out["gender"].shape == (3, 1) and out["race"].shape == (3, 7) and out["age"].shape == (3, 1)
    )
    np.testing.assert_allclose(keras.ops.convert_to_numpy(out["race"]).sum(1), 1.0, rtol=1e-5)
    # three branches on a 256-feature shared trunk (23,296 parameters)
    branch = (256 * 128 + 128) + (128 * 64 + 64)
    assert model.count_params() == 23_296 + 3 * branch + 65 + (64 * 7 + 7) + 65


def test_single_trunk_dict_outputs_and_regression_in_years():
    model = A.build("default_cnn", image_size=32, color="rgb", heads=[GENDER, RACE, AGE])
    assert sorted(model.output) == ["age", "gender", "race"]
    assert (
        model.get_layer("race").units == 7
        and model.get_layer("race").activation is keras.activations.softmax
    )
    lin = model.get_layer("age_linear")
    lin.set_weights([np.zeros_like(w) for w in lin.get_weights()])
    out = model(pixels(model), training=False)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(out["age"]), 33.5)  # 0 * 19 + 33.5 years


def _assert_same_predictions(a: keras.Model, b: keras.Model, x: np.ndarray):
    pa, pb = a(x, training=False), b(x, training=False)
    assert sorted(pa) == sorted(pb)
    for k in pa:
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(pa[k]), keras.ops.convert_to_numpy(pb[k])
        )


AUG = [
    {"type": "flip"},
    {"type": "rotation", "factor": 0.05},
    {"type": "zoom", "factor": 0.1},
    {"type": "contrast", "factor": 0.2},
]


@pytest.mark.parametrize(
    "name, heads, kw",
    [
        (
            "default_cnn",
            [GENDER, AGE],
            {"augmentation": AUG, "mean": [120.0, 110.0, 100.0], "std": [60.0, 55.0, 50.0]},
        ),
        ("multitask_cnn", [GENDER, RACE, AGE], {}),
    ],
)
def test_config_and_keras_file_round_trip(tmp_path, name, heads, kw):
    spec = A.get(name)
    model = A.build(
        name,
        image_size=spec.default_size,
        color=spec.default_color,
        heads=heads,
        metadata={"dataset": "utkface"},
        **kw,
    )
    x = pixels(model)
    clone = keras.Model.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    _assert_same_predictions(model, clone, x)
    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    _assert_same_predictions(model, loaded, x)
    meta = find_preprocessing(loaded).metadata
    assert meta["dataset"] == "utkface" and meta["arch"] == name
    assert [HeadSpec.from_dict(h) for h in meta["heads"]] == heads
    assert meta["augmentation"] == [
        {**A.AUGMENTATIONS[a["type"]], **a} for a in kw.get("augmentation", [])
    ]


def test_augmentation_only_in_training():
    model = A.build(
        "default_cnn",
        image_size=32,
        color="rgb",
        heads=[GENDER],
        augmentation=AUG,
        mean=[127.0],
        std=[64.0],
    )
    names = [layer.name for layer in model.layers]
    assert names[:7] == [
        "pixels",
        "preprocessing",
        "augment_1_flip",
        "augment_2_rotation",
        "augment_3_zoom",
        "augment_4_contrast",
        "block1_conv",
    ]
    x = pixels(model, n=4)
    np.testing.assert_array_equal(
        model.predict(x, verbose=0)["gender"], model.predict(x, verbose=0)["gender"]
    )
    # the contrast layer clips to the scaled range of 0..255, not to 0..255 itself
    assert model.get_layer("augment_4_contrast").value_range == pytest.approx((-127 / 64, 128 / 64))
    scaled = model.get_layer("preprocessing")(x)
    rot = model.get_layer("augment_2_rotation")
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(rot(scaled, training=False)), keras.ops.convert_to_numpy(scaled)
    )
    assert not np.allclose(
        keras.ops.convert_to_numpy(rot(scaled, training=True)), keras.ops.convert_to_numpy(scaled)
    )


def test_transfer_presets_get_the_input_their_backbone_expects():
    vgg = default_model("vgg16")
    pre = find_preprocessing(vgg)
    assert (pre.mean, pre.std, pre.metadata["scaling"]) == ([0.0], [1.0], "caffe")
    assert vgg.get_layer("imagenet_caffe").mode == "caffe"
    assert vgg.get_layer("vgg16").trainable is False
    eff = find_preprocessing(default_model("efficientnetb0"))
    assert (eff.mean, eff.std, eff.metadata["scaling"]) == ([0.0], [1.0], "raw")
    # build() overrides statistics fitted for a from-scratch model: the backbone wants 0-255
    model = A.build(
        "mobilenetv3small",
        image_size=32,
        color="rgb",
        heads=[GENDER],
        weights=None,
        fine_tune=True,
        mean=[120.0],
        std=[60.0],
    )
    assert find_preprocessing(model).mean == [0.0] and find_preprocessing(model).std == [1.0]
    base = model.get_layer("MobileNetV3Small")
    trainable = {layer.name for layer in base.layers if layer.trainable and layer.weights}
    assert "conv_1" in trainable and "expanded_conv_10_expand" in trainable
    assert (
        "expanded_conv_9_expand" not in trainable and "conv_1_bn" not in trainable
    )  # BN stays frozen
    assert A.param_counts(model)[1] > PINNED["mobilenetv3small"][1]


def test_caffe_preprocessing_matches_keras_applications():
    x = np.random.default_rng(1).integers(0, 256, (2, 4, 4, 3)).astype("float32")
    ours = keras.ops.convert_to_numpy(ImageNetPreprocessing("caffe")(x))
    ref = keras.applications.vgg16.preprocess_input(x.copy())
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-4)
    assert (
        ImageNetPreprocessing.from_config(ImageNetPreprocessing("torch").get_config()).mode
        == "torch"
    )


@pytest.mark.filterwarnings("ignore:`input_shape` is undefined")
def test_missing_imagenet_weights_ask_for_random_initialisation(monkeypatch):
    from keras.src.utils import file_utils

    def offline(*args, **kwargs):  # keras' get_file raises a bare Exception when offline
        raise Exception(  # noqa: TRY002
            "URL fetch failure on https://storage.googleapis.com/...: None -- no network"
        )

    monkeypatch.setattr(file_utils, "get_file", offline)
    with pytest.raises(
        ConfigError,
        match=r"ImageNet weights for MobileNetV3-Small could not be "
        r"downloaded .*choose weights=None \(random initialisation\)",
    ):
        A.build("mobilenetv3small", image_size=32, color="rgb", heads=[GENDER])


def test_mixed_precision_outputs_are_float32():
    keras.mixed_precision.set_dtype_policy("mixed_float16")
    try:
        model = A.build("mlp", image_size=8, color="gray", heads=[GENDER, AGE])
    finally:
        keras.mixed_precision.set_dtype_policy("float32")
    assert model.get_layer("fc1").compute_dtype == "float16"
    assert all(model.output[k].dtype == "float32" for k in ("gender", "age"))


def test_register_a_preset_in_three_lines():
    try:

        @A.register(
            "tiny_test", title="Tiny", default_size=8, default_color="gray", defaults={"units": 4}
        )
        def tiny(x, *, image_size, color, heads, units):
            return keras.layers.Dense(units, name="fc1")(keras.layers.Flatten(name="flatten")(x))

        assert "tiny_test" in A.names() and A.get("tiny_test").defaults == {"units": 4}
        model = A.build("tiny_test", image_size=8, color="gray", heads=[GENDER], units=3)
        assert A.param_counts(model) == (8 * 8 * 3 + 3 + 3 + 1,) * 2
        with pytest.raises(ValueError, match="already registered"):
            A.register("tiny_test", title="again")(tiny)
    finally:
        builder._REGISTRY.pop("tiny_test", None)


# ------------------------------------------------------------------------------------------------
# ConfigError before anything trains
# ------------------------------------------------------------------------------------------------

H = [GENDER]
BLOCK = {"filters": 4}
CASES = [
    # unknown preset: names the known ones
    (
        ("resnet9000", 32, "gray", H),
        {},
        ["unknown architecture 'resnet9000'", "default_cnn", "vgg16"],
    ),
    # transfer models: RGB and size
    (
        ("vgg16", 32, "gray", H),
        {"weights": None},
        ["VGG16 needs RGB input of at least 32×32 pixels; got 32×32 gray"],
    ),
    (
        ("vgg16", 24, "rgb", H),
        {},
        ["VGG16 needs RGB input of at least 32×32 pixels; got 24×24 rgb"],
    ),
    (("mobilenetv3small", 64, "gray", H), {}, ["MobileNetV3-Small needs RGB input", "64×64 gray"]),
    (
        ("efficientnetb0", 16, "rgb", H),
        {},
        ["EfficientNet-B0 needs RGB input of at least 32×32", "16×16 rgb"],
    ),
    # maps that shrink to nothing, naming the block and the size
    (
        ("default_cnn", 8, "rgb", H),
        {},
        [
            (
                "conv block 4 (max-pool 2) would shrink the 1×1 map to 0×0: "
                "use larger images or fewer blocks"
            )
        ],
    ),
    (
        ("small_cnn", 4, "gray", H),
        {},
        ["conv block 1 (conv 5×5 valid) would shrink the 4×4 map to 0×0"],
    ),
    (
        ("utk_cnn4", 32, "rgb", H),
        {},
        ["conv block 4 (conv 3×3 valid) would shrink the 2×2 map to 0×0"],
    ),
    (
        ("gender_baseline", 6, "rgb", H),
        {},
        ["conv block 2 (max-pool 2, stride 1) would shrink the 1×1 map to 0×0"],
    ),
    (
        ("custom", 64, "rgb", H),
        {"conv_blocks": [BLOCK] * 4 + [{"filters": 4, "pool": 5}]},
        [
            (
                "conv block 5 (max-pool 5) would shrink the 4×4 map to 0×0: "
                "use larger images or fewer blocks"
            )
        ],
    ),
    # heads a preset cannot take
    (("mlp", 32, "gray", []), {}, ["needs at least 1 head", "got 0"]),
    (("multitask_cnn", 32, "gray", None), {}, ["needs at least 1 head"]),
    (("mlp", 32, "gray", [GENDER, GENDER]), {}, ["head 'gender' appears twice"]),
    (
        ("mlp", 32, "gray", [HeadSpec("race", "multiclass", ["x"])]),
        {},
        ["needs at least 2 classes"],
    ),
    (
        ("mlp", 32, "gray", [HeadSpec("age", "regression", target_std=0.0)]),
        {},
        ["positive target_std"],
    ),
    (("mlp", 32, "gray", [HeadSpec("my age", "regression")]), {}, ["head name 'my age'"]),
    # bad parameter values
    (
        ("default_cnn", 64, "rgb", H),
        {"dropout": 1.5},
        ["dropout must be a number in [0, 1); got 1.5"],
    ),
    (("default_cnn", 64, "rgb", H), {"dense_units": 0}, ["dense_units must be a whole number ≥ 1"]),
    (
        ("default_cnn", 64, "rgb", H),
        {"filters": 8},
        ["unknown parameter 'filters' for 'default_cnn'", "dense_units, dropout"],
    ),
    (
        ("mlp", 32, "gray", H),
        {"dropout": 0.1},
        ["unknown parameter 'dropout' for 'mlp'; known: none"],
    ),
    (("vgg16", 64, "rgb", H), {"weights": "celeba"}, ["weights must be 'imagenet' or None"]),
    (
        ("vgg16", 64, "rgb", H),
        {"fine_tune": "yes"},
        ["parameter 'fine_tune' of 'vgg16' must be true or false"],
    ),
    (
        ("custom", 64, "rgb", H),
        {"conv_blocks": [{"filters": 0}]},
        ["conv block 1: filters must be a whole number ≥ 1"],
    ),
    (
        ("custom", 64, "rgb", H),
        {"conv_blocks": [{"filters": 8, "padding": "full"}]},
        ["padding must be 'same' or 'valid'"],
    ),
    (
        ("custom", 64, "rgb", H),
        {"conv_blocks": [{"filters": 8, "pool": 1}]},
        ["pool must be 0 (no pooling) or a size ≥ 2"],
    ),
    (
        ("custom", 64, "rgb", H),
        {"conv_blocks": [{"filters": 8, "activation": "magic"}]},
        ["activation must be one of"],
    ),
    (
        ("custom", 64, "rgb", H),
        {"conv_blocks": [{"filters": 8, "stride": 2}]},
        ["unknown key 'stride'"],
    ),
    (
        ("custom", 64, "rgb", H),
        {"dense": [{"units": 8, "dropout": 1.0}]},
        ["dense layer 1: dropout must be a number in [0, 1)"],
    ),
    (
        ("custom", 64, "rgb", H),
        {"conv_blocks": "3 blocks"},
        ["conv_blocks must be a list of dicts"],
    ),
    (
        ("custom", 64, "rgb", H),
        {"global_pool": 1},
        ["parameter 'global_pool' of 'custom' must be true or false"],
    ),
    # input and augmentation
    (("mlp", 0, "gray", H), {}, ["image size must be a positive whole number"]),
    (("mlp", 32, "bgr", H), {}, ["colour must be 'gray' or 'rgb'; got 'bgr'"]),
    (
        ("mlp", 32, "gray", H),
        {"augmentation": [{"type": "blur"}]},
        ["unknown type 'blur'", "flip, rotation, zoom, contrast"],
    ),
    (
        ("mlp", 32, "gray", H),
        {"augmentation": [{"type": "rotation", "factor": 2}]},
        ["factor must be a number in (0, 0.5)"],
    ),
    (
        ("mlp", 32, "gray", H),
        {"augmentation": [{"type": "flip", "prob": 0.5}]},
        ["unknown key 'prob'"],
    ),
]


@pytest.mark.parametrize(
    "args, kw, fragments", CASES, ids=[f"{c[0][0]}-{i}" for i, c in enumerate(CASES)]
)
def test_check_raises_config_error(args, kw, fragments):
    with pytest.raises(ConfigError) as err:
        A.check(*args, **kw)
    for fragment in fragments:
        assert fragment in str(err.value)


def test_valid_configurations_pass_check():
    A.check("vgg16", 32, "rgb", [GENDER, AGE], weights=None, fine_tune=True)
    A.check(
        "custom",
        5,
        "gray",
        [RACE],
        conv_blocks=[{"filters": 4, "kernel": 3, "padding": "valid", "pool": 0}],
        dense=[],
        global_pool=True,
    )
    A.check("default_cnn", 16, "rgb", [GENDER], augmentation=["flip", {"type": "zoom"}])


def test_build_checks_first():
    with pytest.raises(ConfigError, match="needs at least 1 head"):
        A.build("default_cnn", image_size=64, color="rgb", heads=[])
    with pytest.raises(ConfigError, match="would shrink the 1×1 map to 0×0"):
        A.build("default_cnn", image_size=8, color="rgb", heads=H)
    with pytest.raises(ConfigError, match="mean must be 1 or 3 finite numbers"):
        A.build("default_cnn", image_size=16, color="rgb", heads=H, mean=[1.0, 2.0])
    with pytest.raises(ConfigError, match="clashes with a layer"):
        A.build("mlp", image_size=8, color="gray", heads=[HeadSpec("fc1", "binary", ["a", "b"])])
