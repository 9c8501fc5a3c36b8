"""Preprocessing: age bins, splits, sampling, train-only statistics, the array cache."""

import os
import time

import numpy as np
import pandas as pd
import pytest

from faceml import data as datasets
from faceml.data.base import DatasetAdapter, LabelSpec, Scan
from faceml.errors import ConfigError, DataError
from faceml.data.ages import age_bins, bin_ages
from faceml.data.prepare import PrepOptions, channel_stats, prepare

SYN = dict(dataset="synthetic", dataset_options={"n": 600}, size=24)


# --- a tiny adapter whose pixels encode their row, to trace where statistics come from --------
@datasets.register
class _Toy(DatasetAdapter):
    name = "_toy"
    needs_path = False

    def label_specs(self):
        return {"kind": LabelSpec("kind", "categorical", ("a", "b", "c")),
                "age": LabelSpec("age", "years")}

    def scan(self, path=None, n=300, official=False, single=False):
        rng = np.random.default_rng(0)
        kinds = np.array(["a", "b", "c"])[np.arange(n) % 3]
        if single:
            kinds[-1] = "d"
        frame = pd.DataFrame({"source": [f"toy{i}" for i in range(n)], "kind": kinds,
                              "age": rng.integers(1, 90, n).astype(float)})
        if official:
            frame["split"] = np.where(np.arange(n) < n * 0.8, "train", "val")
        specs = self.label_specs()
        if single:
            specs["kind"] = LabelSpec("kind", "categorical", ("a", "b", "c", "d"))
        return Scan(self.name, None, frame, specs, options={"n": n, "official": official,
                                                            "single": single})

    def read(self, scan, rows, size, color, progress=None):
        c = 1 if color == "gray" else 3
        vals = np.array([int(s[3:]) % 200 for s in rows["source"]], dtype=np.uint8)
        return np.broadcast_to(vals[:, None, None, None], (len(rows), size, size, c)).copy(), []


def toy(**kw):
    return PrepOptions(dataset="_toy", dataset_options={k: kw.pop(k) for k in list(kw)
                                                        if k in ("n", "official", "single")},
                       size=8, **kw)


# --- age bins, checked by hand ---------------------------------------------------------------
@pytest.mark.parametrize("scheme,ages,expected", [
    # right-closed, as the notebook's pd.cut: (0,10] (10,20] … (more in test_data_fidelity.py)
    ("decades", [0, 9, 10, 10.5, 20, 89, 90, 91, 116], [0, 0, 0, 1, 1, 8, 8, 9, 9]),
    ("life6", [0, 2, 10, 11, 20, 21, 40, 41, 60, 61, 90, 99], [0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5]),
    ("fairface9", [0, 2, 3, 9, 10, 19, 20, 69, 70, 85], [0, 0, 1, 1, 2, 2, 3, 7, 8, 8]),
])
def test_age_bin_edges(scheme, ages, expected):
    assert bin_ages(np.array(ages), scheme).tolist() == expected
    edges, names = age_bins(scheme)
    assert len(names) == len(edges) + 1


def test_age_scheme_names():
    assert age_bins("decades")[1][0] == "1-10" and age_bins("decades")[1][-1] == "91+"
    assert len(age_bins("life6")[1]) == 6
    assert age_bins("fairface9")[1][-1] == "more than 70"


def test_custom_age_bins():
    edges, names = age_bins("custom", [18, 40])
    assert names == ["0-17", "18-39", "40+"]
    assert bin_ages([17, 18, 39, 40], "custom", [18, 40]).tolist() == [0, 1, 1, 2]
    with pytest.raises(ConfigError, match="increasing"):
        age_bins("custom", [40, 18])
    with pytest.raises(ConfigError, match="at least one edge"):
        age_bins("custom", [])


def test_binned_age_becomes_a_label():
    prep = prepare(PrepOptions(**SYN, age="life6"))
    assert prep.labels["age"].kind == "categorical"
    assert set(prep.frame["age"]) <= set(age_bins("life6")[1])
    # the years are kept for grouping, and agree with the bins
    idx = bin_ages(prep.frame["age_years"], "life6")
    assert (np.array(age_bins("life6")[1])[idx] == prep.frame["age"]).all()


# --- splits ----------------------------------------------------------------------------------
def test_split_is_stratified_and_seeded():
    a = prepare(toy(n=600))
    b = prepare(toy(n=600))
    c = prepare(toy(n=600, seed=1))
    assert (a.frame["split"] == b.frame["split"]).all()
    assert (a.frame["split"] != c.frame["split"]).any()
    counts = a.frame["split"].value_counts()
    assert counts["train"] == 420 and counts["val"] == 90 and counts["test"] == 90
    ct = pd.crosstab(a.frame["kind"], a.frame["split"])
    # stratified: each class has the same share in every split (600 = 3 x 200)
    assert (ct["val"] == 30).all() and (ct["test"] == 30).all()


def test_official_split_is_honoured():
    prep = prepare(toy(n=300, official=True))
    official_val = prep.frame["source"].isin([f"toy{i}" for i in range(240, 300)])
    assert (prep.frame.loc[official_val, "split"] == "val").all()
    assert not (prep.frame.loc[~official_val, "split"] == "val").any()
    # test is carved out of the official train part only
    assert (prep.frame["split"] == "test").sum() > 0


def test_fraction_is_a_stratified_sample():
    prep = prepare(toy(n=600, fraction=0.05))
    assert len(prep.frame) == 30
    assert prep.frame["kind"].value_counts().tolist() == [10, 10, 10]


def test_single_image_class_is_reported_not_fatal():
    prep = prepare(toy(n=90, single=True))
    assert any("'d'" in w and "only 1" in w for w in prep.warnings)
    assert len(prep.frame) == 90


def test_bad_options_are_clear():
    with pytest.raises(ConfigError, match="fraction"):
        prepare(toy(fraction=0))
    with pytest.raises(ConfigError, match="split"):
        prepare(PrepOptions(**SYN, split=(0.5, 0.1, 0.1)))
    with pytest.raises(DataError, match="colour"):
        prepare(PrepOptions(dataset="synthetic", color="cmyk"))
    with pytest.raises(DataError, match="unknown dataset"):
        prepare(PrepOptions(dataset="nope"))


# --- statistics from the training split only -------------------------------------------------
def test_scaling_uses_training_pixels_only():
    prep = prepare(toy(n=300))
    train = prep.split_index("train")
    mean, std = prep.scaling()
    assert mean == pytest.approx(channel_stats(prep.x[train])[0])
    all_mean = channel_stats(prep.x)[0]
    assert mean != pytest.approx(all_mean)
    # poisoning validation and test pixels changes nothing
    others = np.concatenate([prep.split_index("val"), prep.split_index("test")])
    prep.x[others] = 255
    assert prep.scaling()[0] == pytest.approx(mean)
    assert prep.scaling()[1] == pytest.approx(std)


def test_regression_target_statistics_use_training_split_only():
    prep = prepare(toy(n=300))
    head = prep.heads(["age"])[0]
    train_ages = prep.frame["age"].to_numpy()[prep.split_index("train")]
    assert head.target_mean == pytest.approx(train_ages.mean())
    others = np.concatenate([prep.split_index("val"), prep.split_index("test")])
    prep.frame.loc[others, "age"] = 1000.0
    assert prep.heads(["age"])[0].target_mean == pytest.approx(head.target_mean)


def test_model_carries_train_only_scaling():
    """The saved model's FacePreprocessing holds the training split's statistics."""
    from faceml.modeling.layers import find_preprocessing
    from faceml.config import TrainConfig
    from faceml.training.engine import build_model

    prep = prepare(toy(n=300))
    cfg = TrainConfig(data=prep.options, arch="mlp", heads=["kind"])
    heads = prep.heads(["kind"])
    layer = find_preprocessing(build_model(cfg, prep, heads))
    assert layer.mean == pytest.approx(channel_stats(prep.x[prep.split_index("train")])[0])
    assert layer.mean != pytest.approx(channel_stats(prep.x)[0])


def test_targets_and_class_weights():
    prep = prepare(toy(n=90))
    heads = prep.heads(["kind", "age"])
    idx = prep.split_index("train")
    t = prep.targets(heads, idx)
    assert t["kind"].dtype == np.int32 and set(t["kind"]) == {0, 1, 2}
    assert t["age"].dtype == np.float32
    sw = prep.sample_weights(heads, idx)
    assert sw["kind"].shape == (len(idx),)
    with pytest.raises(ConfigError, match="no label 'race'"):
        prep.heads(["race"])


# --- the array cache -------------------------------------------------------------------------
def test_second_load_hits_the_cache():
    a = prepare(PrepOptions(**SYN))
    b = prepare(PrepOptions(**SYN))
    assert not a.cache_hit and b.cache_hit
    assert np.array_equal(a.x, b.x)
    pd.testing.assert_frame_equal(a.frame, b.frame)
    c = prepare(PrepOptions(**{**SYN, "size": 20}))
    assert not c.cache_hit and c.x.shape[1] == 20


def _write_utk(folder, n=12):
    from PIL import Image

    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        arr = rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)
        Image.fromarray(arr).save(folder / f"{20 + i}_{i % 2}_{i % 5}_2017011{i:04d}.jpg.chip.jpg")


def test_changed_file_invalidates_the_cache(tmp_path):
    folder = tmp_path / "utk"
    _write_utk(folder)
    opts = PrepOptions(dataset="utkface", path=str(folder), size=16, stratify="gender")
    assert not prepare(opts).cache_hit
    assert prepare(opts).cache_hit
    f = sorted(folder.iterdir())[0]
    from PIL import Image

    Image.new("RGB", (40, 40), (255, 0, 0)).save(f, format="JPEG")
    os.utime(f, (time.time() + 5, time.time() + 5))
    again = prepare(opts)
    assert not again.cache_hit
    row = again.frame.index[again.frame["source"] == f.name][0]
    assert again.x[row][..., 0].mean() > 200  # the new red pixels, not the cached ones


def test_truncated_jpeg_is_skipped_and_the_rest_load(tmp_path):
    folder = tmp_path / "utk"
    _write_utk(folder)
    victim = sorted(folder.iterdir())[3]
    victim.write_bytes(victim.read_bytes()[:200])
    prep = prepare(PrepOptions(dataset="utkface", path=str(folder), size=16, stratify="gender"))
    assert len(prep.frame) == 11
    assert [b.source for b in prep.bad] == [victim.name]
    # and the cached entry remembers it
    again = prepare(PrepOptions(dataset="utkface", path=str(folder), size=16, stratify="gender"))
    assert again.cache_hit and [b.source for b in again.bad] == [victim.name]
