"""The built-in synthetic faces: deterministic, subset-stable, validated, and learnable."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image

from faceml import data
from faceml.data import synthetic as syn
from faceml.data.synthetic import EXPRESSIONS, EYEWEAR, SyntheticAdapter, draw_face
from faceml.errors import DataError


@pytest.fixture(scope="module")
def adapter() -> SyntheticAdapter:
    return SyntheticAdapter()


def test_registered_and_offline():
    a = data.get("synthetic")
    assert isinstance(a, SyntheticAdapter)
    assert a.title == "Synthetic faces (built in)" and a.needs_path is False
    assert a.found() and a.found(None)
    specs = a.label_specs()
    assert specs["age"].kind == "years"
    assert specs["expression"].classes == EXPRESSIONS
    assert specs["eyewear"].kind == "binary" and specs["eyewear"].classes == EYEWEAR


def test_scan_frame_and_labels(adapter):
    s = adapter.scan(n=2000, seed=4)
    f = s.frame
    assert len(f) == 2000 and s.dataset == "synthetic" and s.path is None and not s.bad
    assert f["source"].iloc[0] == "synthetic-s4-00000"
    assert f["source"].iloc[-1] == "synthetic-s4-01999"
    assert f["source"].is_unique
    assert list(s.label_frame().columns) == ["source", "age", "expression", "eyewear"]
    assert f["age"].dtype == float and f["age"].between(1, 90).all()
    # a plausible spread of ages: every decade present, none dominant
    decades = np.bincount((f["age"].to_numpy().astype(int) - 1) // 10, minlength=9)
    assert decades.min() > 150 and decades.max() < 300
    assert set(f["expression"]) == set(EXPRESSIONS) and set(f["eyewear"]) == set(EYEWEAR)
    assert f["expression"].value_counts(normalize=True).min() > 0.2
    assert 0.2 < (f["eyewear"] == "glasses").mean() < 0.5
    assert s.options == {"n": 2000, "seed": 4, "label_noise": 0.0, "version": syn.VERSION}


def test_fingerprint_follows_options(adapter):
    base = adapter.scan(n=50).fingerprint()
    assert adapter.scan(n=50).fingerprint() == base
    assert adapter.scan(n=51).fingerprint() != base
    assert adapter.scan(n=50, seed=1).fingerprint() != base
    assert adapter.scan(n=50, label_noise=0.1).fingerprint() != base


def test_deterministic(adapter):
    a, b, c = adapter.scan(n=40, seed=7), adapter.scan(n=40, seed=7), adapter.scan(n=40, seed=8)
    pd.testing.assert_frame_equal(a.frame, b.frame)
    assert not a.frame[["age", "expression", "eyewear"]].equals(c.frame[["age", "expression",
                                                                           "eyewear"]])
    xa, bad = adapter.read(a, a.frame, 32, "rgb")
    assert bad == []
    xb, _ = adapter.read(b, b.frame, 32, "rgb")
    xc, _ = adapter.read(c, c.frame, 32, "rgb")
    np.testing.assert_array_equal(xa, xb)
    assert (xa != xc).mean() > 0.5
    # every face differs from the others
    flat = xa.reshape(len(xa), -1)
    assert len({r.tobytes() for r in flat}) == len(xa)


def test_subset_read_equals_slice_of_full(adapter):
    s = adapter.scan(n=60, seed=2)
    full, _ = adapter.read(s, s.frame, 24, "rgb")
    pick = [37, 3, 59, 0, 12, 3]
    sub, _ = adapter.read(s, s.frame.iloc[pick], 24, "rgb")
    np.testing.assert_array_equal(sub, full[pick])
    # a larger dataset with the same seed has the same first faces and labels
    big = adapter.scan(n=100, seed=2)
    pd.testing.assert_frame_equal(big.frame.iloc[:60], s.frame)
    # rows without the private index column are found by their source
    src_only, _ = adapter.read(s, s.frame.iloc[pick][["source", "age"]], 24, "rgb")
    np.testing.assert_array_equal(src_only, full[pick])


@pytest.mark.parametrize("size", [8, 16, 24, 48, 64, 100])
def test_shapes_and_gray_matches_rgb(adapter, size):
    s = adapter.scan(n=5, seed=1)
    rgb, _ = adapter.read(s, s.frame, size, "rgb")
    gray, _ = adapter.read(s, s.frame, size, "gray")
    assert rgb.shape == (5, size, size, 3) and rgb.dtype == np.uint8
    assert gray.shape == (5, size, size, 1) and gray.dtype == np.uint8
    # gray is the same face converted the way real photos are (ITU-R 601-2 luma)
    for k in range(5):
        np.testing.assert_array_equal(gray[k, ..., 0],
                                      np.asarray(Image.fromarray(rgb[k]).convert("L")))
    assert rgb.std() > 20  # not blank


def test_progress_is_reported(adapter):
    s = adapter.scan(n=600)
    calls = []
    adapter.read(s, s.frame, 8, "gray", progress=lambda d, t: calls.append((d, t)))
    assert calls[0] == (0, 600) and calls[-1] == (600, 600)
    assert all(t == 600 for _, t in calls) and 3 <= len(calls) <= 10
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)


@pytest.mark.parametrize("noise", [0.1, 0.3])
def test_label_noise_changes_the_requested_fraction(adapter, noise):
    clean = adapter.scan(n=4000, seed=3).frame
    noisy = adapter.scan(n=4000, seed=3, label_noise=noise).frame
    np.testing.assert_array_equal(clean["age"], noisy["age"])
    for label in ("expression", "eyewear"):
        changed = (clean[label] != noisy[label]).mean()
        assert abs(changed - noise) < 0.03, (label, changed)
    # noise is deterministic, and a lower level flips a subset of a higher one
    again = adapter.scan(n=4000, seed=3, label_noise=noise).frame
    pd.testing.assert_frame_equal(noisy, again)
    low = adapter.scan(n=4000, seed=3, label_noise=0.05).frame
    flipped_low = low["expression"] != clean["expression"]
    assert (noisy["expression"][flipped_low] == low["expression"][flipped_low]).all()


def test_label_noise_leaves_pixels_alone(adapter):
    a, b = adapter.scan(n=30, seed=5), adapter.scan(n=30, seed=5, label_noise=0.5)
    np.testing.assert_array_equal(adapter.read(a, a.frame, 16, "gray")[0],
                                  adapter.read(b, b.frame, 16, "gray")[0])


@pytest.mark.parametrize("options, message", [
    (dict(n=0), "n must be between 1"),
    (dict(n=-5), "n must be between 1"),
    (dict(n=2.5), "n must be a whole number"),
    (dict(n="many"), "n must be a whole number"),
    (dict(n=True), "n must be a whole number"),
    (dict(seed=-1), "seed must be between 0"),
    (dict(label_noise=0.6), "label_noise must be between 0 and 0.5"),
    (dict(label_noise=-0.01), "label_noise must be between 0 and 0.5"),
    (dict(label_noise=math.nan), "label_noise must be between 0 and 0.5"),
    (dict(label_noise="some"), "label_noise must be a number"),
    (dict(size=64), "unknown option"),
    (dict(version=syn.VERSION + 1), "version"),
])
def test_option_validation(adapter, options, message):
    with pytest.raises(DataError, match=message):
        adapter.scan(**options)


def test_options_from_text_are_accepted(adapter):
    s = adapter.scan(n="12", seed="3", label_noise="0.25")
    assert s.options["n"] == 12 and s.options["seed"] == 3 and s.options["label_noise"] == 0.25
    assert adapter.scan(n=12.0).options["n"] == 12


def test_read_validation(adapter):
    s = adapter.scan(n=3)
    with pytest.raises(DataError, match="size"):
        adapter.read(s, s.frame, 4, "rgb")
    with pytest.raises(DataError, match="size"):
        adapter.read(s, s.frame, 1024, "rgb")
    with pytest.raises(DataError, match="colour"):
        adapter.read(s, s.frame, 32, "cmyk")
    with pytest.raises(DataError, match="synthetic scan"):
        adapter.read(s, pd.DataFrame({"source": ["photo.jpg"]}), 32, "rgb")


def test_draw_face_api():
    rng = np.random.default_rng(0)
    img = draw_face({"age": 70, "expression": "smiling", "eyewear": "glasses"}, 96, rng)
    assert isinstance(img, Image.Image) and img.mode == "RGB" and img.size == (96, 96)
    again = draw_face({"age": 70, "expression": "smiling", "eyewear": "glasses"}, 96,
                      np.random.default_rng(0))
    np.testing.assert_array_equal(np.asarray(img), np.asarray(again))
    attrs = syn.face_attrs(0, 5)
    again_attrs = syn.face_attrs(0, 5)
    assert attrs.keys() == again_attrs.keys()
    assert all(np.array_equal(attrs[k], v) for k, v in again_attrs.items())
    # the labels drive the drawing: the same face with and without glasses, smiling or not
    base = dict(attrs, eyewear="none", expression="neutral", smile=0.0, open_mouth=False)
    pix = lambda d: np.asarray(draw_face(d, 64, np.random.default_rng(1)), dtype=int)  # noqa: E731
    plain = pix(base)
    assert np.abs(pix(dict(base, eyewear="glasses")) - plain).max() > 60
    assert np.abs(pix(dict(base, expression="smiling", smile=1.0)) - plain).max() > 40
    with pytest.raises(DataError, match="expression"):
        draw_face({"expression": "laughing"}, 32)


def test_older_faces_have_greyer_hair():
    young = [syn.random_attrs(np.random.default_rng(i), age=10)["grey"] for i in range(50)]
    old = [syn.random_attrs(np.random.default_rng(i), age=80)["grey"] for i in range(50)]
    assert max(young) == 0 and np.mean(old) > 0.6


def _conv_features(x: np.ndarray, filters: int = 32, k: int = 5, pool: int = 4) -> np.ndarray:
    """Fixed random 5x5 filters, ReLU, max-pooled on a grid: a tiny untrained conv net."""
    n, size = len(x), x.shape[1]
    x = x[..., 0].astype(np.float32)
    x = (x - x.mean((1, 2), keepdims=True)) / (x.std((1, 2), keepdims=True) + 1e-6)
    w = np.random.default_rng(0).standard_normal((k * k, filters)).astype(np.float32)
    w -= w.mean(0)
    w /= np.linalg.norm(w, axis=0)
    m = size - k + 1
    r = np.maximum(sliding_window_view(x, (k, k), axis=(1, 2)).reshape(n, m, m, k * k) @ w, 0)
    g = m // pool
    r = r[:, :g * pool, :g * pool].reshape(n, g, pool, g, pool, filters).max((2, 4))
    r = r.reshape(n, -1)
    return (r - r.mean(0)) / (r.std(0) + 1e-6)


def test_labels_are_learnable_but_not_trivially(adapter):
    """1,500 faces at 32 px gray; a linear model on fixed random conv features, 70/30 split.

    Measured (seed 1): eyewear 0.82 vs 0.69 majority, expression 0.61 vs 0.35, age R² 0.60.
    The thresholds leave a margin; they fail if a label stops showing in the pixels."""
    from sklearn.linear_model import Ridge, RidgeClassifier
    from sklearn.metrics import r2_score

    n = 1500
    s = adapter.scan(n=n, seed=1)
    x, _ = adapter.read(s, s.frame, 32, "gray")
    feats = _conv_features(x)
    train = np.arange(n) < int(0.7 * n)
    test = ~train
    f = s.frame
    margins = {"eyewear": 0.06, "expression": 0.15}
    for label, margin in margins.items():
        y = f[label].to_numpy()
        acc = (RidgeClassifier(alpha=1000).fit(feats[train], y[train]).predict(feats[test])
               == y[test]).mean()
        values, counts = np.unique(y[train], return_counts=True)
        majority = (y[test] == values[counts.argmax()]).mean()
        assert acc > majority + margin, (label, acc, majority)
        assert acc < 0.99, (label, acc)  # not trivial for a linear model
    age = f["age"].to_numpy()
    pred = Ridge(alpha=1000).fit(feats[train], age[train]).predict(feats[test])
    assert r2_score(age[test], pred) > 0.35
