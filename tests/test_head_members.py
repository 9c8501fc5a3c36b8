"""Heads answered by some members only (`bundle --head-members gender=1,2`): the ensemble's
answers by hand, a safe load, and the refusals."""

from __future__ import annotations

import numpy as np
import pytest

from faceml.errors import FaceMLError
from test_age_calibration import AGE, GENDER, _tiny_model


def test_a_head_averages_its_chosen_members_only(tmp_path):
    from faceml.modeling.ensemble import build_ensemble
    from faceml.modeling.modelio import load_model, save_model

    members = [_tiny_model([GENDER, AGE]) for _ in range(3)]
    x = np.random.default_rng(4).uniform(0, 255, (5, 8, 8, 3)).astype("float32")
    each = [m.predict(v, verbose=0) for m in members for v in (x, x[:, :, ::-1])]
    model = build_ensemble(members, mirror=True, head_members={"gender": [2, 1]})
    save_model(model, tmp_path / "h.keras")
    for m in (model, load_model(tmp_path / "h.keras")):
        got = m.predict(x, verbose=0)
        np.testing.assert_allclose(got["gender"], np.mean([p["gender"] for p in each[:4]], 0),
                                   rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(got["age"], np.mean([p["age"] for p in each], 0),
                                   rtol=1e-5, atol=1e-5)
    one = build_ensemble([_tiny_model([GENDER, AGE]) for _ in range(2)],
                         head_members={"age": [2]}, calibrate_age=True)
    assert "age_mean" not in [layer.name for layer in one.layers]  # one answer: nothing to average


def test_bad_head_members_are_clear_messages():
    from faceml.modeling.ensemble import build_ensemble, parse_head_members

    assert parse_head_members("gender=1,2; race=3") == {"gender": [1, 2], "race": [3]}
    assert parse_head_members("") == {}
    for bad in ("gender", "gender=a", "=1", "gender:1"):
        with pytest.raises(FaceMLError, match="--head-members takes HEAD=N,N"):
            parse_head_members(bad)
    two = [_tiny_model([GENDER, AGE]) for _ in range(2)]
    with pytest.raises(FaceMLError, match="no head 'race' .*gender, age"):
        build_ensemble(two, head_members={"race": [1]})
    for numbers in ([3], [0, 1], []):
        with pytest.raises(FaceMLError, match="members are numbered 1 to 2"):
            build_ensemble(two, head_members={"gender": numbers})
