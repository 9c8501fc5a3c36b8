"""Registered layers the architecture presets need (no ``Lambda``: ``safe_mode=True`` loads them).

:class:`ImageNetPreprocessing` turns raw 0–255 RGB pixels into what an ImageNet backbone was
trained on. It sits *inside* the model, after :class:`~faceml.layers.FacePreprocessing` (which
for these presets passes raw pixels through: mean 0, std 1), so a saved ``.keras`` file can be
fed raw pixels like every other FaceML model.

Import :mod:`faceml.architectures` (or this module) before ``keras.saving.load_model`` so the
class is registered.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

# ImageNet statistics as keras.applications.imagenet_utils uses them.
IMAGENET_MEAN_BGR_255 = (103.939, 116.779, 123.68)  # 'caffe': BGR order, 0–255 scale
IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)  # 'torch': RGB order, 0–1 scale
IMAGENET_STD_RGB = (0.229, 0.224, 0.225)


@keras.saving.register_keras_serializable(package="faceml")
class ImageNetPreprocessing(keras.layers.Layer):
    """ImageNet input preprocessing of raw 0–255 RGB pixels, with ``keras.ops`` only.

    - ``caffe`` (VGG16, ResNet50): RGB→BGR, subtract the ImageNet mean per channel, no scaling.
    - ``tf``: scale to [-1, 1].
    - ``torch``: scale to [0, 1], then standardise with the ImageNet mean and std (RGB).
    """

    MODES = ("caffe", "tf", "torch")

    def __init__(self, mode: str = "caffe", **kwargs):
        super().__init__(**kwargs)
        if mode not in self.MODES:
            raise ValueError(f"mode must be one of {self.MODES}, not {mode!r}")
        self.mode = mode

    def build(self, input_shape):
        if input_shape[-1] != 3:
            raise ValueError(
                f"ImageNet preprocessing needs 3 (RGB) channels, got {input_shape[-1]}"
            )
        super().build(input_shape)

    def _const(self, values):
        return ops.convert_to_tensor(np.asarray(values, dtype="float32"), dtype=self.compute_dtype)

    def call(self, inputs):
        x = ops.cast(inputs, self.compute_dtype)
        if self.mode == "caffe":
            x = ops.flip(x, axis=-1)  # RGB -> BGR
            return x - self._const(IMAGENET_MEAN_BGR_255)
        if self.mode == "tf":
            return x / 127.5 - 1.0
        x = x / 255.0
        return (x - self._const(IMAGENET_MEAN_RGB)) / self._const(IMAGENET_STD_RGB)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}
