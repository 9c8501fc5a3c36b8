"""The architecture registry and the one place every FaceML model is assembled.

A preset is a *trunk* function registered under a name::

    @register("tiny", title="Tiny MLP", default_size=32, default_color="gray",
              defaults={"units": 64})
    def tiny(x, *, image_size, color, heads, units):
        return keras.layers.Dense(units, activation="relu")(keras.layers.Flatten()(x))

:func:`build` wraps every trunk the same way::

    keras.Input((s, s, c)) raw 0–255 pixels
      -> FacePreprocessing(size, colour, mean, std, metadata)   scaling + self-description
      -> augmentation layers (flip / rotation / zoom / contrast; active in training only)
      -> trunk(x)                                               the preset
      -> one output per head, named by the head: {head.name: tensor}

and :func:`check` rejects a configuration (unknown preset, wrong colour, too small images,
a block that shrinks the feature map to nothing, bad heads or parameters) with a
:class:`~faceml.errors.ConfigError` before anything is built or trained.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import keras
import numpy as np

from faceml.errors import ConfigError
from faceml.data.heads import HeadSpec
from faceml.modeling.layers import FacePreprocessing

# How a preset wants its pixels scaled by FacePreprocessing:
#   "fitted": the mean/std passed to build (fitted on the training split), default (0, 255)
#   "raw":    mean 0, std 1: the backbone rescales 0–255 pixels itself (MobileNetV3, EfficientNet)
#   "caffe":  mean 0, std 1, then ImageNetPreprocessing("caffe") inside the trunk (VGG16)
SCALINGS = ("fitted", "raw", "caffe")
HEAD_KINDS = ("binary", "multiclass", "regression")
_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")  # preset names
_HEAD_RE = re.compile(
    r"^[A-Za-z0-9_][A-Za-z0-9_-]*$"
)  # head = layer names (CelebA's 5_o_Clock_Shadow)


# ---------------------------------------------------------------------------------------------
# Spatial plans: how a preset's convolutions and poolings change the map size, so check() can
# name the block that would shrink it to nothing (Keras would fail with a cryptic shape error).
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SpatialStep:
    """One size-changing operation; ``where`` names it ("conv block 2 (max-pool 2)")."""

    where: str
    kernel: int
    stride: int = 1
    padding: str = "valid"

    def apply(self, n: int) -> int:
        if self.padding == "same":
            return -(-n // self.stride)
        return (n - self.kernel) // self.stride + 1 if n >= self.kernel else 0


def conv_step(block: int, kernel: int, padding: str = "valid", stride: int = 1) -> SpatialStep:
    return SpatialStep(
        f"conv block {block} (conv {kernel}×{kernel} {padding})", kernel, stride, padding
    )


def pool_step(block: int, pool: int = 2, stride: int | None = None) -> SpatialStep:
    stride = pool if stride is None else stride
    label = f"max-pool {pool}" if stride == pool else f"max-pool {pool}, stride {stride}"
    return SpatialStep(f"conv block {block} ({label})", pool, stride, "valid")


def final_map_size(image_size: int, steps: list[SpatialStep]) -> int:
    """Walk ``steps``; raise ConfigError naming the first one that leaves a map of 0×0."""
    n = int(image_size)
    for step in steps:
        m = step.apply(n)
        if m < 1:
            raise ConfigError(
                f"{step.where} would shrink the {n}×{n} map to {max(m, 0)}×{max(m, 0)}: "
                "use larger images or fewer blocks"
            )
        n = m
    return n


# ---------------------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ArchSpec:
    name: str
    title: str
    description: str = ""
    default_size: int = 64
    default_color: str = "rgb"
    defaults: dict = field(default_factory=dict)
    min_size: int = 1
    needs_rgb: bool = False
    multitask: bool = False
    scaling: str = "fitted"
    min_heads: int = 1
    head_kinds: tuple = HEAD_KINDS
    fn: Callable | None = field(default=None, repr=False, compare=False)
    plan: Callable | None = field(default=None, repr=False, compare=False)
    validate: Callable | None = field(default=None, repr=False, compare=False)

    @property
    def transfer(self) -> bool:
        """A transfer-learning preset: a pretrained backbone (its ``weights`` parameter)."""
        return "weights" in self.defaults

    def to_dict(self) -> dict:
        """The public description (no callables), e.g. for a page or the CLI."""
        return {
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "default_size": self.default_size,
            "default_color": self.default_color,
            "defaults": copy.deepcopy(self.defaults),
            "min_size": self.min_size,
            "needs_rgb": self.needs_rgb,
            "multitask": self.multitask,
            "scaling": self.scaling,
        }


_REGISTRY: dict[str, ArchSpec] = {}


def register(
    name: str,
    *,
    title: str,
    description: str = "",
    default_size: int = 64,
    default_color: str = "rgb",
    defaults: dict | None = None,
    min_size: int | None = None,
    needs_rgb: bool = False,
    multitask: bool = False,
    scaling: str = "fitted",
    min_heads: int = 1,
    head_kinds: tuple = HEAD_KINDS,
    plan: Callable | None = None,
    validate: Callable | None = None,
):
    """Decorator registering a trunk ``fn(x, *, image_size, color, heads, **params)``.

    ``fn`` returns a feature tensor (flattened if it is not 2-D) on which :func:`build` puts one
    output per head, or, for ``multitask=True``, a dict ``{head.name: features}`` (one branch per
    head). ``plan(image_size, params) -> list[SpatialStep]`` lets :func:`check` catch maps that
    shrink to nothing; ``validate(params) -> dict | None`` checks (and may normalise) parameter
    values, raising ConfigError. ``min_size`` defaults to the smallest size the plan allows.
    """
    if not _NAME_RE.match(name):
        raise ValueError(f"preset name {name!r} must be letters, digits and underscores")
    if default_color not in ("gray", "rgb"):
        raise ValueError(f"default_color must be 'gray' or 'rgb', not {default_color!r}")
    if scaling not in SCALINGS:
        raise ValueError(f"scaling must be one of {SCALINGS}, not {scaling!r}")

    def deco(fn: Callable) -> Callable:
        if name in _REGISTRY:
            raise ValueError(f"architecture {name!r} is already registered")
        params = dict(defaults or {})
        if validate is not None:
            params = validate(copy.deepcopy(params)) or params
        smallest = min_size
        if smallest is None:
            smallest = 1
            if plan is not None:
                for s in range(1, 2049):
                    try:
                        final_map_size(s, plan(s, params))
                    except ConfigError:
                        continue
                    smallest = s
                    break
        _REGISTRY[name] = ArchSpec(
            name=name,
            title=title,
            description=description,
            default_size=int(default_size),
            default_color=default_color,
            defaults=dict(defaults or {}),
            min_size=int(smallest),
            needs_rgb=needs_rgb,
            multitask=multitask,
            scaling=scaling,
            min_heads=min_heads,
            head_kinds=tuple(head_kinds),
            fn=fn,
            plan=plan,
            validate=validate,
        )
        return fn

    return deco


def names() -> list[str]:
    """Registered preset names, in registration order."""
    return list(_REGISTRY)


def get(name: str) -> ArchSpec:
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ConfigError(
            f"unknown architecture {name!r}; choose one of: {', '.join(_REGISTRY)}"
        ) from None


# ---------------------------------------------------------------------------------------------
# Checking
# ---------------------------------------------------------------------------------------------

AUGMENTATIONS = {
    # type: {key: default}
    "flip": {"mode": "horizontal"},
    "rotation": {"factor": 0.05},
    "zoom": {"factor": 0.1},
    "contrast": {"factor": 0.2},
}
_FLIP_MODES = ("horizontal", "vertical", "horizontal_and_vertical")


def _as_heads(heads) -> list[HeadSpec]:
    if heads is None:
        heads = []
    if isinstance(heads, (HeadSpec, dict)):
        heads = [heads]
    out = []
    for h in heads:
        if isinstance(h, dict):
            try:
                h = HeadSpec.from_dict(h)
            except (TypeError, ValueError) as e:
                raise ConfigError(f"bad head {h!r}: {e}") from None
        if not isinstance(h, HeadSpec):
            raise ConfigError(f"heads must be HeadSpec objects, got {type(h).__name__}")
        out.append(h)
    return out


def _check_heads(spec: ArchSpec, heads: list[HeadSpec]) -> None:
    if len(heads) < spec.min_heads:
        raise ConfigError(
            f"{spec.title} needs at least {spec.min_heads} head"
            f"{'s' if spec.min_heads > 1 else ''} to predict; got {len(heads)}"
        )
    seen = set()
    for h in heads:
        if not isinstance(h.name, str) or not _HEAD_RE.match(h.name):
            raise ConfigError(f"head name {h.name!r} may contain only letters, digits, '_' and '-'")
        if h.name in seen:
            raise ConfigError(f"head {h.name!r} appears twice; head names must be unique")
        seen.add(h.name)
        if h.kind not in spec.head_kinds:
            raise ConfigError(
                f"{spec.title} cannot take a {h.kind} head ({h.name!r}); "
                f"it supports: {', '.join(spec.head_kinds)}"
            )
        if h.kind == "multiclass" and len(h.classes) < 2:
            raise ConfigError(
                f"multiclass head {h.name!r} needs at least 2 classes; got {len(h.classes)}"
            )
        if h.kind == "binary" and len(h.classes) not in (0, 2):
            raise ConfigError(
                f"binary head {h.name!r} needs exactly 2 classes; got {len(h.classes)}"
            )
        if h.kind == "regression" and not (
            np.isfinite(h.target_std) and h.target_std > 0 and np.isfinite(h.target_mean)
        ):
            raise ConfigError(
                f"regression head {h.name!r} needs a finite target_mean and a "
                f"positive target_std; got {h.target_mean}, {h.target_std}"
            )


def _check_param_types(spec: ArchSpec, params: dict) -> dict:
    unknown = sorted(set(params) - set(spec.defaults))
    if unknown:
        known = ", ".join(spec.defaults) or "none"
        raise ConfigError(
            f"unknown parameter{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(map(repr, unknown))} for {spec.name!r}; known: {known}"
        )
    merged = {**copy.deepcopy(spec.defaults), **copy.deepcopy(params)}
    for key, default in spec.defaults.items():
        v = merged[key]
        if isinstance(default, bool):
            ok = isinstance(v, (bool, np.bool_))
            want = "true or false"
        elif isinstance(default, int):
            ok = isinstance(v, (int, np.integer)) and not isinstance(v, bool)
            want = "an integer"
        elif isinstance(default, float):
            ok = isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
            want = "a number"
        else:
            continue  # strings, lists, None: the preset's validate() decides
        if not ok:
            raise ConfigError(f"parameter {key!r} of {spec.name!r} must be {want}; got {v!r}")
        merged[key] = (
            bool(v)
            if isinstance(default, bool)
            else (int(v) if isinstance(default, int) else float(v))
        )
    if spec.validate is not None:
        merged = spec.validate(merged) or merged
    return merged


def _check_augmentation(augmentation) -> list[dict]:
    if augmentation is None:
        return []
    if isinstance(augmentation, dict):
        augmentation = [augmentation]
    out = []
    for i, a in enumerate(augmentation, 1):
        if isinstance(a, str):
            a = {"type": a}
        if not isinstance(a, dict) or a.get("type") not in AUGMENTATIONS:
            got = a.get("type") if isinstance(a, dict) else a
            raise ConfigError(
                f"augmentation {i}: unknown type {got!r}; choose one of: {', '.join(AUGMENTATIONS)}"
            )
        kind = a["type"]
        allowed = {"type", "seed", *AUGMENTATIONS[kind]}
        extra = sorted(set(a) - allowed)
        if extra:
            raise ConfigError(
                f"augmentation {i} ({kind}): unknown key{'s' if len(extra) > 1 else ''} "
                f"{', '.join(map(repr, extra))}; allowed: {', '.join(sorted(allowed))}"
            )
        full = {"type": kind, **AUGMENTATIONS[kind], **{k: v for k, v in a.items() if k != "type"}}
        if kind == "flip":
            if full["mode"] not in _FLIP_MODES:
                raise ConfigError(
                    f"augmentation {i} (flip): mode must be one of {', '.join(_FLIP_MODES)}; "
                    f"got {full['mode']!r}"
                )
        else:
            f = full["factor"]
            hi = 0.5 if kind == "rotation" else 1.0
            if isinstance(f, bool) or not isinstance(f, (int, float)) or not 0 < f < hi:
                raise ConfigError(
                    f"augmentation {i} ({kind}): factor must be a number in (0, {hi}); got {f!r}"
                )
            full["factor"] = float(f)
        seed = full.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ConfigError(f"augmentation {i} ({kind}): seed must be an integer; got {seed!r}")
        out.append(full)
    return out


def _resolve(name, image_size, color, heads, augmentation, params):
    spec = get(name)
    if (
        isinstance(image_size, bool)
        or not isinstance(image_size, (int, np.integer))
        or image_size < 1
    ):
        raise ConfigError(
            f"image size must be a positive whole number of pixels; got {image_size!r}"
        )
    image_size = int(image_size)
    if color not in ("gray", "rgb"):
        raise ConfigError(f"colour must be 'gray' or 'rgb'; got {color!r}")
    # Presets with a plan get the precise message naming the block (below) instead of min_size.
    if (spec.needs_rgb and color != "rgb") or (spec.plan is None and image_size < spec.min_size):
        need = "RGB input" if spec.needs_rgb else "input"
        raise ConfigError(
            f"{spec.title} needs {need} of at least {spec.min_size}×{spec.min_size} "
            f"pixels; got {image_size}×{image_size} {color}"
        )
    heads = _as_heads(heads)
    _check_heads(spec, heads)
    params = _check_param_types(spec, params)
    if spec.plan is not None:
        final_map_size(image_size, spec.plan(image_size, params))
    aug = _check_augmentation(augmentation)
    return spec, image_size, heads, params, aug


def check(name: str, image_size: int, color: str, heads, *, augmentation=None, **params) -> None:
    """Raise ConfigError if ``name`` cannot be built for this input, heads and parameters."""
    _resolve(name, image_size, color, heads, augmentation, params)


# ---------------------------------------------------------------------------------------------
# Building
# ---------------------------------------------------------------------------------------------


def _stats(values, channels: int, what: str, image_size: int | None = None):
    """1 or ``channels`` numbers (a list), or one per pixel (a ``(size, size, channels)``
    array: min-max scaling)."""
    try:
        a = np.asarray(values, dtype="float64")
    except (TypeError, ValueError):
        raise ConfigError(f"{what} must be numbers; got {values!r}") from None
    pixel = (image_size, image_size, channels)
    if not (a.size in (1, channels) or a.shape == pixel) or not np.isfinite(a).all():
        raise ConfigError(f"{what} must be 1 or {channels} finite numbers, or one per pixel "
                          f"{pixel}; got an array of shape {a.shape}")
    return a if a.shape == pixel else [float(x) for x in a.ravel()]


def _augmentation_layers(
    aug: list[dict], value_range: tuple[float, float]
) -> list[keras.layers.Layer]:
    layers = []
    for i, a in enumerate(aug, 1):
        name = f"augment_{i}_{a['type']}"
        seed = a.get("seed")
        if a["type"] == "flip":
            layers.append(keras.layers.RandomFlip(a["mode"], seed=seed, name=name))
        elif a["type"] == "rotation":
            layers.append(
                keras.layers.RandomRotation(a["factor"], fill_mode="reflect", seed=seed, name=name)
            )
        elif a["type"] == "zoom":
            layers.append(
                keras.layers.RandomZoom(a["factor"], fill_mode="reflect", seed=seed, name=name)
            )
        else:  # contrast: its output is clipped to value_range, here the scaled range of 0–255
            layers.append(
                keras.layers.RandomContrast(
                    a["factor"], value_range=value_range, seed=seed, name=name
                )
            )
    return layers


def head_output(x, head: HeadSpec):
    """The output layer(s) for one head; the last layer is named ``head.name`` and is float32."""
    if head.kind == "binary" and head.softmax2:  # readers get column 1 (modelio.named_outputs)
        return keras.layers.Dense(2, activation="softmax", dtype="float32", name=head.name)(x)
    if head.kind == "binary":
        return keras.layers.Dense(1, activation="sigmoid", dtype="float32", name=head.name)(x)
    if head.kind == "multiclass":
        return keras.layers.Dense(
            len(head.classes), activation="softmax", dtype="float32", name=head.name
        )(x)
    z = keras.layers.Dense(1, dtype="float32", name=f"{head.name}_linear")(x)
    return keras.layers.Rescaling(
        scale=float(head.target_std),
        offset=float(head.target_mean),
        dtype="float32",
        name=head.name,
    )(z)


def _flat(x, name: str):
    return x if len(x.shape) == 2 else keras.layers.Flatten(name=name)(x)


def build(
    name: str,
    *,
    image_size: int,
    color: str,
    heads,
    mean=(0.0,),
    std=(255.0,),
    metadata: dict | None = None,
    augmentation: list[dict] | None = None,
    **params,
) -> keras.Model:
    """Build preset ``name`` as a Keras model taking raw 0–255 pixels, with a dict output
    ``{head.name: tensor}``. Raises ConfigError (via :func:`check`) before building anything."""
    spec, image_size, heads, params, aug = _resolve(
        name, image_size, color, heads, augmentation, params
    )
    channels = 1 if color == "gray" else 3
    if spec.scaling == "fitted":
        mean = _stats(mean, channels, "mean", image_size)
        std = _stats(std, channels, "std", image_size)
    else:  # the backbone expects raw 0–255 pixels (and maybe its own ImageNet preprocessing)
        mean, std = [0.0], [1.0]
    meta = {
        **dict(metadata or {}),
        "arch": name,
        "arch_params": copy.deepcopy(params),
        "heads": [h.to_dict() for h in heads],
        "scaling": spec.scaling,
        "augmentation": copy.deepcopy(aug),
    }

    inputs = keras.Input((image_size, image_size, channels), name="pixels")
    pre = FacePreprocessing(image_size, color, mean, std, metadata=meta, name="preprocessing")
    x = pre(inputs)
    m, s = np.asarray(pre.mean), np.asarray(pre.std)  # per channel or per pixel
    value_range = (float(np.min((0.0 - m) / s)), float(np.max((255.0 - m) / s)))
    for layer in _augmentation_layers(aug, value_range):
        x = layer(x)

    try:
        feats = spec.fn(x, image_size=image_size, color=color, heads=heads, **params)
        if spec.multitask:
            if not isinstance(feats, dict) or set(feats) != {h.name for h in heads}:
                raise ValueError(f"multi-task preset {name!r} must return one branch per head")
            outputs = {
                h.name: head_output(_flat(feats[h.name], f"{h.name}_flatten"), h) for h in heads
            }
        else:
            feats = _flat(feats, "features_flatten")
            outputs = {h.name: head_output(feats, h) for h in heads}
        return keras.Model(inputs, outputs, name=f"faceml_{name}")
    except ValueError as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if "unique" in msg or ("used" in msg and "times" in msg):
            raise ConfigError(
                f"a head name clashes with a layer of {name!r} ({msg}); rename the head"
            ) from e
        raise ConfigError(
            f"cannot build {name!r} for {image_size}×{image_size} {color}: {msg}"
        ) from e


# ---------------------------------------------------------------------------------------------
# Inspection
# ---------------------------------------------------------------------------------------------


def _n(weights) -> int:
    return int(sum(int(np.prod(w.shape)) for w in weights))


def param_counts(model: keras.Model) -> tuple[int, int]:
    """(total, trainable) parameter counts; frozen backbones and BatchNorm statistics count in
    the total only."""
    return int(model.count_params()), _n(model.trainable_weights)


def _shape(layer) -> str:
    try:
        out = layer.output
    except (AttributeError, ValueError, RuntimeError):
        return ""
    if isinstance(out, (list, tuple)):
        return ", ".join(str(tuple(o.shape)) for o in out)
    if isinstance(out, dict):
        return ", ".join(f"{k}: {tuple(o.shape)}" for k, o in out.items())
    return str(tuple(out.shape))


def layer_table(model: keras.Model):
    """One row per top-level layer: layer, type, output_shape, params, trainable (the number of
    trainable parameters, so a frozen backbone shows params > 0 and trainable 0)."""
    import pandas as pd

    rows = [
        {
            "layer": layer.name,
            "type": type(layer).__name__,
            "output_shape": _shape(layer),
            "params": int(layer.count_params()) if layer.built else 0,
            "trainable": _n(layer.trainable_weights),
        }
        for layer in model.layers
    ]
    return pd.DataFrame(rows, columns=["layer", "type", "output_shape", "params", "trainable"])


__all__ = [
    "AUGMENTATIONS",
    "ArchSpec",
    "SpatialStep",
    "build",
    "check",
    "conv_step",
    "final_map_size",
    "get",
    "head_output",
    "layer_table",
    "names",
    "param_counts",
    "pool_step",
    "register",
]
