"""Label mappings between datasets (faceml.data.mapping)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from faceml.data.ages import age_bin_range, bin_years, years_to_bin
from faceml.data.mapping import (FAIRFACE_AGE_BINS, FAIRFACE_RACES, GENDERS, UTKFACE_RACES,
                                 gender_of, translate, uncovered)
from faceml.errors import DataError


@pytest.mark.parametrize("name,expected", [
    ("male", "Male"), ("MEN", "Male"), ("Man", "Male"), ("m", "Male"), (" Males ", "Male"),
    ("female", "Female"), ("Women", "Female"), ("woman", "Female"), ("F", "Female"),
    ("cat", None), ("mal", None), ("", None),
])
def test_gender_synonyms(name, expected):
    assert gender_of(name) == expected


def test_race_fairface_to_utkface_covers_all_seven():
    s = pd.Series(list(FAIRFACE_RACES), index=range(10, 17))
    out = translate(s, "race", UTKFACE_RACES)
    assert list(out.index) == list(range(10, 17))
    assert list(out) == ["White", "Black", "Others", "Asian", "Asian", "Indian", "Others"]


def test_race_utkface_to_fairface_names_every_ambiguous_class():
    s = pd.Series(["White", "Asian", "Black", "Others", "Asian", "Indian"])
    with pytest.raises(DataError) as e:
        translate(s, "race", FAIRFACE_RACES)
    msg = str(e.value)
    assert msg.startswith("race: no mapping for")
    assert "'Asian'" in msg and "'Others'" in msg and "FairFace's classes" in msg
    assert "'White'" not in msg.split("into")[0]
    assert uncovered(s, "race", FAIRFACE_RACES) == ["Asian", "Others"]
    # the unambiguous ones go through
    ok = translate(s[s.isin(["White", "Black", "Indian"])], "race", FAIRFACE_RACES)
    assert list(ok) == ["White", "Black", "Indian"]


def test_gender_names_into_canonical_classes_and_unknowns_named():
    out = translate(pd.Series(["men", "WOMEN", "Male", "f"]), "gender", GENDERS)
    assert list(out) == ["Male", "Female", "Male", "Female"]
    with pytest.raises(DataError, match=r"gender: no mapping for 'cat', 'dog' into"):
        translate(pd.Series(["male", "dog", "cat", "dog"]), "gender", GENDERS)


def test_identity_missing_values_and_custom_target_name():
    s = pd.Series(["Smiling", None, "Smiling"])
    out = translate(s, "Smiling", ["Smiling", "Neutral"])
    assert out.iloc[0] == "Smiling" and pd.isna(out.iloc[1])
    with pytest.raises(DataError, match=r"Smiling: no mapping for 'yes' into my model's"):
        translate(pd.Series(["yes"]), "Smiling", ["Smiling", "Neutral"],
                  target="my model's classes")


def test_age_bins_and_years():
    assert age_bin_range("20-29") == (20, 29)
    assert age_bin_range("more than 70") == (70, math.inf)
    assert age_bin_range("70+") == (70, math.inf)
    assert age_bin_range("adult") is None
    assert bin_years("0-2") == 1.0 and bin_years("more than 70") == 75.0
    assert bin_years("18-29") == 23.5
    assert years_to_bin(2.5, FAIRFACE_AGE_BINS) == "0-2"
    assert years_to_bin(70, FAIRFACE_AGE_BINS) == "more than 70"
    assert years_to_bin(116, FAIRFACE_AGE_BINS) == "more than 70"
    assert years_to_bin(-1, FAIRFACE_AGE_BINS) is None


def test_translate_age_years_to_fairface_bins_and_back():
    years = pd.Series([1.0, 9.0, 10.0, 35.0, 69.0, 90.0])
    bins = translate(years, "age", FAIRFACE_AGE_BINS)
    assert list(bins) == ["0-2", "3-9", "10-19", "30-39", "60-69", "more than 70"]
    back = translate(pd.Series(list(FAIRFACE_AGE_BINS)), "age", ())
    assert back.dtype == float
    assert list(back) == [1.0, 6.0, 14.5, 24.5, 34.5, 44.5, 54.5, 64.5, 75.0]
    # FairFace bins into coarser bins, via their representative years
    coarse = translate(pd.Series(["3-9", "20-29", "more than 70"]), "age",
                       ["0-19", "20-39", "40+"])
    assert list(coarse) == ["0-19", "20-39", "40+"]
    with pytest.raises(DataError, match=r"age: no mapping for 'adult', 'old'"):
        translate(pd.Series(["old", "20-29", "adult"]), "age", FAIRFACE_AGE_BINS)
