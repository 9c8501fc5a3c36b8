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
                   calibrate_age: bool = False, head_members: dict | None = None):
    """A model whose every output is the mean of the members' (on the face and its mirror).

    The members are used as they are (renamed ``member1_…``, …), not copied. A single model
    without ``mirror`` or ``calibrate_age`` has nothing to average: it comes back unchanged (not
    renamed). ``calibrate_age``: the ``age`` output passes through an
    :class:`~faceml.modeling.layers.AgeCalibration` layer (the identity until its map is set:
    :func:`faceml.serving.calibration.set_age_map`). ``head_members``: ``{head: [1, 2]}``, a
    head answered by the mean of those members only (numbered from 1 in ``models``' order; the
    others' answers to it are left out), e.g. a gender head without a member trained on one
    dataset only; every other head averages all members."""
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
    head_members = check_head_members(head_members, len(models), [h[0] for h in sig[2]])
    if len(models) == 1 and not mirror and not calibrate_age:
        return models[0]
    for i, m in enumerate(models, 1):  # nested models need distinct names to be saved
        m.name = f"member{i}_{re.sub(r'^member[0-9]+_', '', m.name)}"  # a bundled ensemble's
    pixels = keras.Input(models[0].inputs[0].shape[1:], name="pixels")
    views = [pixels, HorizontalFlip(name="mirror")(pixels)] if mirror else [pixels]
    answers: dict[str, list] = {}
    for i, m in enumerate(models, 1):
        for v in views:
            for head, t in m(v).items():  # FaceML models answer a dict: head name → output
                if i in head_members.get(head, [i]):
                    answers.setdefault(head, []).append(t)
    def mean(h, ts):
        if calibrate_age and h == "age":
            ts = [keras.layers.Average(name="age_mean")(ts)] if len(ts) > 1 else ts
            return AgeCalibration(name="age")(ts[0])
        return keras.layers.Average(name=h)(ts) if len(ts) > 1 else ts[0]

    outputs = {h: mean(h, ts) for h, ts in answers.items()}
    return keras.Model(pixels, outputs, name=name)


def check_head_members(head_members: dict | None, n: int, heads: list[str]) -> dict:
    """``{head: sorted member numbers}`` checked against ``n`` members and their ``heads``: a
    clear :class:`FaceMLError` for an unknown head or a member number outside 1..n."""
    out = {}
    for head, numbers in (head_members or {}).items():
        if head not in heads:
            raise FaceMLError(f"--head-members: no head {head!r} (the members predict "
                              f"{', '.join(heads)})")
        chosen = sorted({int(i) for i in numbers})
        if not chosen or chosen[0] < 1 or chosen[-1] > n:
            raise FaceMLError(f"--head-members {head}: members are numbered 1 to {n}, got "
                              f"{', '.join(map(str, numbers)) or 'none'}")
        out[head] = chosen
    return out


def parse_head_members(text: str) -> dict[str, list[int]]:
    """``"gender=1,2;race=1"`` → ``{"gender": [1, 2], "race": [1]}`` (a clear error otherwise)."""
    out: dict[str, list[int]] = {}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        head, sep, numbers = part.partition("=")
        try:
            out[head.strip()] = [int(i) for i in numbers.split(",") if i.strip()]
        except ValueError:
            sep = ""
        if not sep or not head.strip():
            raise FaceMLError(f"--head-members takes HEAD=N,N[;HEAD=N…], e.g. gender=1,2: "
                              f"{part[:60]!r}")
    return out


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
