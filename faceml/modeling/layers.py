"""Registered, serializable Keras layers (no ``Lambda``: every model loads with ``safe_mode=True``).

:class:`FacePreprocessing` is the first layer of every FaceML model. It makes a saved ``.keras``
file self-describing: it takes raw 0–255 pixels at ``image_size`` × ``image_size`` in ``color``,
computes ``(x - mean) / std`` with statistics fitted on the *training split only* (per channel:
a z-score, or 0 and 255; or per pixel, arrays of shape ``(size, size, c)``: min-max), and
carries the model's metadata (dataset, heads with their class names), so training, evaluation
and the Predict page can never disagree on how a face is turned into numbers.

:class:`HalfConv2D` and :class:`HalfDense` keep their kernel at half precision (a bundled file
half the size, :func:`faceml.modeling.ensemble.half_kernels`) and compute as the model does.

:class:`HorizontalFlip` mirrors a face (an ensemble's test-time augmentation), and
:class:`ImageNetPreprocessing` turns raw 0–255 RGB pixels into what an ImageNet backbone was
trained on; it sits *inside* a transfer model, after :class:`FacePreprocessing` (which for those
presets passes raw pixels through: mean 0, std 1), so such a ``.keras`` file is fed raw pixels
like every other FaceML model. Importing this module registers them all for loading.
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
        self.mean = self._values(mean, "mean").tolist()
        self.std = np.maximum(self._values(std, "std"), 1e-6).tolist()
        self.metadata = dict(metadata or {})

    def _values(self, values, what: str) -> np.ndarray:
        """Per-channel statistics as a flat list (as every model before per-pixel ones), or
        per-pixel ones as a ``(size, size, channels)`` array."""
        a = np.asarray(values, dtype="float64")
        if a.ndim <= 1:
            return a.ravel()
        shape = (self.image_size, self.image_size, self.channels)
        if a.shape != shape:
            raise ValueError(f"{what} must be per channel or of shape {shape}, not {a.shape}")
        return a

    @property
    def per_pixel(self) -> bool:
        """Whether the statistics are per pixel (min-max scaling) rather than per channel."""
        return np.ndim(self.mean) == 3 or np.ndim(self.std) == 3

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
    augmentation in an ensemble (:mod:`faceml.modeling.ensemble`)."""

    def call(self, inputs):
        return ops.flip(inputs, axis=-2)

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package="faceml")
class AgeCalibration(keras.layers.Layer):
    """``max(scale · age + offset, 0)``: a bundled model's map from its members' mean age (in
    years) to the age it answers, fitted on validation ages by ``bundle --calibrate-age``
    (:mod:`faceml.serving.calibration`). ``scale`` and ``offset`` are weights, not trained: the
    map is set once the ensemble is built and is saved with it. A new layer is the identity."""

    def build(self, input_shape):
        self.scale = self.add_weight(shape=(), initializer="ones", trainable=False,
                                     name="scale")
        self.offset = self.add_weight(shape=(), initializer="zeros", trainable=False,
                                      name="offset")
        super().build(input_shape)

    def call(self, inputs):
        x = ops.cast(inputs, self.compute_dtype)
        return ops.maximum(x * ops.cast(self.scale, x.dtype) + ops.cast(self.offset, x.dtype),
                           0.0)

    def compute_output_shape(self, input_shape):
        return input_shape


class _HalfKernel:
    """The kernel stored as float16 (half the bytes in a ``.keras`` file) and cast to the
    layer's compute dtype when used: a float32 model computes as before, on kernels rounded to
    11 significant bits. The bias stays at the variable dtype (it is small)."""

    def add_weight(self, *args, **kwargs):
        if kwargs.get("name") == "kernel":
            kwargs["dtype"] = "float16"
        return super().add_weight(*args, **kwargs)

    @property
    def kernel(self):
        return ops.cast(super().kernel, self.compute_dtype)

    def save_own_variables(self, store):
        own: dict = {}
        super().save_own_variables(own)  # "0" is the kernel as used (cast): store it as kept
        own["0"] = self._kernel
        for key, value in own.items():
            store[key] = value


@keras.saving.register_keras_serializable(package="faceml")
class HalfConv2D(_HalfKernel, keras.layers.Conv2D):
    """``Conv2D`` with a float16 kernel (:class:`_HalfKernel`)."""


@keras.saving.register_keras_serializable(package="faceml")
class HalfDense(_HalfKernel, keras.layers.Dense):
    """``Dense`` with a float16 kernel (:class:`_HalfKernel`)."""


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
