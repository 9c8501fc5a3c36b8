"""A convolutional variational autoencoder (VAE) that a plain ``compile``/``fit`` engine can train.

The course notebook drew faces from a conv VAE whose sampling used ``exp(logvar)`` as the
standard deviation; the correct reparameterisation is ``z = mu + exp(0.5 * logvar) * eps``
(``logvar`` is the log of the *variance*). This module builds that VAE without a custom
``train_step`` (which is backend-specific in Keras 3), so the generic engine trains it like any
other FaceML model:

- the model takes raw 0–255 pixels; its :class:`~faceml.modeling.layers.FacePreprocessing` scales
them to
  [0, 1] (mean 0, std 255) and carries ``metadata["arch"]`` = :data:`ARCH`;
- it has two outputs: ``"recon"`` (the reconstruction in [0, 1]) and ``"kl"`` (per-sample
  KL divergence, shape ``(batch, 1)``);
- ``"recon"`` is trained with :class:`ReconstructionLoss` against the raw pixels themselves, and
  ``"kl"`` with :class:`KLLoss` (the mean of the output) weighted by β against dummy zeros, so
  Keras's history records ``recon_loss`` and ``kl_loss`` separately.

The engine does::

    model.compile(optimizer, **vae_compile_kwargs(model))   # or compile_vae(model, optimizer)
    model.fit(x_uint8, vae_targets(x_uint8), ...)

The helpers at the bottom (:func:`encode`, :func:`decode`, :func:`traverse`, …) call the nested
``"encoder"`` / ``"decoder"`` sub-models directly, so moving a slider in the app does not pay for
``predict()``.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

from faceml.errors import ConfigError, DataError
from faceml.modeling.layers import FacePreprocessing, find_preprocessing

RECON_KINDS = ("mse", "bce")
DEFAULT_BETA = 0.05
ARCH = "vae"
"""The architecture name of a VAE (in a run's config and the model's metadata)."""
NOTEBOOK_ARCH = "vae_notebook"
"""The FairFace notebook's conv VAE, layer for layer (:func:`build_notebook_vae`)."""
ARCHS = (ARCH, NOTEBOOK_ARCH)
"""Every VAE architecture (all built by the VAE model kind)."""
NOTEBOOK_SIZE = 32
NOTEBOOK_BETA = 0.1
"""The notebook's loss 0.05·Σ(e^logvar + μ² − logvar − 1) is β = 0.1 on the usual ½-KL."""
DEFAULTS = {
    ARCH: {"latent_dim": 10, "beta": DEFAULT_BETA, "recon": "mse", "filters": [32, 64]},
    NOTEBOOK_ARCH: {"latent_dim": 10, "beta": NOTEBOOK_BETA, "recon": "mse"},
}
"""The options the Train page starts from, per VAE architecture."""
_BATCH = 256


# --------------------------------------------------------------------------- layers and losses

@keras.saving.register_keras_serializable(package="faceml")
class Sampling(keras.layers.Layer):
    """Reparameterised sample ``z = mu + exp(0.5 * logvar) * eps``, ``eps ~ N(0, I)``.

    Inputs ``[mu, logvar]``. Samples in training *and* inference (the VAE's forward pass is a
    draw from q(z|x)); ``deterministic=True`` returns ``mu`` instead. ``seed`` makes the draws
    reproducible (a :class:`keras.random.SeedGenerator`, saved with the model).
    """

    def __init__(self, seed: int | None = None, deterministic: bool = False, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.seed = None if seed is None else int(seed)
        self.deterministic = bool(deterministic)
        self.seed_generator = keras.random.SeedGenerator(self.seed)

    def call(self, inputs):
        mu, logvar = inputs
        if self.deterministic:
            return mu
        eps = keras.random.normal(ops.shape(mu), dtype=mu.dtype, seed=self.seed_generator)
        return mu + ops.exp(0.5 * logvar) * eps

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0])

    def get_config(self):
        return {**super().get_config(), "seed": self.seed, "deterministic": self.deterministic}


@keras.saving.register_keras_serializable(package="faceml")
class KLDivergence(keras.layers.Layer):
    """Per-sample KL(q(z|x) || N(0, I)) = −½ Σ (1 + logvar − mu² − exp(logvar)).

    Output shape ``(batch, 1)``."""

    def __init__(self, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)

    def call(self, inputs):
        mu, logvar = inputs
        terms = 1.0 + logvar - ops.square(mu) - ops.exp(logvar)
        return -0.5 * ops.sum(terms, axis=-1, keepdims=True)

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], 1)


@keras.saving.register_keras_serializable(package="faceml")
class KLLoss(keras.losses.Loss):
    """Identity loss for the ``"kl"`` output: the mean of ``y_pred`` (``y_true`` is ignored).

    Its weight in ``loss_weights`` is β."""

    def __init__(self, name: str = "kl_loss", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        return ops.mean(y_pred, axis=-1)

    def get_config(self):
        return super().get_config()


@keras.saving.register_keras_serializable(package="faceml")
class ReconstructionLoss(keras.losses.Loss):
    """Reconstruction loss for the ``"recon"`` output.

    ``y_true`` is the RAW 0–255 image (divided by 255 here), ``y_pred`` the reconstruction in
    [0, 1]. Per-pixel squared error (``kind="mse"``) or binary cross-entropy (``kind="bce"``) is
    SUMMED over pixels and channels per sample; the batch reduction is the mean.
    """

    def __init__(self, kind: str = "mse", name: str = "recon_loss", **kwargs):
        if kind not in RECON_KINDS:
            raise ConfigError(_recon_message(kind))
        super().__init__(name=name, **kwargs)
        self.kind = kind

    def call(self, y_true, y_pred):
        t = ops.cast(y_true, y_pred.dtype) / 255.0
        if self.kind == "mse":
            per_pixel = ops.square(t - y_pred)
        else:
            p = ops.clip(y_pred, 1e-7, 1.0 - 1e-7)
            per_pixel = -(t * ops.log(p) + (1.0 - t) * ops.log(1.0 - p))
        axes = tuple(range(1, len(per_pixel.shape)))
        return ops.sum(per_pixel, axis=axes)

    def get_config(self):
        return {**super().get_config(), "kind": self.kind}


# --------------------------------------------------------------------------- building

def _recon_message(kind) -> str:
    return f"unknown reconstruction loss {kind!r}: choose 'mse' or 'bce'"


def _check_beta(beta) -> float:
    try:
        b = float(beta)
    except (TypeError, ValueError):
        raise ConfigError(f"beta must be a number >= 0, not {beta!r}") from None
    if not math.isfinite(b) or b < 0:
        raise ConfigError(f"beta must be a finite number >= 0, not {beta!r}")
    return b


def _validate(image_size, color, latent_dim, filters, beta, recon, hidden):
    if color not in ("gray", "rgb"):
        raise ConfigError(f"colour must be 'gray' or 'rgb', not {color!r}")
    if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)) \
            or image_size < 1:
        raise ConfigError("image size must be a positive whole number of pixels, "
                          f"not {image_size!r}")
    try:
        filters = list(filters)
    except TypeError:
        raise ConfigError(f"filters must be one or more positive whole numbers, "
                          f"not {filters!r}") from None
    if not filters or any(isinstance(f, bool) or not isinstance(f, (int, np.integer)) or f < 1
                          for f in filters):
        raise ConfigError(f"filters must be one or more positive whole numbers, not {filters!r}")
    halvings = len(filters)
    if image_size % (2 ** halvings):
        raise ConfigError(f"image size {image_size} cannot be halved {halvings} times: "
                          f"use a multiple of {2 ** halvings}")
    channels = 1 if color == "gray" else 3
    pixels = int(image_size) * int(image_size) * channels
    if isinstance(latent_dim, bool) or not isinstance(latent_dim, (int, np.integer)) \
            or latent_dim < 1:
        raise ConfigError(f"latent size must be a whole number of at least 1, not {latent_dim!r}")
    if latent_dim > pixels:
        raise ConfigError(f"latent size {latent_dim} is larger than the input's {pixels} pixel "
                          f"values ({image_size}x{image_size} {color}): use at most {pixels}")
    if isinstance(hidden, bool) or not isinstance(hidden, (int, np.integer)) or hidden < 0:
        raise ConfigError(f"hidden units must be a whole number >= 0 (0 = none), not {hidden!r}")
    b = _check_beta(beta)
    if recon not in RECON_KINDS:
        raise ConfigError(_recon_message(recon))
    return [int(f) for f in filters], channels, b


def check_config(image_size: int, color: str, latent_dim: int = 10, filters=(32, 64),
                 beta: float = DEFAULT_BETA, recon: str = "mse", hidden: int = 128,
                 seed: int | None = None, **unknown) -> None:
    """Raise :class:`ConfigError` for any VAE option :func:`build_vae` would reject (run before
    any data is read). Takes the same keyword options as :func:`build_vae` minus metadata."""
    if unknown:
        raise ConfigError(f"unknown VAE option {sorted(unknown)[0]!r}: choose from latent_dim, "
                          "filters, beta, recon, hidden, seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
        raise ConfigError(f"seed must be a whole number or None, not {seed!r}")
    _validate(image_size, color, latent_dim, filters, beta, recon, hidden)


def build_vae(image_size: int, color: str, latent_dim: int = 10, filters=(32, 64),
              beta: float = DEFAULT_BETA, recon: str = "mse", metadata: dict | None = None,
              hidden: int = 128, seed: int | None = None, **unknown) -> keras.Model:
    """The full (uncompiled) VAE: raw 0–255 image → ``[recon, kl]``.

    ``encoder`` (nested model, raw pixels → ``[mu, logvar]``; it holds the FacePreprocessing):
    3×3 stride-2 ReLU convs with ``filters`` → Flatten → Dense(``hidden``, ReLU; skipped if 0)
    → Dense ``mu`` and Dense ``logvar``. ``decoder`` (nested model, z → image in [0, 1]):
    Dense(``hidden``) → Dense → Reshape → stride-2 Conv2DTranspose with reversed
    ``filters`` → 3×3 sigmoid conv. β and the reconstruction kind are stored in the metadata,
    where :func:`vae_compile_kwargs` reads them.
    """
    check_config(image_size, color, latent_dim, filters, beta, recon, hidden, seed, **unknown)
    filters, channels, beta = _validate(image_size, color, latent_dim, filters, beta, recon,
                                        hidden)
    s = int(image_size)
    latent_dim = int(latent_dim)
    hidden = int(hidden)
    meta = {**dict(metadata or {}), "arch": ARCH, "latent_dim": latent_dim,
            "filters": list(filters), "hidden": hidden, "beta": beta, "recon": recon,
            "image_size": s, "color": color}

    # encoder
    image = keras.Input((s, s, channels), name="image")
    h = FacePreprocessing(s, color, mean=(0.0,), std=(255.0,), metadata=meta,
                          name="preprocessing")(image)
    for i, f in enumerate(filters):
        h = keras.layers.Conv2D(f, 3, strides=2, padding="same", activation="relu",
                                name=f"enc_conv{i}")(h)
    h = keras.layers.Flatten(name="enc_flatten")(h)
    if hidden:
        h = keras.layers.Dense(hidden, activation="relu", name="enc_dense")(h)
    mu = keras.layers.Dense(latent_dim, name="mu", dtype="float32")(h)
    logvar = keras.layers.Dense(latent_dim, name="logvar", dtype="float32")(h)
    encoder = keras.Model(image, [mu, logvar], name="encoder")

    # decoder
    r = s // 2 ** len(filters)
    z_in = keras.Input((latent_dim,), name="z")
    g = z_in
    if hidden:
        g = keras.layers.Dense(hidden, activation="relu", name="dec_dense")(g)
    g = keras.layers.Dense(r * r * filters[-1], activation="relu", name="dec_project")(g)
    g = keras.layers.Reshape((r, r, filters[-1]), name="dec_reshape")(g)
    for i, f in enumerate(reversed(filters)):
        # kernel 4 = a multiple of the stride: no checkerboard pattern in generated faces
        g = keras.layers.Conv2DTranspose(f, 4, strides=2, padding="same", activation="relu",
                                         name=f"dec_deconv{i}")(g)
    out = keras.layers.Conv2D(channels, 3, padding="same", activation="sigmoid",
                              name="dec_out", dtype="float32")(g)
    decoder = keras.Model(z_in, out, name="decoder")

    return _full_vae(encoder, decoder, s, channels, seed)


def check_notebook_config(image_size: int, color: str, latent_dim: int = 10,
                          beta: float = NOTEBOOK_BETA, recon: str = "mse",
                          seed: int | None = None, **unknown) -> None:
    """Raise :class:`ConfigError` for any option :func:`build_notebook_vae` would reject."""
    if unknown:
        raise ConfigError(f"unknown option {sorted(unknown)[0]!r} of the notebook VAE: choose "
                          "from latent_dim, beta, recon, seed (its layers are the notebook's)")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
        raise ConfigError(f"seed must be a whole number or None, not {seed!r}")
    _validate(image_size, color, latent_dim, (16, 32, 64), beta, recon, 128)
    if int(image_size) != NOTEBOOK_SIZE:
        raise ConfigError(f"the notebook VAE is built for {NOTEBOOK_SIZE}×{NOTEBOOK_SIZE} faces "
                          f"(its decoder's layers end at exactly that size); got "
                          f"{image_size}×{image_size}: use size {NOTEBOOK_SIZE}")


def build_notebook_vae(image_size: int, color: str, latent_dim: int = 10,
                       beta: float = NOTEBOOK_BETA, recon: str = "mse",
                       metadata: dict | None = None, seed: int | None = None,
                       **unknown) -> keras.Model:
    """The FairFace notebook's conv VAE (32×32), its layers exactly; raw 0–255 image →
    ``[recon, kl]`` like :func:`build_vae`, so training and the VAE studio treat both alike.

    ``encoder``: Conv 16/32/64 3×3 valid relu, each + max-pool 2 → Flatten → Dense 128 relu →
    Dense ``mu`` and Dense ``logvar`` (58,772 parameters at 32×32 gray, latent 10).
    ``decoder``: Dense 128 relu → Reshape 2×2×32 → ConvT 64 3×3 s2 same → ConvT 32 3×3 s2 valid
    → Conv 16 3×3 valid → ConvT 16 3×3 s2 valid (relu each) → ConvT c 4×4 s2 valid sigmoid
    (45,569). Loss: squared error summed over pixels (= the notebook's MSE × 1024) + β = 0.1 on
    the ½-KL (= its 0.05·Σ(e^logvar + μ² − logvar − 1)). The notebook sampled
    z = μ + exp(logvar)·ε, a bug (logvar is the log of the variance); :class:`Sampling` uses
    exp(½·logvar).
    """
    check_notebook_config(image_size, color, latent_dim, beta, recon, seed, **unknown)
    channels = 1 if color == "gray" else 3
    s, latent_dim, beta = int(image_size), int(latent_dim), _check_beta(beta)
    meta = {**dict(metadata or {}), "arch": NOTEBOOK_ARCH, "latent_dim": latent_dim,
            "filters": [16, 32, 64], "hidden": 128, "beta": beta, "recon": recon,
            "image_size": s, "color": color}
    conv, convT = keras.layers.Conv2D, keras.layers.Conv2DTranspose

    image = keras.Input((s, s, channels), name="image")
    h = FacePreprocessing(s, color, mean=(0.0,), std=(255.0,), metadata=meta,
                          name="preprocessing")(image)
    for i, f in enumerate((16, 32, 64)):
        h = conv(f, 3, padding="valid", activation="relu", name=f"enc_conv{i}")(h)
        h = keras.layers.MaxPooling2D(2, name=f"enc_pool{i}")(h)
    h = keras.layers.Flatten(name="enc_flatten")(h)
    h = keras.layers.Dense(128, activation="relu", name="enc_dense")(h)
    mu = keras.layers.Dense(latent_dim, name="mu", dtype="float32")(h)
    logvar = keras.layers.Dense(latent_dim, name="logvar", dtype="float32")(h)
    encoder = keras.Model(image, [mu, logvar], name="encoder")

    z_in = keras.Input((latent_dim,), name="z")
    g = keras.layers.Dense(128, activation="relu", name="dec_dense")(z_in)
    g = keras.layers.Reshape((2, 2, 32), name="dec_reshape")(g)  # 2x2 -> 4 -> 9 -> 7 -> 15 -> 32
    g = convT(64, 3, strides=2, padding="same", activation="relu", name="dec_deconv0")(g)
    g = convT(32, 3, strides=2, padding="valid", activation="relu", name="dec_deconv1")(g)
    g = conv(16, 3, padding="valid", activation="relu", name="dec_conv")(g)
    g = convT(16, 3, strides=2, padding="valid", activation="relu", name="dec_deconv2")(g)
    out = convT(channels, 4, strides=2, padding="valid", activation="sigmoid", name="dec_out",
                dtype="float32")(g)
    decoder = keras.Model(z_in, out, name="decoder")
    return _full_vae(encoder, decoder, s, channels, seed)


def _full_vae(encoder, decoder, s: int, channels: int, seed) -> keras.Model:
    x = keras.Input((s, s, channels), name="image")
    m, lv = encoder(x)
    z = Sampling(seed=seed, name="sampling")([m, lv])
    recon_out = keras.layers.Identity(name="recon", dtype="float32")(decoder(z))
    kl_out = KLDivergence(name="kl")([m, lv])
    return keras.Model(x, [recon_out, kl_out], name="vae")


BUILDERS = {ARCH: (check_config, build_vae), NOTEBOOK_ARCH: (check_notebook_config,
                                                             build_notebook_vae)}
"""Per VAE architecture: (check, build), both taking ``(image_size, color, **options)``."""


def vae_losses(beta: float = DEFAULT_BETA, recon: str = "mse") -> dict:
    """``{"loss": {...}, "loss_weights": {...}}`` for ``model.compile`` (keyed by output name)."""
    b = _check_beta(beta)
    if recon not in RECON_KINDS:
        raise ConfigError(_recon_message(recon))
    return {"loss": {"recon": ReconstructionLoss(recon), "kl": KLLoss()},
            "loss_weights": {"recon": 1.0, "kl": b}}


def vae_compile_kwargs(model: keras.Model, beta: float | None = None,
                       recon: str | None = None) -> dict:
    """:func:`vae_losses` with β and the reconstruction kind taken from the model's metadata
    (``beta`` / ``recon`` given here override the stored ones)."""
    meta = _metadata(model)
    if not recognise(model):
        raise ConfigError("this run is not a VAE")
    return vae_losses(meta.get("beta", DEFAULT_BETA) if beta is None else beta,
                      meta.get("recon", "mse") if recon is None else recon)


def compile_vae(model: keras.Model, optimizer="adam", beta: float | None = None,
                recon: str | None = None) -> keras.Model:
    """``model.compile(optimizer, loss=..., loss_weights=...)`` with the VAE losses (β and the
    reconstruction kind from the model's metadata unless given)."""
    model.compile(optimizer=optimizer, **vae_compile_kwargs(model, beta, recon))
    return model


def vae_targets(x: np.ndarray) -> dict:
    """Targets for ``fit``: the raw images themselves for ``"recon"``, zeros ``(n, 1)`` for
    ``"kl"`` (ignored by :class:`KLLoss`)."""
    return {"recon": x, "kl": np.zeros((len(x), 1), dtype="float32")}


# --------------------------------------------------------------------------- inspection

def _metadata(model) -> dict:
    try:
        return dict(find_preprocessing(model).metadata)
    except (LookupError, AttributeError, TypeError):
        return {}


def recognise(model) -> bool:
    """True for a FaceML VAE (metadata ``arch`` one of :data:`ARCHS`, or nested ``encoder``
    and ``decoder`` sub-models); False for anything else, including non-Keras objects."""
    if not isinstance(model, keras.Model):
        return False
    if _metadata(model).get("arch") in ARCHS:
        return True
    names = {layer.name: layer for layer in model.layers}
    return all(isinstance(names.get(n), keras.Model) for n in ("encoder", "decoder"))


def vae_parts(model: keras.Model) -> tuple[keras.Model, keras.Model]:
    """``(encoder, decoder)`` sub-models of a VAE (also after loading)."""
    if not recognise(model):
        raise ConfigError("this run is not a VAE")
    return model.get_layer("encoder"), model.get_layer("decoder")


def latent_dim(model: keras.Model) -> int:
    return int(vae_parts(model)[1].inputs[0].shape[-1])


# --------------------------------------------------------------------------- app helpers

def _images(model, x) -> np.ndarray:
    enc, _ = vae_parts(model)
    shape = tuple(enc.inputs[0].shape[1:])
    x = np.asarray(x)
    if x.shape == shape:
        x = x[None]
    if x.ndim != 4 or tuple(x.shape[1:]) != shape:
        raise DataError(f"images must be {shape[0]}x{shape[1]} with {shape[2]} channel(s) "
                        f"as (n, {shape[0]}, {shape[1]}, {shape[2]}), got {x.shape}")
    return x


def encode(model: keras.Model, x) -> tuple[np.ndarray, np.ndarray]:
    """Raw 0–255 images ``(n, s, s, c)`` (or one ``(s, s, c)``) → ``(mu, logvar)``, float32."""
    enc, _ = vae_parts(model)
    x = _images(model, x)
    mus, lvs = [], []
    for lo in range(0, len(x), _BATCH):
        m, lv = enc(x[lo:lo + _BATCH].astype("float32"), training=False)
        mus.append(ops.convert_to_numpy(m))
        lvs.append(ops.convert_to_numpy(lv))
    d = latent_dim(model)
    if not mus:
        return np.zeros((0, d), "float32"), np.zeros((0, d), "float32")
    return np.concatenate(mus), np.concatenate(lvs)


def decode(model: keras.Model, z) -> np.ndarray:
    """Latent vectors ``(n, latent)`` (or one ``(latent,)``) → uint8 images ``(n, s, s, c)``."""
    _, dec = vae_parts(model)
    d = latent_dim(model)
    z = np.asarray(z, dtype="float32")
    if z.ndim == 1:
        z = z[None]
    if z.ndim != 2 or z.shape[1] != d:
        raise DataError(f"latent vectors must have {d} values each, got shape {z.shape}")
    outs = []
    for lo in range(0, len(z), _BATCH):
        outs.append(ops.convert_to_numpy(dec(z[lo:lo + _BATCH], training=False)))
    if not outs:
        s = dec.outputs[0].shape
        return np.zeros((0, *s[1:]), "uint8")
    img = np.concatenate(outs)
    return np.clip(np.rint(img * 255.0), 0, 255).astype("uint8")


def reconstruct(model: keras.Model, x) -> np.ndarray:
    """Deterministic reconstruction (decode of ``mu``) of raw images, uint8."""
    return decode(model, encode(model, x)[0])


def sample_prior(model: keras.Model, n: int, seed: int = 0) -> np.ndarray:
    """``n`` new faces decoded from z ~ N(0, I) (reproducible with ``seed``), uint8."""
    if int(n) < 1:
        raise ConfigError(f"number of samples must be at least 1, not {n!r}")
    z = np.random.default_rng(seed).standard_normal((int(n), latent_dim(model)))
    return decode(model, z.astype("float32"))


def traverse(model: keras.Model, z0, dim_values=np.linspace(-3, 3, 7)) -> np.ndarray:
    """Latent traversal: for every dimension d and value v, decode ``z0`` with ``z0[d] = v``.
    Returns uint8 ``(latent, len(dim_values), s, s, c)``."""
    d = latent_dim(model)
    z0 = np.asarray(z0, dtype="float32").reshape(-1)
    if z0.shape != (d,):
        raise DataError(f"z0 must have {d} values, got {z0.size}")
    values = np.asarray(dim_values, dtype="float32").reshape(-1)
    z = np.repeat(z0[None, None], d, 0).repeat(len(values), 1)  # (d, k, d)
    for i in range(d):
        z[i, :, i] = values
    imgs = decode(model, z.reshape(-1, d))
    return imgs.reshape(d, len(values), *imgs.shape[1:])


def interpolate(model: keras.Model, x_a, x_b, steps: int = 8) -> np.ndarray:
    """Decode ``steps`` points on the straight line between the ``mu`` of two faces (endpoints
    included), uint8 ``(steps, s, s, c)``."""
    steps = int(steps)
    if steps < 2:
        raise ConfigError(f"interpolation needs at least 2 steps, not {steps}")
    mu_a = encode(model, x_a)[0]
    mu_b = encode(model, x_b)[0]
    if len(mu_a) != 1 or len(mu_b) != 1:
        raise DataError("interpolate takes exactly one face at each end")
    t = np.linspace(0.0, 1.0, steps, dtype="float32")[:, None]
    return decode(model, (1.0 - t) * mu_a + t * mu_b)


def attribute_direction(mu, labels, class_a, class_b) -> np.ndarray:
    """Mean ``mu`` of ``class_b`` minus mean ``mu`` of ``class_a``: adding it to a latent code
    moves a face from ``class_a`` towards ``class_b``."""
    mu = np.asarray(mu, dtype="float64")
    labels = np.asarray(labels)
    if mu.ndim != 2 or len(mu) != len(labels):
        raise DataError(f"need one label per latent vector: {len(mu)} vectors, "
                        f"{len(labels)} labels")
    out = []
    for c in (class_a, class_b):
        sel = labels == c
        if not sel.any():
            raise DataError(f"no faces labelled {c!r} to compute a direction from")
        out.append(mu[sel].mean(0))
    return (out[1] - out[0]).astype("float32")


def latent_map(mu, method: str = "pca", seed: int = 0) -> np.ndarray:
    """2-D map of latent means for a scatter plot: ``"pca"`` or ``"tsne"`` (scikit-learn),
    float32 ``(n, 2)``."""
    mu = np.asarray(mu, dtype="float64")
    if method not in ("pca", "tsne"):
        raise ConfigError(f"unknown latent map method {method!r}: choose 'pca' or 'tsne'")
    if mu.ndim != 2 or len(mu) < 3:
        raise DataError(f"a latent map needs at least 3 encoded faces, got {len(mu)}")
    if mu.shape[1] == 1:
        mu = np.hstack([mu, np.zeros_like(mu)])
    if method == "pca":
        from sklearn.decomposition import PCA
        return PCA(n_components=2, random_state=seed).fit_transform(mu).astype("float32")
    from sklearn.manifold import TSNE
    perplexity = float(min(30.0, max(1.0, (len(mu) - 1) / 3.0)))
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed)
    return tsne.fit_transform(mu).astype("float32")
