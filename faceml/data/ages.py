"""Ages and age bins: the one place years are binned, bins are named, and bin names are read
back as years.

- **Schemes** (:data:`AGE_SCHEMES`): named binnings a dataset's age can be trained as
  (``decades``, ``life6``, ``fairface9``) or ``custom`` edges; :func:`age_bins`,
  :func:`bin_ages`.
- **Groups** (:func:`age_groups`): ages binned by any edges (default decades) for per-group
  errors; the labels read ``"20-29"``/``"90+"`` (``[a, b)``, as FairFace's and custom bins).
- **Bin names → years** (:func:`age_bin_range`, :func:`bin_years`, :func:`years_to_bin`):
  FairFace's ``"3-9"``/``"more than 70"`` and the like, for mapping between datasets.
- **Spreadsheet dates → bins** (:func:`unmangle_bins`): a label CSV saved by a spreadsheet reads
  ``03-Sep`` for ``"3-9"`` and ``Oct-19`` for ``"10-19"``; these are read back.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import numpy as np
import pandas as pd

from faceml.errors import ConfigError

# Each scheme: the edges (in years) between its bins, and the bins' names. The schemes in
# RIGHT_CLOSED bin as pandas' ``pd.cut`` does by default, ``(a, b]``: an age on an edge belongs to
# the bin below it (10 -> "1-10", 11 -> "11-20"); the others bin ``[a, b)`` (FairFace's own bins,
# custom edges).
AGE_SCHEMES: dict[str, tuple[list[int], list[str]]] = {
    # the UTKFace-CSV notebook's decades: pd.cut with bins 0, 10, 20, … (right-closed)
    "decades": ([10, 20, 30, 40, 50, 60, 70, 80, 90],
                ["1-10", "11-20", "21-30", "31-40", "41-50", "51-60", "61-70", "71-80", "81-90",
                 "91+"]),
    # the six life stages of the UTKFace-CSV notebook as its CODE bins them: pd.cut with bins
    # (0,10] (10,20] (20,40] (40,60] (60,90] (90,…]. Its text says 1-10, 11-20, 21-39, 40-59,
    # 60-89, 90-120, which disagrees at 40, 60 and 90; the code decided its results, so it wins.
    "life6": ([10, 20, 40, 60, 90],
              ["1-10", "11-20", "21-40", "41-60", "61-90", "91+"]),
    # FairFace's nine bins
    "fairface9": ([3, 10, 20, 30, 40, 50, 60, 70],
                  ["0-2", "3-9", "10-19", "20-29", "30-39", "40-49", "50-59", "60-69",
                   "more than 70"]),
}
RIGHT_CLOSED = frozenset({"decades", "life6"})
"""Schemes whose bins are ``(a, b]`` (the notebook's ``pd.cut``); an age of 0 or less, which
UTKFace does not have (its youngest faces are 1), joins the first bin."""
SCHEME_DESCRIPTIONS: dict[str, str] = {
    "decades": "(0,10] (10,20] … (80,90] (90,…]: the UTKFace-CSV notebook's pd.cut",
    "life6": "(0,10] (10,20] (20,40] (40,60] (60,90] (90,…]: the UTKFace-CSV notebook's six life "
             "stages as its code bins them (its text says 21-39, 40-59, 60-89, 90-120)",
    "fairface9": "FairFace's nine bins 0-2, 3-9, 10-19, … 60-69, more than 70",
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
    """Bin index of each age: bin i holds ages in ``(edges[i-1], edges[i]]`` for a
    :data:`RIGHT_CLOSED` scheme, else in ``[edges[i-1], edges[i])``."""
    e, _ = age_bins(scheme, edges)
    return np.digitize(np.asarray(years, dtype=float), e, right=scheme in RIGHT_CLOSED)


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


# --- bin names a spreadsheet turned into dates ---------------------------------------------------
_MONTHS = {m: i for i, m in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1)}
_TOKEN = re.compile(r"[A-Za-z]+|\d+")
_TIME = re.compile(r"[ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?$")


def _date_numbers(value: str) -> list[int] | None:
    """The numbers of a date-like text, a month's name read as its number (``"03-Sep"`` →
    [3, 9], ``"2019-10-01 00:00:00"`` → [19, 10, 1]; a four-digit year counts as its last two
    digits, as a spreadsheet shows ``Oct-19``); None when a word is not a month."""
    numbers = []
    for tok in _TOKEN.findall(_TIME.sub("", str(value).strip())):
        if tok.isdigit():
            n = int(tok)
            numbers.append(n % 100 if len(tok) == 4 else n)
        elif tok[:3].lower() in _MONTHS and (len(tok) == 3 or tok.lower() in _MONTH_NAMES):
            numbers.append(_MONTHS[tok[:3].lower()])
        else:
            return None
    return numbers


_MONTH_NAMES = {"january", "february", "march", "april", "may", "june", "july", "august",
                "september", "sept", "october", "november", "december"}


def spreadsheet_bin(value: str, bins: Sequence[str]) -> str | None:
    """The bin of ``bins`` that a spreadsheet turned into the date ``value``, or None.

    A spreadsheet reads ``"3-9"`` as a day and a month (``03-Sep``, ``9-Mar``, ``2024-09-03``)
    and ``"10-19"`` as a month and a year (``Oct-19``, ``2019-10-01``). So: the numbers of the
    date (months by name or number, a year by its last two digits) are taken two at a time, in
    any order, and matched against each ``"a-b"`` bin one of whose numbers can be a month;
    exactly one bin must match (two bins matching, or none, gives None). A value with a word
    that is not a month never matches."""
    numbers = _date_numbers(value)
    if numbers is None or not 2 <= len(numbers) <= 3:
        return None
    pairs = {frozenset((a, b)) for i, a in enumerate(numbers) for b in numbers[i + 1:] if a != b}
    found = set()
    for b in bins:
        r = age_bin_range(b)
        if r is None or math.isinf(r[1]):
            continue
        pair = frozenset((int(r[0]), int(r[1])))
        if pair in pairs and any(1 <= n <= 12 for n in pair):  # one of them is a month
            found.add(b)
    return found.pop() if len(found) == 1 else None


def unmangle_bins(values: pd.Series, bins: Sequence[str]
                  ) -> tuple[pd.Series, dict[tuple[str, str], int]]:
    """``values`` with every spreadsheet date of a bin (:func:`spreadsheet_bin`) read back as
    the bin, and how many of each were: ``{("03-Sep", "3-9"): 4867, …}``. Values already in
    ``bins`` and values that match no bin are left as they are (the caller reports those)."""
    known = set(bins)
    out = values.copy()
    mapped: dict[tuple[str, str], int] = {}
    strange = values[~values.isin(known)]
    for v, n in strange.value_counts(sort=False).items():
        b = spreadsheet_bin(v, bins)
        if b is not None:
            out[values == v] = b
            mapped[(str(v), b)] = int(n)
    return out, mapped


def unmangled_note(mapped: dict[tuple[str, str], int]) -> str | None:
    """One sentence for :func:`unmangle_bins`'s counts, or None when nothing was mapped."""
    if not mapped:
        return None
    total = sum(mapped.values())
    parts = ", ".join(f"{v} → {b}: {n:,}" for (v, b), n in
                      sorted(mapped.items(), key=lambda kv: (-kv[1], kv[0])))
    return (f"mapped {total:,} spreadsheet date{'s' if total != 1 else ''} back to age bins "
            f"({parts})")
