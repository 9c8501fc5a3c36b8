"""Age calibration (`bundle --calibrate-age`): the AgeCalibration layer, the median-regression
fit on validation's exact ages, and its refusals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from faceml.errors import FaceMLError


def _frame(n=400, seed=0, scale=1.2, offset=-5.0, binned=0):
    """A validation predictions frame whose true ages are ``scale · pred + offset`` plus
    Laplace noise; ``binned`` more rows with an age bin whose midpoint is far off the line."""
    rng = np.random.default_rng(seed)
    pred = rng.uniform(5, 80, n)
    true = scale * pred + offset + rng.laplace(0, 2.0, n)
    rows = pd.DataFrame({"split": "val", "age_pred": pred, "age_true": true,
                         "group_dataset": "utkface", "group_age_bin": None})
    if binned:
        far = pd.DataFrame({"split": "val", "age_pred": rng.uniform(5, 80, binned),
                            "age_true": 75.0, "group_dataset": "fairface",
                            "group_age_bin": "more than 70"})
        rows = pd.concat([rows, far], ignore_index=True)
    test = rows.head(5).assign(split="test", age_true=0.0)  # never part of the fit
    return pd.concat([rows, test], ignore_index=True)


def test_the_line_is_fitted_on_exact_validation_ages_only():
    from faceml.serving.calibration import fit_age_map

    m = fit_age_map(_frame(binned=300))
    assert m.scale == pytest.approx(1.2, abs=0.03) and m.offset == pytest.approx(-5, abs=1.0)
    assert m.n == 400 and m.datasets == ("utkface",)
    assert m.mae_cv < m.mae_before  # the map helps on folds it was not fitted on
    assert m.mae_cv == pytest.approx(2.0, abs=0.3)  # Laplace(0, 2): mean |noise| is 2
    np.testing.assert_allclose(m([10.0, 0.0]), [max(m.scale * 10 + m.offset, 0), 0.0])
    # the same faces without the binned ones: the same line
    assert fit_age_map(_frame()).scale == pytest.approx(m.scale, abs=1e-6)


def test_each_dataset_s_mae_with_the_map_is_by_hand():
    from faceml.serving.calibration import fit_age_map, mapped_mae

    frame = _frame(binned=300)
    m = fit_age_map(frame)
    got = mapped_mae(frame, m)
    val = frame[frame["split"] == "val"]
    for d in ("utkface", "fairface"):
        part = val[val["group_dataset"] == d]
        mapped = np.maximum(m.scale * part["age_pred"] + m.offset, 0)
        assert got[d] == pytest.approx(np.abs(mapped - part["age_true"]).mean(), rel=1e-12)
    assert set(mapped_mae(frame.drop(columns="group_dataset"), m)) == {""}


def test_too_few_exact_ages_is_a_clear_message():
    from faceml.serving.calibration import MIN_FACES, fit_age_map

    few = _frame(n=MIN_FACES - 1, binned=500)
    with pytest.raises(FaceMLError, match=f"at least {MIN_FACES} validation faces with an exact "
                                          f"age; .* has {MIN_FACES - 1}"):
        fit_age_map(few)
    with pytest.raises(FaceMLError, match="no age in years"):
        fit_age_map(_frame().drop(columns="age_pred"))


def _tiny_model(heads):
    import keras

    from faceml.modeling.layers import FacePreprocessing

    pixels = keras.Input((8, 8, 3), name="pixels")
    x = FacePreprocessing(image_size=8, color="rgb", mean=[0.0] * 3, std=[1.0] * 3,
                          metadata={"heads": heads})(pixels)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = {}
    for h in heads:
        units = 1 if h["kind"] != "multiclass" else len(h["classes"])
        out[h["name"]] = keras.layers.Dense(units, name=h["name"])(x)
    return keras.Model(pixels, out, name="tiny")


AGE = {"name": "age", "kind": "regression"}
GENDER = {"name": "gender", "kind": "binary", "classes": ["Male", "Female"]}


def test_the_layer_is_the_identity_until_set_and_survives_a_safe_load(tmp_path):
    from faceml.modeling.ensemble import build_ensemble
    from faceml.modeling.modelio import load_model, save_model
    from faceml.serving.calibration import AgeMap, set_age_map

    member = _tiny_model([GENDER, AGE])
    x = np.random.default_rng(1).uniform(0, 255, (6, 8, 8, 3)).astype("float32")
    raw = member.predict(x, verbose=0)
    model = build_ensemble([member], calibrate_age=True, name="calibrated")
    got = model.predict(x, verbose=0)
    np.testing.assert_allclose(got["age"], np.maximum(raw["age"], 0), rtol=1e-6)
    np.testing.assert_allclose(got["gender"], raw["gender"], rtol=1e-6)
    amap = AgeMap(scale=2.0, offset=-3.0, n=100, datasets=(), mae_before=1, mae_cv=1)
    set_age_map(model, amap)
    save_model(model, tmp_path / "c.keras")
    back = load_model(tmp_path / "c.keras")  # safe_mode=True
    got = back.predict(x, verbose=0)
    np.testing.assert_allclose(got["age"], amap(raw["age"]), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got["gender"], raw["gender"], rtol=1e-6)


def test_a_model_without_an_age_head_is_refused():
    from faceml.modeling.ensemble import build_ensemble
    from faceml.serving.calibration import set_age_map, AgeMap

    with pytest.raises(FaceMLError, match="no age head in years to calibrate .*gender"):
        build_ensemble([_tiny_model([GENDER])], calibrate_age=True)
    plain = build_ensemble([_tiny_model([GENDER, AGE])], mirror=True)
    with pytest.raises(FaceMLError, match="no AgeCalibration layer"):
        set_age_map(plain, AgeMap(1, 0, 1, (), 0, 0))
