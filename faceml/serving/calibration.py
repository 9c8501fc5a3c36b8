"""Age calibration of a bundled model (``python -m faceml bundle … --calibrate-age``).

An average of models trained with an absolute-error loss answers ages drawn towards the middle
of its training ages (v2 on UTKFace's validation split: faces it says are 5–20 are about 4 years
younger, on the median). A straight line from the model's age to the true age, fitted on the
**validation** split's exact ages (a dataset whose ages are bins is left out of the fit),
corrects that:

    age' = max(scale · age + offset, 0)

It is fitted by median (least absolute deviation) regression, the loss the age head itself
minimises (scikit-learn's ``QuantileRegressor``), and carried inside the model by an
:class:`~faceml.modeling.layers.AgeCalibration` layer, so the Predict page, evaluation and the
CLI use it unchanged. A map fitted on the validation split makes that split's own figure
optimistic, so the card reports the **cross-fitted** validation MAE: each of 5 seeded folds
mapped by a line fitted on the other four (``cross_val_predict``). The test split is still
scored once, with the fitted map, by ``bundle``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from faceml.errors import FaceMLError

MIN_FACES = 50
"""Fewer validation faces with an exact age than this: no map is fitted (a clear error)."""
FOLDS = 5


@dataclass(frozen=True)
class AgeMap:
    """A fitted ``age' = max(scale · age + offset, 0)`` and what it was fitted on."""

    scale: float
    offset: float
    n: int
    """validation faces with an exact age it was fitted on"""
    datasets: tuple[str, ...]
    """the datasets those faces came from (empty: a run on one dataset)"""
    mae_before: float
    """their MAE without the map"""
    mae_cv: float
    """their cross-fitted MAE with it (each fold mapped by a line fitted on the others)"""

    def __call__(self, years):
        return np.maximum(self.scale * np.asarray(years, dtype=np.float64) + self.offset, 0.0)


def _validation(frame):
    """``(rows, dataset column or None, predicted, true)``: the validation rows of a predictions
    frame (a run's stored frame or a bundle's CSV) and their ages as floats (nan: none)."""
    import pandas as pd

    val = frame[frame["split"].astype(str) == "val"] if "split" in frame else frame
    if "age_true" not in val or "age_pred" not in val:
        raise FaceMLError("--calibrate-age: the predictions have no age in years")
    col = next((c for c in ("group_dataset", "dataset") if c in val), None)
    return (val, col, pd.to_numeric(val["age_pred"], errors="coerce").to_numpy(float),
            pd.to_numeric(val["age_true"], errors="coerce").to_numpy(float))


def exact_ages(frame) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """``(predicted, true, datasets)`` of the validation rows of a predictions frame whose true
    age is exact (not an age bin's midpoint)."""
    from faceml.serving.predict import age_bin_names

    val, col, yp, yt = _validation(frame)
    bins = age_bin_names(val)
    ok = np.isfinite(yt) & np.isfinite(yp)
    if bins is not None:
        ok &= bins.isna().to_numpy()
    names = tuple(sorted(set(val.loc[ok, col].astype(str)))) if col else ()
    return yp[ok], yt[ok], names


def fit_age_map(frame, seed: int = 0) -> AgeMap:
    """The median-regression line from predicted to true age on ``frame``'s validation rows
    with exact ages (see the module docstring), with its cross-fitted MAE."""
    from sklearn.linear_model import QuantileRegressor
    from sklearn.metrics import mean_absolute_error
    from sklearn.model_selection import KFold, cross_val_predict

    pred, true, names = exact_ages(frame)
    if len(true) < MIN_FACES:
        raise FaceMLError(f"--calibrate-age needs at least {MIN_FACES} validation faces with an "
                          f"exact age; this model's validation split has {len(true)} (a dataset "
                          "whose ages are bins cannot calibrate ages)")
    line = QuantileRegressor(quantile=0.5, alpha=0.0, solver="highs")
    x = pred[:, None]
    folded = cross_val_predict(line, x, true, cv=KFold(FOLDS, shuffle=True, random_state=seed))
    line.fit(x, true)
    return AgeMap(scale=float(line.coef_[0]), offset=float(line.intercept_), n=int(len(true)),
                  datasets=names, mae_before=float(mean_absolute_error(true, pred)),
                  mae_cv=float(mean_absolute_error(true, np.maximum(folded, 0.0))))


def mapped_mae(frame, age_map: AgeMap) -> dict[str, float]:
    """Each dataset's validation age MAE with the map (against exact ages, or a bin's midpoint
    for a dataset whose ages are bins); ``{"": …}`` for a frame of one dataset. A dataset
    outside the fit (:attr:`AgeMap.datasets`) is an honest check of the map."""
    from sklearn.metrics import mean_absolute_error

    val, col, yp, yt = _validation(frame)
    names = val[col].astype(str).to_numpy() if col else np.full(len(val), "")
    out = {}
    for d in dict.fromkeys(names):
        ok = (names == d) & np.isfinite(yt) & np.isfinite(yp)
        if ok.any():
            out[str(d)] = float(mean_absolute_error(yt[ok], age_map(yp[ok])))
    return out


def set_age_map(model, age_map: AgeMap) -> None:
    """Set the map of ``model``'s :class:`~faceml.modeling.layers.AgeCalibration` layer (built
    by ``build_ensemble(..., calibrate_age=True)``)."""
    from faceml.modeling.layers import AgeCalibration

    layer = next((lay for lay in model.layers if isinstance(lay, AgeCalibration)), None)
    if layer is None:
        raise FaceMLError(f"{model.name} has no AgeCalibration layer to set")
    layer.scale.assign(age_map.scale)
    layer.offset.assign(age_map.offset)


def card_lines(age_map: AgeMap) -> list[str]:
    """The card's section on the map."""
    where = (f" of {', '.join(age_map.datasets)}" if age_map.datasets else "")
    return ["## Age calibration (carried inside the model)",
            f"- The members' mean age is mapped to `max({age_map.scale:.4f} × age "
            f"{'+' if age_map.offset >= 0 else '−'} {abs(age_map.offset):.3f}, 0)` years "
            "(`AgeCalibration` layer), a median-regression line from the model's age to the "
            f"true age fitted on the {age_map.n} validation faces{where} with an exact age "
            "(`bundle --calibrate-age`, `faceml/serving/calibration.py`).",
            f"- On those faces the age MAE is {age_map.mae_before:.3f} years without the map "
            f"and {age_map.mae_cv:.3f} with it, cross-fitted ({FOLDS} seeded folds, each "
            "mapped by a line fitted on the other four), since a map fitted on the validation "
            "split flatters that split's own figure. The test numbers below are with the map, "
            "scored once.", ""]
