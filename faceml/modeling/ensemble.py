"""One FaceML model that averages several trained ones (and, optionally, each one's answer on
the mirrored face: test-time augmentation).

    model = build_ensemble([run_a.load_model("best"), run_b.load_model("best")], mirror=True)

Probabilities are averaged per class and ages in years. The members must take the same input
(size, colour) and predict the same heads with the same classes; the ensemble keeps their
:class:`~faceml.modeling.layers.FacePreprocessing` layers, so it is a FaceML model like any other:
it
loads with ``safe_mode=True`` and the Predict page, evaluation and the CLI use it unchanged.
Made by ``python -m faceml bundle RUN RUN… --mirror``, choosing members on validation.

:func:`half_kernels` makes a copy of a model whose convolution and dense kernels are stored at
half precision (``bundle --float16``): the file is about half the size, so twice the members fit
a size limit, and it still computes in float32.
"""

from __future__ import annotations

import re

from faceml.errors import FaceMLError


def _signature(model) -> tuple:
    from faceml.modeling.layers import find_preprocessing

    pre = find_preprocessing(model)
    heads = tuple((h["name"], h["kind"], tuple(h.get("classes") or ()),
                   h.get("output", "sigmoid"))
                  for h in (pre.metadata or {}).get("heads", []))
    return pre.image_size, pre.color, heads


def build_ensemble(models: list, mirror: bool = False, name: str = "faceml_ensemble",
                   calibrate_age: bool = False):
    """A model whose every output is the mean of the members' (on the face and its mirror).

    The members are used as they are (renamed ``member1_…``, …), not copied. A single model
    without ``mirror`` or ``calibrate_age`` has nothing to average: it comes back unchanged (not
    renamed). ``calibrate_age``: the ``age`` output passes through an
    :class:`~faceml.modeling.layers.AgeCalibration` layer (the identity until its map is set:
    :func:`faceml.serving.calibration.set_age_map`)."""
    import keras

    from faceml.modeling.layers import AgeCalibration, HorizontalFlip

    if not models:
        raise FaceMLError("an ensemble needs at least one model")
    sig = _signature(models[0])
    for m in models[1:]:
        if _signature(m) != sig:
            raise FaceMLError("ensemble members must take the same input and predict the same "
                              f"heads: {models[0].name} {sig[:2]} vs {m.name} {_signature(m)[:2]}")
    if calibrate_age and ("age", "regression") not in {h[:2] for h in sig[2]}:
        raise FaceMLError(f"{models[0].name} has no age head in years to calibrate (its heads: "
                          f"{', '.join(h[0] for h in sig[2]) or 'none'})")
    if len(models) == 1 and not mirror and not calibrate_age:
        return models[0]
    for i, m in enumerate(models, 1):  # nested models need distinct names to be saved
        m.name = f"member{i}_{re.sub(r'^member[0-9]+_', '', m.name)}"  # a bundled ensemble's
    pixels = keras.Input(models[0].inputs[0].shape[1:], name="pixels")
    views = [pixels, HorizontalFlip(name="mirror")(pixels)] if mirror else [pixels]
    answers: dict[str, list] = {}
    for m in models:
        for v in views:
            for head, t in m(v).items():  # FaceML models answer a dict: head name → output
                answers.setdefault(head, []).append(t)
    def mean(h, ts):
        if calibrate_age and h == "age":
            ts = [keras.layers.Average(name="age_mean")(ts)] if len(ts) > 1 else ts
            return AgeCalibration(name="age")(ts[0])
        return keras.layers.Average(name=h)(ts) if len(ts) > 1 else ts[0]

    outputs = {h: mean(h, ts) for h, ts in answers.items()}
    return keras.Model(pixels, outputs, name=name)


def half_kernels(model):
    """A copy of ``model`` (same name, layers and preprocessing) whose ``Conv2D`` and ``Dense``
    kernels are float16 (:class:`~faceml.modeling.layers.HalfConv2D`,
    :class:`~faceml.modeling.layers.HalfDense`); every other weight is copied as it is. The copy
    computes in the model's own dtype, so its answers differ only by the kernels' rounding."""
    import keras

    from faceml.modeling.layers import HalfConv2D, HalfDense

    halves = {keras.layers.Conv2D: HalfConv2D, keras.layers.Dense: HalfDense}

    def swap(layer):  # exact types only: a subclass may store its kernel otherwise
        return halves.get(type(layer), type(layer)).from_config(layer.get_config())

    copy = keras.models.clone_model(model, clone_function=swap, recursive=True)
    old = {w.path: w for w in model.weights}
    if len(old) != len(copy.weights):
        raise FaceMLError(f"{model.name}: its float16 copy has {len(copy.weights)} weights "
                          f"instead of {len(old)}")
    for w in copy.weights:
        w.assign(keras.ops.cast(old[w.path], w.dtype))
    copy.name = model.name
    return copy
