"""Registered losses and metrics (serializable, so a compiled ``.keras`` file loads with
``safe_mode=True`` and a run resumes from it).

:class:`IntervalLoss`: an age head trained on several datasets at once
(:mod:`faceml.data.multi`) has a target interval ``[lo, hi]`` in years per face (``lo == hi``
for an exact age, a bin's range for a binned one); the loss is zero inside it and the absolute
error (or a Huber error) to the nearer end outside it, so for exact ages it is plain MAE. A face
without an age has sample weight 0 (:meth:`faceml.data.prepare.Prepared.fit_targets`).
Backend-agnostic: ``keras.ops`` only.
"""

from __future__ import annotations

import keras
from keras import ops


def _outside(y_true, y_pred):
    """Years by which each prediction lies outside its ``[lo, hi]`` target, shape ``(n,)``."""
    y_true = ops.cast(y_true, y_pred.dtype)
    pred = ops.reshape(y_pred, (-1,))
    lo, hi = y_true[:, 0], y_true[:, 1]
    return ops.relu(lo - pred) + ops.relu(pred - hi)


@keras.saving.register_keras_serializable(package="faceml")
def interval_error(y_true, y_pred):
    """Per face: years outside the target interval (the absolute error for an exact age)."""
    return _outside(y_true, y_pred)


@keras.saving.register_keras_serializable(package="faceml")
class IntervalLoss(keras.losses.Loss):
    """Zero inside ``[lo, hi]`` (``y_true`` of shape ``(n, 2)``), the absolute error to the
    nearer end outside it; with ``delta`` a Huber error of that distance instead."""

    def __init__(self, delta: float | None = None, name: str = "interval_loss",
                 reduction: str = "sum_over_batch_size", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.delta = None if delta is None else float(delta)

    def call(self, y_true, y_pred):
        d = _outside(y_true, y_pred)
        if self.delta is None:
            return d
        small = ops.minimum(d, self.delta)
        return 0.5 * small * small + self.delta * (d - small)

    def get_config(self) -> dict:
        return {**super().get_config(), "delta": self.delta}


def interval_mae(name: str = "interval_mae"):
    """The metric of an interval head: mean years outside the target interval (MAE for exact
    ages), weighted like the loss (faces without an age count for nothing)."""
    return keras.metrics.MeanMetricWrapper(interval_error, name=name)
