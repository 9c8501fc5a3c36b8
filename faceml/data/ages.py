"""Ages and age bins: the one place years are binned, bins are named, and bin names are read
back as years.

- **Schemes** (:data:`AGE_SCHEMES`): named binnings a dataset's age can be trained as
  (``decades``, ``life6``, ``fairface9``) or ``custom`` edges; :func:`age_bins`,
  :func:`bin_ages`.
- **Groups** (:func:`age_groups`): ages binned by any edges (default decades) for per-group
  errors; the labels read ``"20-29"``/``"90+"``, the same names as the schemes'.
- **Bin names → years** (:func:`age_bin_range`, :func:`bin_years`, :func:`years_to_bin`):
  FairFace's ``"3-9"``/``"more than 70"`` and the like, for mapping between datasets.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import numpy as np
import pandas as pd

from faceml.errors import ConfigError

# Each scheme: the lower edge (in years) of every bin after the first, and the bins' names.
AGE_SCHEMES: dict[str, tuple[list[int], list[str]]] = {
    "decades": ([10, 20, 30, 40, 50, 60, 70, 80, 90],
                ["0-9", "10-19", "20-29", "30-39", "40-49", "50-59", "60-69", "70-79", "80-89",
                 "90+"]),
    # the six life stages of the UTKFace-CSV notebook
    "life6": ([3, 13, 20, 40, 60],
              ["infant (0-2)", "child (3-12)", "teen (13-19)", "young adult (20-39)",
               "middle-aged (40-59)", "senior (60+)"]),
    # FairFace's nine bins
    "fairface9": ([3, 10, 20, 30, 40, 50, 60, 70],
                  ["0-2", "3-9", "10-19", "20-29", "30-39", "40-49", "50-59", "60-69",
                   "more than 70"]),
}
AGE_MODES = ("years", *AGE_SCHEMES, "custom")
AGE_DECADES: tuple[float, ...] = (0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100, math.inf)
"""Default edges of :func:`age_groups`: decades, 100+ open."""

AGE_BIN_YEARS: dict[str, float] = {
    "0-2": 1.0, "3-9": 6.0, "10-19": 14.5, "20-29": 24.5, "30-39": 34.5, "40-49": 44.5,
    "50-59": 54.5, "60-69": 64.5, "more than 70": 75.0,
}
"""A FairFace bin's representative age in years (its midpoint; 75 for the open top bin)."""


def edge_labels(edges: Sequence[float]) -> list[str]:
    """Names of the bins ``[edges[i], edges[i+1])``: ``"20-29"`` for whole years, ``"90+"``
    for an open last bin, else ``"[2.5, 7.5)"``."""
    labels = []
    for a, b in zip(edges, edges[1:]):
        whole = float(a).is_integer() and (math.isinf(b) or float(b).is_integer())
        if math.isinf(b):
            labels.append(f"{a:g}+")
        elif whole:
            labels.append(f"{a:g}-{b - 1:g}")
        else:
            labels.append(f"[{a:g}, {b:g})")
    return labels


def age_bins(scheme: str, edges: list[int] | None = None) -> tuple[list[int], list[str]]:
    """Edges and names of an age scheme; ``custom`` takes increasing integer ``edges``."""
    if scheme in AGE_SCHEMES:
        return AGE_SCHEMES[scheme]
    if scheme != "custom":
        raise ConfigError(f"unknown age scheme {scheme!r}; choose one of {', '.join(AGE_MODES)}")
    if not edges:
        raise ConfigError("custom age bins need at least one edge, e.g. 18,40,65")
    e = [int(v) for v in edges]
    if any(b <= a for a, b in zip(e, e[1:])) or e[0] <= 0:
        raise ConfigError(f"custom age edges must be positive and increasing: {edges}")
    return e, edge_labels([0, *e, math.inf])


def bin_ages(years: np.ndarray, scheme: str, edges: list[int] | None = None) -> np.ndarray:
    """Bin index of each age: bin i holds ages in ``[edges[i-1], edges[i])``."""
    e, _ = age_bins(scheme, edges)
    return np.digitize(np.asarray(years, dtype=float), e, right=False)


def age_groups(years, edges: Sequence[float] | None = None) -> pd.Categorical:
    """Ages binned into ``[edges[i], edges[i+1])`` (default: decades, :data:`AGE_DECADES`),
    labelled by :func:`edge_labels`. Ages outside the edges are missing."""
    e = [float(x) for x in (AGE_DECADES if edges is None else edges)]
    if len(e) < 2 or any(b <= a for a, b in zip(e, e[1:])):
        raise ConfigError(f"age-group edges must be at least two increasing numbers, "
                          f"got {list(edges) if edges is not None else e}")
    values = np.asarray(years, dtype=np.float64)
    return pd.Categorical(pd.cut(values, bins=e, right=False, labels=edge_labels(e)))


_RANGE = re.compile(r"^\s*(\d+)\s*-\s*(\d+)\s*$")
_OPEN = re.compile(r"^\s*(?:more than|over|>=?)\s*(\d+)\s*$"
                   r"|^\s*(\d+)\s*(?:\+|and over|or more)\s*$", re.IGNORECASE)


def age_bin_range(name: str) -> tuple[float, float] | None:
    """``(low, high)`` years of a bin name (high inclusive; ``inf`` for an open top bin):
    ``"20-29"`` → (20, 29), ``"more than 70"``/``"70+"`` → (70, inf); None if not a bin."""
    m = _RANGE.match(str(name))
    if m:
        return float(m[1]), float(m[2])
    m = _OPEN.match(str(name))
    if m:
        return float(m[1] or m[2]), math.inf
    return None


def bin_years(name: str) -> float | None:
    """A bin's representative age: :data:`AGE_BIN_YEARS`, else the midpoint of its range."""
    if name in AGE_BIN_YEARS:
        return AGE_BIN_YEARS[name]
    r = age_bin_range(name)
    if r is None:
        return None
    lo, hi = r
    return lo + 5.0 if math.isinf(hi) else (lo + hi) / 2.0


def years_to_bin(years: float, bins: Sequence[str]) -> str | None:
    """The bin of ``bins`` holding ``years`` (bins are ``"a-b"`` or open ``"more than a"``)."""
    for b in bins:
        r = age_bin_range(b)
        if r is not None and r[0] <= years < r[1] + 1:
            return b
    return None


def rebin(values: pd.Series, scheme: str, edges: list[int] | None = None) -> pd.Series | None:
    """Bin names (or years) of another binning as the names of ``scheme``, through each bin's
    representative age; None when a value is neither a bin nor a number."""
    years = pd.to_numeric(values.map(lambda v: bin_years(v) if isinstance(v, str) else v),
                          errors="coerce")
    if years[values.notna()].isna().any():
        return None
    names = age_bins(scheme, edges)[1]
    idx = bin_ages(years.to_numpy(dtype=float), scheme, edges)
    return pd.Series([names[i] if not np.isnan(y) else None for i, y in zip(idx, years)],
                     index=values.index, dtype=object)
