"""The built-in presets: the course notebooks' models with their exact layers, the project's
default CNN, three ImageNet transfer backbones and a configurable builder.

Each trunk gets the scaled (and, in training, augmented) image tensor and returns features;
:func:`faceml.modeling.architectures.build` adds the per-head outputs. Layers get explicit names
(``block2_conv``, ``fc1``...) so layer tables read like the notebooks.
"""

from __future__ import annotations

import copy

import keras
from keras import layers as L

from faceml.errors import ConfigError

from faceml.modeling.builder import conv_step, pool_step, register
from faceml.modeling.layers import ImageNetPreprocessing

# ---------------------------------------------------------------------------------------------
# parameter checks
# ---------------------------------------------------------------------------------------------

ACTIVATIONS = (
    "relu",
    "elu",
    "selu",
    "gelu",
    "tanh",
    "sigmoid",
    "swish",
    "silu",
    "leaky_relu",
    "relu6",
    "softplus",
    "linear",
)


def _rate(value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ConfigError(f"{what} must be a number in [0, 1); got {value!r}")
    return float(value)


def _count(value, what: str, lo: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise ConfigError(f"{what} must be a whole number ≥ {lo}; got {value!r}")
    return int(value)


def _dense_params(p: dict) -> dict:
    p["dense_units"] = _count(p["dense_units"], "dense_units")
    p["dropout"] = _rate(p["dropout"], "dropout")
    return p


def _units_list(value, what: str) -> list[int]:
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"{what} must be a list of whole numbers ≥ 1 (may be empty); "
                          f"got {value!r}")
    return [_count(u, f"{what} entry {i}") for i, u in enumerate(value, 1)]


def _dense_layers(p: dict, default: list[int]) -> dict:
    """``dense`` (a list of units) and ``dropout``; a legacy ``dense_units`` (one layer, as the
    preset was before ``dense``) is mapped to ``dense=[dense_units]``."""
    units = p.get("dense_units")
    if units is not None:
        units = _count(units, "dense_units")
        if list(p["dense"]) not in (list(default), [units]):
            raise ConfigError(f"give dense (a list of units) or dense_units (one layer), not "
                              f"both; got dense={p['dense']!r}, dense_units={units!r}")
        p["dense"] = [units]
    p["dense_units"] = None
    p["dense"] = _units_list(p["dense"], "dense")
    p["dropout"] = _rate(p["dropout"], "dropout")
    return p


def _dropout_only(p: dict) -> dict:
    p["dropout"] = _rate(p["dropout"], "dropout")
    return p


def _weights(p: dict) -> dict:
    w = p["weights"]
    if isinstance(w, str) and w.lower() in ("none", "random", ""):
        w = None
    if w not in ("imagenet", None):
        raise ConfigError(f"weights must be 'imagenet' or None (random initialisation); got {w!r}")
    p["weights"] = w
    return p


def _transfer_params(p: dict) -> dict:
    return _dense_params(_weights(p))


POOLINGS = ("gap", "flatten")


def _vgg16_params(p: dict) -> dict:
    _weights(p)
    if p["pooling"] not in POOLINGS:
        raise ConfigError(f"pooling must be 'gap' (global average pooling) or 'flatten'; "
                          f"got {p['pooling']!r}")
    return _dense_layers(p, VGG16_DEFAULTS["dense"])


# ---------------------------------------------------------------------------------------------
# FairFace notebook (32×32 gray)
# ---------------------------------------------------------------------------------------------


@register(
    "mlp",
    title="MLP (FairFace notebook)",
    default_size=32,
    default_color="gray",
    description="FairFace notebook: fully connected network on the flattened pixels: "
    "Dense 1024 tanh → Dense 512 sigmoid → Dense 100 relu.",
)
def mlp(x, *, image_size, color, heads):
    x = L.Flatten(name="flatten")(x)
    x = L.Dense(1024, activation="tanh", name="fc1")(x)
    x = L.Dense(512, activation="sigmoid", name="fc2")(x)
    return L.Dense(100, activation="relu", name="fc3")(x)


@register(
    "small_cnn",
    title="Small CNN (FairFace notebook)",
    default_size=32,
    default_color="gray",
    description="FairFace notebook: one convolution (40 filters 5×5, valid, relu), "
    "max-pool 2, Dense 100 relu.",
    plan=lambda s, p: [conv_step(1, 5), pool_step(1)],
)
def small_cnn(x, *, image_size, color, heads):
    x = L.Conv2D(40, 5, padding="valid", activation="relu", name="block1_conv")(x)
    x = L.MaxPooling2D(2, name="block1_pool")(x)
    x = L.Flatten(name="flatten")(x)
    return L.Dense(100, activation="relu", name="fc1")(x)


@register(
    "own_cnn",
    title="Own CNN (FairFace notebook)",
    default_size=32,
    default_color="gray",
    defaults={"dropout": 0.5},
    validate=_dropout_only,
    description="FairFace notebook: three blocks Conv 3×3 same relu → BatchNorm → "
    "max-pool 2 (32/64/128 filters), Dense 256 relu + Dropout, Dense 128 relu + Dropout.",
    plan=lambda s, p: [st for b in (1, 2, 3) for st in (conv_step(b, 3, "same"), pool_step(b))],
)
def own_cnn(x, *, image_size, color, heads, dropout):
    for b, filters in enumerate((32, 64, 128), 1):
        x = L.Conv2D(filters, 3, padding="same", activation="relu", name=f"block{b}_conv")(x)
        x = L.BatchNormalization(name=f"block{b}_bn")(x)
        x = L.MaxPooling2D(2, name=f"block{b}_pool")(x)
    x = L.Flatten(name="flatten")(x)
    x = L.Dense(256, activation="relu", name="fc1")(x)
    x = L.Dropout(dropout, name="fc1_drop")(x)
    x = L.Dense(128, activation="relu", name="fc2")(x)
    return L.Dropout(dropout, name="fc2_drop")(x)


@register(
    "multitask_cnn",
    title="Multi-task CNN (FairFace notebook)",
    default_size=32,
    default_color="gray",
    multitask=True,
    description="FairFace notebook: a shared trunk (Conv 16/32/64 3×3 valid relu, each with "
    "max-pool 2) and, for every head, its own branch Dense 128 → Dense 64.",
    plan=lambda s, p: [st for b in (1, 2, 3) for st in (conv_step(b, 3), pool_step(b))],
)
def multitask_cnn(x, *, image_size, color, heads):
    for b, filters in enumerate((16, 32, 64), 1):
        x = L.Conv2D(filters, 3, padding="valid", activation="relu", name=f"block{b}_conv")(x)
        x = L.MaxPooling2D(2, name=f"block{b}_pool")(x)
    shared = L.Flatten(name="flatten")(x)
    branches = {}
    for h in heads:
        y = L.Dense(128, activation="relu", name=f"{h.name}_fc1")(shared)
        branches[h.name] = L.Dense(64, activation="relu", name=f"{h.name}_fc2")(y)
    return branches


# ---------------------------------------------------------------------------------------------
# UTKFace CSV notebook (48×48 gray)
# ---------------------------------------------------------------------------------------------


def _csv_cnn_params(p: dict) -> dict:
    p["filters"] = _units_list(p["filters"], "filters")
    if not p["filters"]:
        raise ConfigError("filters must name at least one convolution, e.g. [8, 16]")
    p["dense_units"] = _count(p["dense_units"], "dense_units", lo=0)
    p["dropout"] = _rate(p["dropout"], "dropout")
    return p


@register(
    "utk_csv_cnn",
    title="Small CNN (UTKFace CSV notebook)",
    default_size=48,
    default_color="gray",
    defaults={"filters": [8, 16], "dense_units": 16, "dropout": 0.3},
    validate=_csv_cnn_params,
    description="UTKFace CSV notebook (48×48 gray): per filter count a Conv 3×3 same relu + "
    "max-pool 2, Flatten, Dense dense_units relu + Dropout (none when dense_units = 0). "
    "Age: filters [8, 16], Dense 16, Dropout 0.3; ethnicity and gender: filters [2, 4], "
    "dense_units 0.",
    plan=lambda s, p: [st for b, _ in enumerate(p["filters"], 1)
                       for st in (conv_step(b, 3, "same"), pool_step(b))],
)
def utk_csv_cnn(x, *, image_size, color, heads, filters, dense_units, dropout):
    for b, f in enumerate(filters, 1):
        x = L.Conv2D(f, 3, padding="same", activation="relu", name=f"block{b}_conv")(x)
        x = L.MaxPooling2D(2, name=f"block{b}_pool")(x)
    x = L.Flatten(name="flatten")(x)
    if dense_units:
        x = L.Dense(dense_units, activation="relu", name="fc1")(x)
        x = L.Dropout(dropout, name="fc1_drop")(x)
    return x


# ---------------------------------------------------------------------------------------------
# UTKFace 128 px notebook, gender-folder notebook, project default
# ---------------------------------------------------------------------------------------------


@register(
    "utk_cnn4",
    title="4-block CNN (UTKFace notebook)",
    default_size=128,
    default_color="rgb",
    defaults={"dense": [256, 128], "dropout": 0.5, "dense_units": None},
    validate=lambda p: _dense_layers(p, [256, 128]),
    description="UTKFace 128 px notebook: four blocks Conv 3×3 valid relu + max-pool 2 "
    "(32/64/128/256 filters), Flatten, Dense 256 relu → Dense 128 relu → Dropout 0.5 (gender "
    "sigmoid and age linear heads there). dense lists the units; the legacy dense_units=N "
    "builds the earlier one-layer Dense N → Dropout.",
    plan=lambda s, p: [st for b in (1, 2, 3, 4) for st in (conv_step(b, 3), pool_step(b))],
)
def utk_cnn4(x, *, image_size, color, heads, dense, dropout, dense_units):
    for b, filters in enumerate((32, 64, 128, 256), 1):
        x = L.Conv2D(filters, 3, activation="relu", name=f"block{b}_conv")(x)
        x = L.MaxPooling2D(2, name=f"block{b}_pool")(x)
    x = L.Flatten(name="flatten")(x)
    for i, units in enumerate(dense, 1):
        x = L.Dense(units, activation="relu", name=f"fc{i}")(x)
    return L.Dropout(dropout, name=f"fc{len(dense)}_drop" if dense else "drop")(x)


@register(
    "gender_baseline",
    title="Gender baseline CNN (gender-folder notebook)",
    default_size=100,
    default_color="rgb",
    description="Gender-folder notebook (100×100 RGB): Conv 16 3×3 valid relu, max-pool 2×2 "
    "stride 1, Conv 16 3×3 valid relu, max-pool 2×2 stride 1, Flatten, Dense 64 relu "
    "(≈9.05 M parameters at 100 px: the stride-1 pools keep the map at 94×94).",
    plan=lambda s, p: [conv_step(1, 3), pool_step(1, 2, 1), conv_step(2, 3), pool_step(2, 2, 1)],
)
def gender_baseline(x, *, image_size, color, heads):
    x = L.Conv2D(16, 3, activation="relu", name="block1_conv")(x)
    x = L.MaxPooling2D(2, strides=1, name="block1_pool")(x)
    x = L.Conv2D(16, 3, activation="relu", name="block2_conv")(x)
    x = L.MaxPooling2D(2, strides=1, name="block2_pool")(x)
    x = L.Flatten(name="flatten")(x)
    return L.Dense(64, activation="relu", name="fc1")(x)


@register(
    "default_cnn",
    title="Default CNN",
    default_size=64,
    default_color="rgb",
    defaults={"dense_units": 256, "dropout": 0.3},
    validate=_dense_params,
    description="The project's default: four blocks Conv 3×3 same + BatchNorm + relu + "
    "max-pool 2 (32/64/128/256), global average pooling, Dense 256 + Dropout 0.3.",
    plan=lambda s, p: [st for b in (1, 2, 3, 4) for st in (conv_step(b, 3, "same"), pool_step(b))],
)
def default_cnn(x, *, image_size, color, heads, dense_units, dropout):
    for b, filters in enumerate((32, 64, 128, 256), 1):
        x = _conv_bn_relu(x, filters, f"block{b}", "")
        x = L.MaxPooling2D(2, name=f"block{b}_pool")(x)
    return _pooled_dense(x, dense_units, dropout)


def _conv_bn_relu(x, filters: int, block: str, tag: str, use_bias: bool = True):
    """Conv 3×3 same + BatchNorm + relu, named ``{block}_conv{tag}``, ``_bn{tag}``,
    ``_relu{tag}``."""
    x = L.Conv2D(filters, 3, padding="same", use_bias=use_bias, name=f"{block}_conv{tag}")(x)
    x = L.BatchNormalization(name=f"{block}_bn{tag}")(x)
    return L.Activation("relu", name=f"{block}_relu{tag}")(x)


def _pooled_dense(x, dense_units: int, dropout: float):
    """Global average pooling, then Dense + relu + Dropout (``gap``, ``fc1``, ``fc1_drop``)."""
    x = L.GlobalAveragePooling2D(name="gap")(x)
    x = L.Dense(dense_units, activation="relu", name="fc1")(x)
    return L.Dropout(dropout, name="fc1_drop")(x)


def _deep_params(p: dict) -> dict:
    p["base_filters"] = _count(p["base_filters"], "base_filters")
    return _dense_params(p)


@register(
    "deep_cnn",
    title="Deep CNN",
    default_size=64,
    default_color="rgb",
    defaults={"base_filters": 32, "dense_units": 256, "dropout": 0.5},
    validate=_deep_params,
    description="VGG-style, trained from scratch: four stages of two Conv 3×3 same + BatchNorm "
    "+ relu, then max-pool 2 (base_filters × 1/2/4/8), global average pooling, Dense 256 + "
    "Dropout 0.5. The bundled UTKFace model.",
    plan=lambda s, p: [st for b in (1, 2, 3, 4) for st in (conv_step(b, 3, "same"),
                                                           conv_step(b, 3, "same"), pool_step(b))],
)
def deep_cnn(x, *, image_size, color, heads, base_filters, dense_units, dropout):
    for b in (1, 2, 3, 4):
        filters = base_filters * 2 ** (b - 1)
        for c in ("a", "b"):  # no conv bias: the BatchNorm after it has its own
            x = _conv_bn_relu(x, filters, f"block{b}", c, use_bias=False)
        x = L.MaxPooling2D(2, name=f"block{b}_pool")(x)
    return _pooled_dense(x, dense_units, dropout)


# ---------------------------------------------------------------------------------------------
# ImageNet transfer learning (keras.applications)
# ---------------------------------------------------------------------------------------------

TRANSFER_DEFAULTS = {"weights": "imagenet", "fine_tune": False, "dense_units": 256, "dropout": 0.5}
VGG16_DEFAULTS = {"weights": "imagenet", "fine_tune": False, "pooling": "gap", "dense": [256],
                  "dropout": 0.5, "dense_units": None}


def _backbone(
    title: str, ctor, image_size: int, weights, fine_tune: bool, unfreeze_from: str, **kw
):
    try:
        base = ctor(
            include_top=False, weights=weights, input_shape=(image_size, image_size, 3), **kw
        )
    except Exception as e:
        if weights != "imagenet":
            raise
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ConfigError(
            f"the ImageNet weights for {title} could not be downloaded ({reason}); "
            "choose weights=None (random initialisation) to build without them"
        ) from e
    if not fine_tune:
        base.trainable = False
        return base
    base.trainable = True
    active = False
    for layer in base.layers:
        active = active or layer.name.startswith(unfreeze_from)
        # BatchNorm stays frozen (inference mode) while fine-tuning, as Keras recommends.
        layer.trainable = active and not isinstance(layer, L.BatchNormalization)
    return base


@register(
    "vgg16",
    title="VGG16",
    default_size=64,
    default_color="rgb",
    min_size=32,
    needs_rgb=True,
    scaling="caffe",
    defaults=copy.deepcopy(VGG16_DEFAULTS),
    validate=_vgg16_params,
    description="CelebA and gender-folder notebooks: keras.applications.VGG16 without its "
    "top (frozen; fine_tune=True unfreezes block5), then pooling 'gap' (global average) or "
    "'flatten', then each of the dense units (relu, each + Dropout), then the heads: "
    "by default GAP → Dense 256 → Dropout 0.5; dense=[] is the CelebA notebook's bare head "
    "(with the 2-unit softmax of binary_output). Pixels get the 'caffe' ImageNet "
    "preprocessing.",
)
def vgg16(x, *, image_size, color, heads, weights, fine_tune, pooling, dense, dropout,
          dense_units):
    base = _backbone("VGG16", keras.applications.VGG16, image_size, weights, fine_tune, "block5")
    x = base(ImageNetPreprocessing("caffe", name="imagenet_caffe")(x))
    x = L.GlobalAveragePooling2D(name="gap")(x) if pooling == "gap" else \
        L.Flatten(name="flatten")(x)
    for i, units in enumerate(dense, 1):
        x = L.Dense(units, activation="relu", name=f"fc{i}")(x)
        x = L.Dropout(dropout, name=f"fc{i}_drop")(x)
    return x


@register(
    "mobilenetv3small",
    title="MobileNetV3-Small",
    default_size=96,
    default_color="rgb",
    min_size=32,
    needs_rgb=True,
    scaling="raw",
    defaults=dict(TRANSFER_DEFAULTS),
    validate=_transfer_params,
    description="keras.applications.MobileNetV3Small without its top (frozen; fine_tune=True "
    "unfreezes the last block and conv_1), global average pooling, Dense 256 + "
    "Dropout 0.5. Takes raw 0–255 pixels (its own Rescaling layer).",
)
def mobilenetv3small(x, *, image_size, color, heads, weights, fine_tune, dense_units, dropout):
    base = _backbone(
        "MobileNetV3-Small",
        keras.applications.MobileNetV3Small,
        image_size,
        weights,
        fine_tune,
        "expanded_conv_10",
        include_preprocessing=True,
    )
    return _pooled_dense(base(x), dense_units, dropout)


@register(
    "efficientnetb0",
    title="EfficientNet-B0",
    default_size=96,
    default_color="rgb",
    min_size=32,
    needs_rgb=True,
    scaling="raw",
    defaults=dict(TRANSFER_DEFAULTS),
    validate=_transfer_params,
    description="keras.applications.EfficientNetB0 without its top (frozen; fine_tune=True "
    "unfreezes block7 and the top conv), global average pooling, Dense 256 + "
    "Dropout 0.5. Takes raw 0–255 pixels (its own Rescaling + Normalization).",
)
def efficientnetb0(x, *, image_size, color, heads, weights, fine_tune, dense_units, dropout):
    base = _backbone(
        "EfficientNet-B0",
        keras.applications.EfficientNetB0,
        image_size,
        weights,
        fine_tune,
        "block7a",
    )
    return _pooled_dense(base(x), dense_units, dropout)


# ---------------------------------------------------------------------------------------------
# configurable builder
# ---------------------------------------------------------------------------------------------

CONV_BLOCK_DEFAULTS = {
    "filters": 32,
    "kernel": 3,
    "padding": "same",
    "batchnorm": False,
    "pool": 2,
    "dropout": 0.0,
    "activation": "relu",
}
DENSE_DEFAULTS = {"units": 128, "activation": "relu", "dropout": 0.0}
# Keys a conv block may also give (absent from the defaults the Train page shows, so the
# default configuration's arch_params and run id stay as they were): the max-pool's stride
# (None: the pool size, Keras's default; 1 = overlapping pools, as the gender-folder notebook).
CONV_BLOCK_OPTIONAL = {"pool_stride": None}


def _activation(value, what: str) -> str:
    if value not in ACTIVATIONS:
        raise ConfigError(f"{what} must be one of {', '.join(ACTIVATIONS)}; got {value!r}")
    return value


def _entries(value, what: str, defaults: dict) -> list[dict]:
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"{what} must be a list of dicts; got {value!r}")
    out = []
    for i, d in enumerate(value, 1):
        if not isinstance(d, dict):
            raise ConfigError(f"{what} entry {i} must be a dict; got {d!r}")
        extra = sorted(set(d) - set(defaults))
        if extra:
            raise ConfigError(
                f"{what} entry {i}: unknown key{'s' if len(extra) > 1 else ''} "
                f"{', '.join(map(repr, extra))}; allowed: {', '.join(defaults)}"
            )
        out.append({**defaults, **d})
    return out


def _custom_params(p: dict) -> dict:
    blocks = _entries(p["conv_blocks"], "conv_blocks",
                      {**CONV_BLOCK_DEFAULTS, **CONV_BLOCK_OPTIONAL})
    for i, b in enumerate(blocks, 1):
        where = f"conv block {i}"
        b["filters"] = _count(b["filters"], f"{where}: filters")
        b["kernel"] = _count(b["kernel"], f"{where}: kernel")
        if b["padding"] not in ("same", "valid"):
            raise ConfigError(f"{where}: padding must be 'same' or 'valid'; got {b['padding']!r}")
        if not isinstance(b["batchnorm"], bool):
            raise ConfigError(f"{where}: batchnorm must be true or false; got {b['batchnorm']!r}")
        b["pool"] = _count(b["pool"], f"{where}: pool", lo=0)
        if b["pool"] == 1:
            raise ConfigError(f"{where}: pool must be 0 (no pooling) or a size ≥ 2; got 1")
        if b["pool_stride"] is not None:
            if not b["pool"]:
                raise ConfigError(f"{where}: pool_stride needs a pool (pool is 0); remove "
                                  "pool_stride or give a pool size ≥ 2")
            b["pool_stride"] = _count(b["pool_stride"], f"{where}: pool_stride")
        b["dropout"] = _rate(b["dropout"], f"{where}: dropout")
        b["activation"] = _activation(b["activation"], f"{where}: activation")
    dense = _entries(p["dense"], "dense", DENSE_DEFAULTS)
    for i, d in enumerate(dense, 1):
        d["units"] = _count(d["units"], f"dense layer {i}: units")
        d["activation"] = _activation(d["activation"], f"dense layer {i}: activation")
        d["dropout"] = _rate(d["dropout"], f"dense layer {i}: dropout")
    return {"conv_blocks": blocks, "dense": dense, "global_pool": p["global_pool"]}


def _custom_plan(image_size: int, p: dict):
    steps = []
    for i, b in enumerate(p["conv_blocks"], 1):
        steps.append(conv_step(i, b["kernel"], b["padding"]))
        if b["pool"]:
            steps.append(pool_step(i, b["pool"], b.get("pool_stride")))
    return steps


@register(
    "custom",
    title="Custom CNN",
    default_size=64,
    default_color="rgb",
    defaults={
        "conv_blocks": [
            {**CONV_BLOCK_DEFAULTS, "filters": 32},
            {**CONV_BLOCK_DEFAULTS, "filters": 64},
        ],
        "dense": [{**DENSE_DEFAULTS, "units": 128, "dropout": 0.3}],
        "global_pool": False,
    },
    validate=_custom_params,
    plan=_custom_plan,
    description="Configurable: conv_blocks (filters, kernel, padding, batchnorm, pool, "
    "pool_stride, dropout, activation), dense layers (units, activation, dropout), and "
    "global average pooling or flatten in between. Any size and colour.",
)
def custom(x, *, image_size, color, heads, conv_blocks, dense, global_pool):
    for i, b in enumerate(conv_blocks, 1):
        if b["batchnorm"]:
            x = L.Conv2D(b["filters"], b["kernel"], padding=b["padding"], name=f"block{i}_conv")(x)
            x = L.BatchNormalization(name=f"block{i}_bn")(x)
            x = L.Activation(b["activation"], name=f"block{i}_act")(x)
        else:
            x = L.Conv2D(
                b["filters"],
                b["kernel"],
                padding=b["padding"],
                activation=b["activation"],
                name=f"block{i}_conv",
            )(x)
        if b["pool"]:
            x = L.MaxPooling2D(b["pool"], strides=b.get("pool_stride"), name=f"block{i}_pool")(x)
        if b["dropout"]:
            x = L.Dropout(b["dropout"], name=f"block{i}_drop")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x) if global_pool else L.Flatten(name="flatten")(x)
    for i, d in enumerate(dense, 1):
        x = L.Dense(d["units"], activation=d["activation"], name=f"fc{i}")(x)
        if d["dropout"]:
            x = L.Dropout(d["dropout"], name=f"fc{i}_drop")(x)
    return x
