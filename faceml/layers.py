"""Registered, serializable Keras layers (no ``Lambda``: every model loads with ``safe_mode=True``).

:class:`FacePreprocessing` is the first layer of every FaceML model. It makes a saved ``.keras``
file self-describing: it takes raw 0–255 pixels at ``image_size`` × ``image_size`` in ``color``,
scales them with per-channel statistics fitted on the *training split only*, and carries the
model's metadata (dataset, heads with their class names), so training, evaluation and the
Predict page can never disagree on how a face is turned into numbers.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops


@keras.saving.register_keras_serializable(package="faceml")
class FacePreprocessing(keras.layers.Layer):
    def __init__(self, image_size: int, color: str, mean=(0.0,), std=(255.0,),
                 metadata: dict | None = None, **kwargs):
        super().__init__(**kwargs)
        if color not in ("gray", "rgb"):
            raise ValueError(f"color must be 'gray' or 'rgb', not {color!r}")
        self.image_size = int(image_size)
        self.color = color
        self.mean = [float(m) for m in np.ravel(mean)]
        self.std = [max(float(s), 1e-6) for s in np.ravel(std)]
        self.metadata = dict(metadata or {})

    @property
    def channels(self) -> int:
        return 1 if self.color == "gray" else 3

    def call(self, inputs):
        x = ops.cast(inputs, self.compute_dtype)
        mean = ops.convert_to_tensor(np.asarray(self.mean, dtype="float32"),
                                     dtype=self.compute_dtype)
        std = ops.convert_to_tensor(np.asarray(self.std, dtype="float32"), dtype=self.compute_dtype)
        return (x - mean) / std

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "image_size": self.image_size, "color": self.color,
                "mean": self.mean, "std": self.std, "metadata": self.metadata}


def find_preprocessing(model: keras.Model) -> FacePreprocessing:
    """The model's :class:`FacePreprocessing` layer (searching nested models too)."""
    for layer in model.layers:
        if isinstance(layer, FacePreprocessing):
            return layer
        if isinstance(layer, keras.Model):
            try:
                return find_preprocessing(layer)
            except LookupError:
                pass
    raise LookupError("this model has no FacePreprocessing layer: it was not made by FaceML")


@keras.saving.register_keras_serializable(package="faceml")
class HorizontalFlip(keras.layers.Layer):
    """The mirrored image, always (``RandomFlip`` does nothing at inference): test-time
    augmentation in an ensemble (:mod:`faceml.ensemble`)."""

    def call(self, inputs):
        return ops.flip(inputs, axis=-2)

    def compute_output_shape(self, input_shape):
        return input_shape
