"""The conv VAE: correct sampling, KL and reconstruction losses, save/load, training through plain
compile/fit, validation messages and the app helpers."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

from faceml.modeling import vae
from faceml.errors import ConfigError, DataError
from faceml.modeling.layers import find_preprocessing

S, LATENT, FILTERS, HIDDEN = 16, 4, (8, 16), 32


def blobs(n: int = 256, size: int = S, seed: int = 0) -> np.ndarray:
    """Gray uint8 images of one Gaussian blob each at a random place and width."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    cy, cx = rng.uniform(3, size - 3, (2, n))
    w = rng.uniform(1.5, 4.0, n)
    img = np.exp(-((yy[None] - cy[:, None, None]) ** 2 + (xx[None] - cx[:, None, None]) ** 2)
                 / (2 * w[:, None, None] ** 2))
    return np.rint(img * 255).astype("uint8")[..., None]


def small_vae(**kw):
    args = dict(latent_dim=LATENT, filters=FILTERS, hidden=HIDDEN, seed=0)
    args.update(kw)
    return vae.build_vae(S, "gray", **args)


@pytest.fixture(scope="module")
def trained():
    """A tiny VAE trained for 3 epochs through the engine contract (compile + fit only)."""
    keras.utils.set_random_seed(0)
    x = blobs(256)
    model = small_vae(metadata={"dataset": "blobs"})
    model.compile(keras.optimizers.Adam(3e-3), **vae.vae_compile_kwargs(model))
    hist = model.fit(x, vae.vae_targets(x), epochs=3, batch_size=32, verbose=0, shuffle=True)
    return model, hist.history, x


# --------------------------------------------------------------------------- sampling


def _stats_ok(samples, mu, logvar) -> bool:
    """Sample mean ≈ mu and sample std ≈ exp(0.5·logvar) (20k draws: ~0.5 % standard error)."""
    std = np.exp(0.5 * logvar)
    mean_ok = np.all(np.abs(samples.mean(0) - mu) < 0.05 * std + 0.01)
    std_ok = np.allclose(samples.std(0), std, rtol=0.04)
    return bool(mean_ok and std_ok)


def test_sampling_statistics_use_half_logvar():
    mu = np.array([0.5, -1.0, 2.0], "float32")
    logvar = np.array([math.log(4.0), 0.0, -2.0], "float32")  # std 2, 1, e^-1
    n = 20_000
    layer = vae.Sampling(seed=123)
    z = keras.ops.convert_to_numpy(layer([np.tile(mu, (n, 1)), np.tile(logvar, (n, 1))]))
    assert z.shape == (n, 3)
    assert _stats_ok(z, mu, logvar)
    # the course notebook's exp(logvar) as the standard deviation must be caught by this check
    eps = np.random.default_rng(0).standard_normal((n, 3))
    assert not _stats_ok(mu + np.exp(logvar) * eps, mu, logvar)


def test_sampling_seeded_and_deterministic_option():
    mu = np.zeros((5, 3), "float32") + 0.25
    lv = np.zeros((5, 3), "float32")
    a = keras.ops.convert_to_numpy(vae.Sampling(seed=7)([mu, lv]))
    b = keras.ops.convert_to_numpy(vae.Sampling(seed=7)([mu, lv]))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, mu)
    det = vae.Sampling.from_config(vae.Sampling(seed=1, deterministic=True).get_config())
    assert det.deterministic and det.seed == 1
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(det([mu, lv])), mu)


# --------------------------------------------------------------------------- KL and losses


def test_kl_layer_matches_numpy():
    rng = np.random.default_rng(1)
    mu = rng.normal(size=(6, 4)).astype("float32")
    lv = rng.normal(size=(6, 4)).astype("float32")
    got = keras.ops.convert_to_numpy(vae.KLDivergence()([mu, lv]))
    want = -0.5 * np.sum(1 + lv - mu ** 2 - np.exp(lv), axis=1, keepdims=True)
    assert got.shape == (6, 1)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    # zero for the prior itself
    zero = keras.ops.convert_to_numpy(vae.KLDivergence()([np.zeros((2, 3)), np.zeros((2, 3))]))
    np.testing.assert_allclose(zero, 0.0, atol=1e-7)


def test_kl_loss_is_mean_of_prediction():
    y = np.array([[1.0], [3.0], [8.0]], "float32")
    got = float(keras.ops.convert_to_numpy(vae.KLLoss()(np.zeros_like(y), y)))
    assert got == pytest.approx(4.0)


@pytest.mark.parametrize("kind", ["mse", "bce"])
def test_reconstruction_loss_matches_numpy(kind):
    rng = np.random.default_rng(2)
    y_true = rng.integers(0, 256, (5, 4, 4, 3)).astype("uint8")
    y_pred = rng.uniform(0.01, 0.99, (5, 4, 4, 3)).astype("float32")
    t = y_true.astype("float64") / 255.0
    p = y_pred.astype("float64")
    if kind == "mse":
        per_pixel = (t - p) ** 2
    else:
        per_pixel = -(t * np.log(p) + (1 - t) * np.log(1 - p))
    want = per_pixel.reshape(5, -1).sum(1).mean()
    got = float(keras.ops.convert_to_numpy(vae.ReconstructionLoss(kind)(y_true, y_pred)))
    assert got == pytest.approx(want, rel=1e-5)
    config = vae.ReconstructionLoss(kind).get_config()
    assert vae.ReconstructionLoss.from_config(config).kind == kind


# --------------------------------------------------------------------------- model, training


def test_build_structure_and_metadata():
    model = small_vae(metadata={"dataset": "fairface", "arch": "ignored"})
    assert model.output_names == ["recon", "kl"]
    enc, dec = vae.vae_parts(model)
    assert enc.name == "encoder" and dec.name == "decoder"
    assert [tuple(o.shape) for o in enc.outputs] == [(None, LATENT), (None, LATENT)]
    assert tuple(dec.outputs[0].shape) == (None, S, S, 1)
    prep = find_preprocessing(model)
    assert prep.mean == [0.0] and prep.std == [255.0]
    assert prep.metadata["arch"] == "vae" and prep.metadata["latent_dim"] == LATENT
    assert prep.metadata["dataset"] == "fairface"
    assert prep.metadata["beta"] == 0.05 and prep.metadata["recon"] == "mse"
    rgb = vae.build_vae(32, "rgb")  # the notebook's defaults, in colour
    assert tuple(vae.vae_parts(rgb)[1].outputs[0].shape) == (None, 32, 32, 3)
    assert vae.latent_dim(rgb) == 10


def test_compile_kwargs_follow_metadata():
    model = small_vae(beta=0.2, recon="bce")
    kw = vae.vae_compile_kwargs(model)
    assert kw["loss_weights"] == {"recon": 1.0, "kl": 0.2}
    assert isinstance(kw["loss"]["recon"], vae.ReconstructionLoss)
    assert kw["loss"]["recon"].kind == "bce"
    assert isinstance(kw["loss"]["kl"], vae.KLLoss)
    assert vae.vae_compile_kwargs(model, beta=1.0)["loss_weights"]["kl"] == 1.0
    vae.compile_vae(model, "adam", beta=0.5, recon="mse")
    assert model.loss["recon"].kind == "mse"
    assert model.get_compile_config()["loss_weights"] == {"recon": 1.0, "kl": 0.5}
    t = vae.vae_targets(np.zeros((3, S, S, 1), "uint8"))
    assert set(t) == {"recon", "kl"} and t["kl"].shape == (3, 1)


def test_training_decreases_loss_and_records_parts(trained):
    _, h, _ = trained
    assert {"loss", "recon_loss", "kl_loss"} <= set(h)
    assert h["loss"][-1] < h["loss"][0]
    assert h["recon_loss"][-1] < h["recon_loss"][0]
    # total = recon + beta * kl (history keeps the unweighted KL)
    assert h["loss"][-1] == pytest.approx(h["recon_loss"][-1] + 0.05 * h["kl_loss"][-1], rel=1e-3)
    assert all(np.isfinite(v).all() for v in h.values())


def test_save_load_safe_mode_keeps_weights(trained, tmp_path):
    model, _, x = trained
    path = tmp_path / "vae.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert vae.recognise(loaded)
    z = np.random.default_rng(3).standard_normal((4, LATENT)).astype("float32")
    np.testing.assert_array_equal(vae.decode(model, z), vae.decode(loaded, z))
    np.testing.assert_array_equal(vae.encode(model, x[:8])[0], vae.encode(loaded, x[:8])[0])
    assert find_preprocessing(loaded).metadata["dataset"] == "blobs"
    # compile=True restores the registered losses and β (the engine's resume path)
    assert isinstance(loaded.loss["recon"], vae.ReconstructionLoss)
    assert isinstance(loaded.loss["kl"], vae.KLLoss)
    assert loaded.get_compile_config()["loss_weights"] == {"recon": 1.0, "kl": 0.05}
    y = vae.vae_targets(x[:16])
    loss = loaded.compute_loss(x[:16], y, loaded(x[:16], training=False))
    assert np.isfinite(float(keras.ops.convert_to_numpy(loss)))


def test_decode_is_deterministic_and_uint8(trained):
    model, _, _ = trained
    z = np.random.default_rng(4).standard_normal((3, LATENT)).astype("float32")
    a, b = vae.decode(model, z), vae.decode(model, z)
    assert a.dtype == np.uint8 and a.shape == (3, S, S, 1)
    np.testing.assert_array_equal(a, b)
    assert vae.decode(model, z[0]).shape == (1, S, S, 1)
    with pytest.raises(DataError, match=f"{LATENT} values"):
        vae.decode(model, np.zeros((2, LATENT + 1)))


# --------------------------------------------------------------------------- helpers


def test_app_helpers(trained):
    model, _, x = trained
    mu, lv = vae.encode(model, x[:40])
    assert mu.shape == lv.shape == (40, LATENT) and mu.dtype == np.float32
    rec = vae.reconstruct(model, x[:5])
    np.testing.assert_array_equal(rec, vae.decode(model, mu[:5]))
    assert vae.encode(model, x[0])[0].shape == (1, LATENT)

    a, b = vae.sample_prior(model, 3, seed=5), vae.sample_prior(model, 3, seed=5)
    assert a.shape == (3, S, S, 1)
    np.testing.assert_array_equal(a, b)

    values = np.linspace(-3, 3, 7)
    grid = vae.traverse(model, mu[0], values)
    assert grid.shape == (LATENT, 7, S, S, 1)
    z = mu[0].copy()
    z[2] = values[6]
    np.testing.assert_array_equal(grid[2, 6], vae.decode(model, z)[0])

    path = vae.interpolate(model, x[0], x[1], steps=5)
    assert path.shape == (5, S, S, 1)
    np.testing.assert_array_equal(path[0], rec[0])
    np.testing.assert_array_equal(path[-1], rec[1])

    labels = np.array(["a", "b"] * 20)
    d = vae.attribute_direction(mu, labels, "a", "b")
    np.testing.assert_allclose(d, mu[labels == "b"].mean(0) - mu[labels == "a"].mean(0),
                               rtol=1e-5, atol=1e-6)
    with pytest.raises(DataError, match="no faces labelled 'c'"):
        vae.attribute_direction(mu, labels, "a", "c")

    assert vae.latent_map(mu, "pca").shape == (40, 2)
    assert vae.latent_map(mu[:20], "tsne", seed=0).shape == (20, 2)
    with pytest.raises(ConfigError, match="unknown latent map method 'umap'"):
        vae.latent_map(mu, "umap")


def test_mixed_precision_policy_keeps_outputs_float32():
    """The engine sets mixed_float16 on a GPU: mu/logvar, z, the KL and the reconstruction stay
    float32 while the convolutions run in float16."""
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = small_vae()
        enc, dec = vae.vae_parts(model)
        assert enc.get_layer("enc_conv0").compute_dtype == "float16"
        assert [o.dtype for o in enc.outputs] == ["float32", "float32"]
        assert [o.dtype for o in model.outputs] == ["float32", "float32"]
        recon, kl = model(blobs(4), training=True)
        assert np.isfinite(keras.ops.convert_to_numpy(kl)).all()
        assert vae.decode(model, np.zeros((1, LATENT))).dtype == np.uint8
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_recognise_false_for_other_models():
    inp = keras.Input((S, S, 1))
    other = keras.Model(inp, keras.layers.Dense(1)(keras.layers.Flatten()(inp)))
    assert vae.recognise(other) is False
    assert vae.recognise("not a model") is False
    with pytest.raises(ConfigError, match="this run is not a VAE"):
        vae.vae_parts(other)
    with pytest.raises(ConfigError, match="this run is not a VAE"):
        vae.vae_compile_kwargs(other)


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize("kwargs, message", [
    (dict(image_size=32, latent_dim=0), "latent size must be a whole number of at least 1, not 0"),
    (dict(image_size=16, latent_dim=257),
     "latent size 257 is larger than the input's 256 pixel values (16x16 gray): use at most 256"),
    (dict(image_size=30, filters=(8, 16, 32)),
     "image size 30 cannot be halved 3 times: use a multiple of 8"),
    (dict(image_size=30, filters=(8, 16)),
     "image size 30 cannot be halved 2 times: use a multiple of 4"),
    (dict(image_size=32, beta=-0.1), "beta must be a finite number >= 0, not -0.1"),
    (dict(image_size=32, beta=float("nan")), "beta must be a finite number >= 0, not nan"),
    (dict(image_size=32, beta="high"), "beta must be a number >= 0, not 'high'"),
    (dict(image_size=32, recon="l1"), "unknown reconstruction loss 'l1': choose 'mse' or 'bce'"),
    (dict(image_size=32, filters=()), "filters must be one or more positive whole numbers, not []"),
    (dict(image_size=32, color="cmyk"), "colour must be 'gray' or 'rgb', not 'cmyk'"),
    (dict(image_size=0), "image size must be a positive whole number of pixels, not 0"),
])
def test_config_errors(kwargs, message):
    kwargs = {"color": "gray", **kwargs}
    for fn in (vae.check_config, vae.build_vae):
        with pytest.raises(ConfigError) as err:
            fn(**kwargs)
        assert str(err.value) == message


def test_check_config_takes_engine_arch_params():
    # the engine calls check_config/build_vae(size, color, **cfg.arch_params)
    params = {"latent_dim": 10, "beta": 0.05, "recon": "bce", "filters": [32, 64]}
    assert vae.check_config(32, "gray", **params) is None
    with pytest.raises(ConfigError, match="unknown VAE option 'dropout'"):
        vae.check_config(32, "gray", dropout=0.5, **params)
    with pytest.raises(ConfigError, match="unknown VAE option 'dropout'"):
        vae.build_vae(32, "gray", dropout=0.5)


def test_loss_config_errors():
    with pytest.raises(ConfigError, match="unknown reconstruction loss 'l2'"):
        vae.ReconstructionLoss("l2")
    with pytest.raises(ConfigError, match="beta must be a finite number >= 0, not -1"):
        vae.vae_losses(beta=-1)
    with pytest.raises(ConfigError, match="at least 2 steps"):
        vae.interpolate(small_vae(), np.zeros((S, S, 1)), np.zeros((S, S, 1)), steps=1)
