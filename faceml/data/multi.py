"""Training on several datasets at once: one label space out of each dataset's own.

``PrepOptions(dataset="utkface,fairface")`` prepares every dataset on its own (its own scan,
cache, sample and seeded split stratified on its own labels; :func:`faceml.data.prepare.prepare`)
and then stacks them: the faces keep their split and gain a ``dataset`` column, and every label
is put into one class set (:func:`merge_labels`, from the declared tables of
:mod:`faceml.data.mapping` and :mod:`faceml.data.ages`). Scaling statistics are then fitted on the
combined training split, like any run's.

**Missing labels.** A face contributes the labels its dataset has: a label its dataset lacks is
missing in the frame (None / NaN) and gets sample weight 0 for that head
(:meth:`faceml.data.prepare.Prepared.fit_targets`), so it adds nothing to that head's loss.

**Categorical labels** (race, gender…) take the class set of the dataset that every other
dataset's classes map into *exactly*, through the declared tables. For race that is UTKFace's 5
classes: each of FairFace's 7 maps to one of them (East and Southeast Asian → Asian, Latino and
Middle Eastern → Others), while UTKFace's "Asian" and "Others" have no single FairFace class.
The other choice, FairFace's 7 classes with UTKFace's 5 as coarser targets, would have to call a
UTKFace "Others" face (anyone outside the four named groups) Latino or Middle Eastern, and could
only be scored on UTKFace after summing classes; the 5-class head is scored the same way on both
datasets, every face against its annotators' own label (FairFace's coarsened by the declared
table). Its finer FairFace classes stay in the frame as ``race_fairface`` (a grouping column).
Two datasets whose classes of one label map neither way raise :class:`ConfigError` naming the
label and the classes.

**Age.** With ``age="years"`` the head predicts years and every face's target is an interval:
``[a, a]`` for a dataset with years (UTKFace), ``[lo, hi + 1]`` for a bin (FairFace's ``20-29`` is
``[20, 30]``; ``more than 70`` is ``[70, 120]``). The loss (``faceml.modeling.losses.IntervalLoss``)
is zero inside the interval and the absolute (or Huber) error outside it, i.e. plain MAE for
exact years. The stored predictions give a binned face its bin's representative age
(:data:`faceml.data.ages.AGE_BIN_YEARS`, as cross-dataset evaluation does), so its age errors are
errors against bin midpoints, and the bin itself is kept as ``age_bin``. With an age scheme
(``fairface9``, ``decades``…) ages in years are binned by it and a dataset's bins must each lie
inside one bin of the scheme; otherwise a :class:`ConfigError` names them.

**Crops.** Several datasets are framed alike (``PrepOptions.framing="face"``): each image is
centre-cropped to the project's face box as its adapter declares it
(:attr:`~faceml.data.base.DatasetAdapter.face_box`), the crop the Predict page's detector hands a
model (:mod:`faceml.serving.detect`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from faceml.data.ages import age_bin_range, age_bins, bin_ages, bin_years
from faceml.data.base import LabelSpec
from faceml.data.mapping import translate, uncovered
from faceml.errors import ConfigError

MAX_YEARS = 120.0
"""The upper end of an open top age bin (``more than 70`` → ``[70, 120]``)."""
INTERVAL_COLUMNS = ("age_lo", "age_hi")


def _exact_into(values, label: str, targets: tuple[str, ...]) -> bool:
    return not uncovered(values, label, targets)


def _merge_categorical(label: str, specs: Mapping[str, LabelSpec]) -> LabelSpec:
    """The class set of ``label`` every dataset maps into, or ConfigError naming the classes."""
    owners = list(specs)
    for owner in owners:  # in the order the datasets were given
        target = specs[owner].classes
        if all(_exact_into(specs[o].classes, label, target) for o in owners if o != owner):
            kind = "binary" if len(target) == 2 and specs[owner].kind == "binary" else \
                "categorical"
            others = [o for o in owners if o != owner and specs[o].classes != target]
            note = (f"; {', '.join(others)}'s classes mapped into them" if others else "")
            return LabelSpec(label, kind, tuple(target),
                             f"{label}: {owner}'s classes{note}")
    parts = []
    for a in owners:
        for b in owners:
            if a != b:
                miss = uncovered(specs[a].classes, label, specs[b].classes)
                if miss:
                    parts.append(f"{a}'s {', '.join(map(repr, miss))} into {b}'s classes")
    raise ConfigError(f"the datasets' {label!r} labels cannot be reconciled: no declared "
                      f"mapping for {'; nor '.join(parts)}")


def _bins_within(classes, scheme: str, edges) -> list[str]:
    """The bin names of ``classes`` that do not lie inside one bin of ``scheme``."""
    bad = []
    for c in classes:
        r = age_bin_range(c)
        if r is None:
            bad.append(c)
            continue
        lo, hi = r[0], (r[1] if math.isfinite(r[1]) else MAX_YEARS)
        i = bin_ages(np.array([lo, hi]), scheme, edges)
        if i[0] != i[1]:
            bad.append(c)
    return bad


def _merge_age(specs: Mapping[str, LabelSpec], age: str, edges) -> LabelSpec:
    if age == "years":
        bad = {d: [c for c in s.classes if age_bin_range(c) is None]
               for d, s in specs.items() if s.kind != "years"}
        bad = {d: c for d, c in bad.items() if c}
        if bad:
            d, c = next(iter(bad.items()))
            raise ConfigError(f"the datasets' 'age' labels cannot be reconciled: {d}'s "
                              f"{', '.join(map(repr, c))} are no age bins in years")
        binned = [d for d, s in specs.items() if s.kind != "years"]
        note = f" ({', '.join(binned)}: bins as intervals)" if binned else ""
        return LabelSpec("age", "years", (), f"age in years{note}")
    names = age_bins(age, edges)[1]
    for d, s in specs.items():
        if s.kind == "years":
            continue
        bad = _bins_within(s.classes, age, edges)
        if bad:
            raise ConfigError(f"the datasets' 'age' labels cannot be reconciled: {d}'s bin(s) "
                              f"{', '.join(map(repr, bad))} span several {age!r} bins; use "
                              "age in years (bins become intervals) or a scheme they fit")
    return LabelSpec("age", "categorical", tuple(names), f"age in bins ({age})")


def merge_labels(specs: Mapping[str, Mapping[str, LabelSpec]], age: str = "years",
                 age_edges=None) -> dict[str, LabelSpec]:
    """One label space of several datasets' (``{dataset: {label: spec}}``): every label any of
    them has, in the order first seen; see the module docstring for how classes are merged."""
    order: list[str] = []
    for labels in specs.values():
        order += [n for n in labels if n not in order]
    out = {}
    for name in order:
        have = {d: labels[name] for d, labels in specs.items() if name in labels}
        if name == "age" and any(s.kind == "years" or age_bin_range(s.classes[0]) is not None
                                 for s in have.values()):
            out[name] = _merge_age(have, age, age_edges)
        elif any(s.kind == "years" for s in have.values()):
            kinds = {d: s.kind for d, s in have.items()}
            if len(set(kinds.values())) > 1:
                raise ConfigError(f"the datasets' {name!r} labels cannot be reconciled: "
                                  f"{', '.join(f'{d} has {k}' for d, k in kinds.items())}")
            out[name] = next(iter(have.values()))
        else:
            out[name] = _merge_categorical(name, have)
    return out


def common_frame(dataset: str, frame: pd.DataFrame, own: Mapping[str, LabelSpec],
                 merged: Mapping[str, LabelSpec], age: str = "years", age_edges=None
                 ) -> pd.DataFrame:
    """One dataset's prepared frame in the merged label space: labels translated (a label the
    dataset lacks is missing), ``dataset`` added, age as years with its interval (or binned),
    a coarsened label's own classes kept as ``<label>_<dataset>``."""
    out = pd.DataFrame({"source": frame["source"].to_numpy(), "dataset": dataset},
                       index=frame.index)
    for name, spec in merged.items():
        if name not in own:
            out[name] = np.nan if spec.kind == "years" else None
            continue
        values = frame[name]
        if name == "age" and spec.kind == "years":
            out["age"], out["age_lo"], out["age_hi"] = _years_and_interval(values, own[name])
            if own[name].kind != "years":
                out["age_bin"] = values.astype(object).to_numpy()
        elif name == "age" and own[name].kind == "years":
            years = values.to_numpy(dtype=float)
            names = age_bins(age, age_edges)[1]
            out["age"] = [names[i] for i in bin_ages(years, age, age_edges)]
            out["age_years"] = years
        elif spec.is_categorical:
            out[name] = translate(values, name, spec.classes).to_numpy()
            if tuple(own[name].classes) != tuple(spec.classes):
                out[f"{name}_{dataset}"] = values.astype(object).to_numpy()
        else:
            out[name] = values.to_numpy()
    out["split"] = frame["split"].to_numpy()
    return out


def _years_and_interval(values: pd.Series, own: LabelSpec):
    if own.kind == "years":
        y = values.to_numpy(dtype=float)
        return y, y, y
    ranges = [age_bin_range(v) for v in values]
    lo = np.array([r[0] for r in ranges], dtype=float)
    hi = np.array([min(r[1] + 1, MAX_YEARS) for r in ranges], dtype=float)
    mid = np.array([bin_years(v) for v in values], dtype=float)
    return mid, lo, hi
