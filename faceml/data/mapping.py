"""The one place that declares how labels of one dataset map onto another's.

Used by cross-dataset evaluation (a model trained on FairFace scored on UTKFace, ...) and by
the folder adapter (class folders called ``men``/``women`` become the ``gender`` label).

The tables below are the whole declaration; :func:`translate` applies them::

    translate(utk_frame["race"], "race", FAIRFACE_RACES)
    # DataError: race: no mapping for 'Asian', 'Others' into FairFace's classes (...)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from faceml.data.ages import bin_years, years_to_bin
from faceml.errors import DataError

# -- class sets of the built-in datasets ---------------------------------------------------------
GENDERS = ("Male", "Female")
UTKFACE_RACES = ("White", "Black", "Asian", "Indian", "Others")
FAIRFACE_RACES = ("White", "Black", "Latino_Hispanic", "East Asian", "Southeast Asian", "Indian",
                  "Middle Eastern")
FAIRFACE_AGE_BINS = ("0-2", "3-9", "10-19", "20-29", "30-39", "40-49", "50-59", "60-69",
                     "more than 70")

# -- gender: folder / file names -> canonical class (keys are lower-case) -----------------------
GENDER_SYNONYMS: dict[str, str] = {
    "male": "Male", "males": "Male", "man": "Male", "men": "Male", "m": "Male",
    "female": "Female", "females": "Female", "woman": "Female", "women": "Female", "f": "Female",
}

# -- race -----------------------------------------------------------------------------------------
FAIRFACE_TO_UTKFACE_RACE: dict[str, str] = {
    "White": "White",
    "Black": "Black",
    "East Asian": "Asian",
    "Southeast Asian": "Asian",
    "Indian": "Indian",
    "Latino_Hispanic": "Others",
    "Middle Eastern": "Others",
}
# Only the unambiguous direction: UTKFace "Asian" (East or Southeast?) and "Others" have no
# single FairFace class.
UTKFACE_TO_FAIRFACE_RACE: dict[str, str] = {"White": "White", "Black": "Black",
                                            "Indian": "Indian"}

# label -> the class-name tables tried, in order, for values not already in the target classes
TABLES: dict[str, list[Mapping[str, str]]] = {
    "gender": [GENDER_SYNONYMS],
    "race": [FAIRFACE_TO_UTKFACE_RACE, UTKFACE_TO_FAIRFACE_RACE],
}

KNOWN_CLASS_SETS: dict[tuple[str, ...], str] = {
    GENDERS: "the gender classes",
    UTKFACE_RACES: "UTKFace's classes",
    FAIRFACE_RACES: "FairFace's classes",
    FAIRFACE_AGE_BINS: "FairFace's age bins",
}


def gender_of(name: str) -> str | None:
    """``"Male"``/``"Female"`` for a gender name in any case (``men``, ``F``...), else None."""
    return GENDER_SYNONYMS.get(str(name).strip().lower())


def _as_years(value) -> float | None:
    if isinstance(value, str):
        y = bin_years(value)
        if y is not None:
            return y
        try:
            return float(value)
        except ValueError:
            return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


# -- translate -------------------------------------------------------------------------------------
def _is_missing(v) -> bool:
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def _translate_one(value, label: str, targets: tuple[str, ...]):
    """The target class (or years, for ``targets == ()`` on age) for one value, else None."""
    if label == "age":
        years = _as_years(value)
        if not targets:  # years wanted
            return years
        if value in targets:
            return value
        return None if years is None else years_to_bin(years, targets)
    if value in targets:
        return value
    for table in TABLES.get(label, ()):
        key = str(value).strip().lower() if table is GENDER_SYNONYMS else value
        t = table.get(key)
        if t is not None and t in targets:
            return t
    return None


def _describe(targets: tuple[str, ...], target: str | None) -> str:
    if not targets:
        return "years"
    name = target or KNOWN_CLASS_SETS.get(targets, "the classes")
    return f"{name} ({', '.join(targets)})"


def uncovered(values, label: str, target_classes: Sequence[str]) -> list[str]:
    """The distinct values (as strings, sorted) that :func:`translate` cannot map."""
    targets = tuple(target_classes)
    out = {str(v) for v in pd.unique(pd.Series(list(values), dtype=object))
           if not _is_missing(v) and _translate_one(v, label, targets) is None}
    return sorted(out)


def translate(values: pd.Series, label: str, target_classes: Sequence[str], *,
              target: str | None = None) -> pd.Series:
    """Map class names of another dataset into ``target_classes`` (same index, missing stays
    missing).

    ``label`` picks the table (``gender``, ``race``, ``age``). For ``age``, values may be years or
    bin names; ``target_classes`` are bin names, or empty for years (bins become their
    representative years). Raises :class:`DataError` naming *every* value with no mapping.
    ``target`` names the target in that message (default: recognised from the class set).
    """
    values = pd.Series(values)
    targets = tuple(target_classes)
    if label != "age" and not targets:
        raise DataError(f"{label}: no target classes to map into")
    mapping: dict = {}
    missing: list[str] = []
    for v in pd.unique(values.astype(object)):
        if _is_missing(v):
            continue
        t = _translate_one(v, label, targets)
        if t is None:
            missing.append(str(v))
        else:
            mapping[v] = t
    if missing:
        names = ", ".join(repr(m) for m in sorted(set(missing)))
        raise DataError(f"{label}: no mapping for {names} into {_describe(targets, target)}")
    out = values.astype(object).map(lambda v: None if _is_missing(v) else mapping[v])
    if label == "age" and not targets:
        return out.astype(float)
    return out.astype(object)
