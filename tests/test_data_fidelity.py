"""The data side of the course notebooks (issue #11): age bins as the UTKFace-CSV notebook's
code makes them, FairFace labels a spreadsheet turned into dates read back, min-max and /255
scaling fitted on train only and carried in the model, split fractions and the official
held-out split as validation, and a preset's own input size and colour."""

from __future__ import annotations

import csv
import json
import shlex
from pathlib import Path

import numpy as np
import pytest
from sklearn.preprocessing import MinMaxScaler

from conftest import SHARED
from faceml import flags
from faceml.cli import build_parser, main
from faceml.cli.train import train_config
from faceml.config import TrainConfig
from faceml.data import get as get_adapter
from faceml.data.ages import (age_bins, bin_ages, rebin, spreadsheet_bin, unmangle_bins,
                              years_to_bin)
from faceml.data.mapping import FAIRFACE_AGE_BINS
from faceml.data.prepare import DEFAULT_SPLIT, OFFICIAL_SPLIT, PrepOptions, prepare
from faceml.errors import ConfigError, DataError

HAND_AGES = [0, 1, 10, 11, 20, 21, 40, 41, 60, 61, 90, 91, 120]


# --- 1. age bins, by hand -----------------------------------------------------------------------
def test_life6_bins_are_the_notebooks_pd_cut_checked_by_hand():
    names = age_bins("life6")[1]
    got = [names[i] for i in bin_ages(np.array(HAND_AGES, dtype=float), "life6")]
    assert got == ["1-10", "1-10", "1-10", "11-20", "11-20", "21-40", "21-40", "41-60",
                   "41-60", "61-90", "61-90", "91+", "91+"]


def test_decades_are_right_closed_checked_by_hand():
    names = age_bins("decades")[1]
    got = [names[i] for i in bin_ages(np.array(HAND_AGES, dtype=float), "decades")]
    assert got == ["1-10", "1-10", "1-10", "11-20", "11-20", "21-30", "31-40", "41-50",
                   "51-60", "61-70", "81-90", "91+", "91+"]


def test_fairface9_keeps_fairfaces_own_bins():
    names = age_bins("fairface9")[1]
    got = [names[i] for i in bin_ages(np.array([0, 2, 3, 9, 10, 19, 20, 69, 70, 90.0]),
                                      "fairface9")]
    assert got == ["0-2", "0-2", "3-9", "3-9", "10-19", "10-19", "20-29", "60-69",
                   "more than 70", "more than 70"]


@pytest.mark.parametrize("scheme", ["decades", "life6", "fairface9"])
def test_bin_names_read_back_as_the_years_they_hold(scheme):
    """years_to_bin (bin names parsed) agrees with bin_ages for every whole age 1-120."""
    names = age_bins(scheme)[1]
    ages = np.arange(1, 121, dtype=float)
    assert [years_to_bin(a, names) for a in ages] == \
        [names[i] for i in bin_ages(ages, scheme)]


def test_rebin_fairface_bins_into_life_stages():
    import pandas as pd

    out = rebin(pd.Series(["0-2", "3-9", "10-19", "20-29", "more than 70"]), "life6")
    assert list(out) == ["1-10", "1-10", "11-20", "21-40", "61-90"]


# --- 2. spreadsheet dates back to FairFace bins -------------------------------------------------
@pytest.mark.parametrize("value,expected", [
    ("03-Sep", "3-9"), ("3-Sep", "3-9"), ("Sep-03", "3-9"), ("9-Mar", "3-9"), ("Mar-09", "3-9"),
    ("2024-09-03", "3-9"), ("9/3/2024", "3-9"), ("03/09/2024", "3-9"),
    ("Oct-19", "10-19"), ("19-Oct", "10-19"), ("October 2019", "10-19"),
    ("2019-10-01", "10-19"), ("10/1/2019", "10-19"), ("2019-10-01 00:00:00", "10-19"),
    ("Feb-00", "0-2"),
    ("43719", None), ("Sep", None), ("child", None), ("29-20", None), ("", None),
])
def test_spreadsheet_dates_map_back_to_their_bin(value, expected):
    assert spreadsheet_bin(value, FAIRFACE_AGE_BINS) == expected


def _mangle(root: Path, forms: dict[str, str], extra: list[str] = ()) -> dict[str, int]:
    """Rewrite fairface_label_train.csv as a spreadsheet would save it (``forms``: bin ->
    date text), the first rows' ages replaced by ``extra``; returns the count of each form."""
    path = root / "fairface_label_train.csv"
    rows = list(csv.reader(path.open()))
    counts: dict[str, int] = {}
    for i, r in enumerate(rows[1:]):
        if i < len(extra):
            r[1] = extra[i]
        elif r[1] in forms:
            r[1] = forms[r[1]]
            counts[r[1]] = counts.get(r[1], 0) + 1
    with path.open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    return counts


def test_fairface_scan_reads_spreadsheet_bins_back_and_reports_the_rest(tmp_path):
    from fixtures_formats import make_fairface

    root = make_fairface(tmp_path / "ff", n=40, n_val=9)
    counts = _mangle(root, {"3-9": "03-Sep", "10-19": "Oct-19"}, extra=["43719", "Sep"])
    assert counts == {"03-Sep": 4, "Oct-19": 5}
    scan = get_adapter("fairface").scan(root)
    assert scan.notes == ["mapped 9 spreadsheet dates back to age bins "
                          "(Oct-19 → 10-19: 5, 03-Sep → 3-9: 4)"]
    assert set(scan.frame["age"]) <= set(FAIRFACE_AGE_BINS)
    # the two values that are no bin are reported with their value, not dropped silently
    assert sorted((b.source, b.reason) for b in scan.bad) == [
        ("train/1.jpg", "unknown age '43719'"), ("train/2.jpg", "unknown age 'Sep'")]
    assert len(scan.frame) == 40 + 9 - 2
    # the CLI and prepare() carry the note
    prep = prepare(PrepOptions(dataset="fairface", path=str(root), size=16))
    assert prep.notes == scan.notes
    assert main(["prepare", "fairface", "--path", str(root), "--size", "16", "--json"]) == 0


def test_cli_prepare_prints_the_note(tmp_path, capsys):
    from fixtures_formats import make_fairface

    root = make_fairface(tmp_path / "ff", n=20, n_val=3)
    _mangle(root, {"3-9": "Sep-03"})
    assert main(["prepare", "fairface", "--path", str(root), "--size", "16"]) == 0
    out = capsys.readouterr().out
    assert "mapped 3 spreadsheet dates back to age bins (Sep-03 → 3-9: 3)" in out
    assert main(["prepare", "fairface", "--path", str(root), "--size", "16", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["notes"] == [
        "mapped 3 spreadsheet dates back to age bins (Sep-03 → 3-9: 3)"]


def test_real_fairface_loses_no_face_for_its_age():
    root = SHARED / "fairface"
    if not (root / "fairface_label_train.csv").is_file():
        pytest.skip("../shared/data/fairface is absent")
    import pandas as pd

    raw = pd.read_csv(root / "fairface_label_train.csv", dtype=str, keep_default_na=False)
    scan = get_adapter("fairface").scan(root)
    assert not [b for b in scan.bad if "age" in b.reason]
    assert len(scan.frame) + len(scan.bad) == len(raw)
    strange = raw.loc[~raw["age"].isin(FAIRFACE_AGE_BINS), "age"]
    _, mapped = unmangle_bins(raw["age"], FAIRFACE_AGE_BINS)
    assert sum(mapped.values()) == len(strange) > 0
    # every child and teenager is there: the file's 03-Sep / Oct-19 rows (measured: 4,867 and
    # 4,314 of 40,000) are 3-9 / 10-19 faces
    got = scan.frame["age"].value_counts()
    for (value, b), n in mapped.items():
        assert got[b] >= n
    assert scan.notes and scan.notes[0].startswith(f"mapped {len(strange):,} spreadsheet")


# --- 3. scaling modes fitted on train only, carried in the model --------------------------------
SYN = dict(dataset="synthetic", dataset_options={"n": 240}, size=16, color="gray")


def _poisoned_others(prep):
    others = np.concatenate([prep.split_index("val"), prep.split_index("test")])
    prep.x[others] = 255  # val/test pixels never reach a statistic
    prep.x[others[:1]] = 0
    return prep


def test_minmax_statistics_are_sklearns_on_the_train_split_only():
    prep = prepare(PrepOptions(**SYN))
    train = prep.x[prep.split_index("train")]
    lo, rng = prep.scaling("minmax")
    assert lo.shape == rng.shape == (16, 16, 1)
    sk = MinMaxScaler().fit(train.reshape(len(train), -1).astype("float64"))
    np.testing.assert_allclose(lo.ravel(), sk.data_min_)
    np.testing.assert_allclose(1.0 / rng.ravel(), sk.scale_)  # constant pixels: scale 1
    _poisoned_others(prep)
    lo2, rng2 = prep.scaling("minmax")
    np.testing.assert_array_equal(lo, lo2)
    np.testing.assert_array_equal(rng, rng2)
    # and they are not the statistics of every split
    everything = MinMaxScaler().fit(prep.x.reshape(len(prep.x), -1).astype("float64"))
    assert not np.allclose(lo.ravel(), everything.data_min_)


def test_a_constant_pixel_gets_scale_one_as_in_sklearn():
    from faceml.data.prepare import pixel_minmax

    x = np.random.default_rng(0).integers(0, 256, (20, 8, 8, 1), dtype=np.uint8)
    x[:, 0, 0, 0] = 7
    lo, rng = pixel_minmax(x)
    sk = MinMaxScaler().fit(x.reshape(20, -1).astype("float64"))
    assert rng[0, 0, 0] == 1.0 and sk.scale_[0] == 1.0
    np.testing.assert_allclose(((x.reshape(20, -1) - lo.ravel()) / rng.ravel()),
                               sk.transform(x.reshape(20, -1)))


def test_unit_scaling_is_a_division_by_255():
    prep = prepare(PrepOptions(**SYN))
    assert prep.scaling("unit") == ([0.0], [255.0])
    with pytest.raises(ConfigError, match="unknown scaling 'robust'"):
        prep.scaling("robust")


@pytest.mark.parametrize("scaling", ["minmax", "unit"])
def test_the_model_carries_the_scaling_and_reloads_safely(scaling, tmp_path):
    import keras

    from faceml.modeling.layers import find_preprocessing
    from faceml.training.engine import build_model

    prep = prepare(PrepOptions(**SYN))
    cfg = TrainConfig(data=prep.options, arch="mlp", heads=["eyewear"], scaling=scaling)
    model = build_model(cfg, prep, prep.heads(["eyewear"]))
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    layer = find_preprocessing(loaded)
    assert layer.per_pixel == (scaling == "minmax")
    train = prep.x[prep.split_index("train")]
    out = keras.ops.convert_to_numpy(layer(train))
    assert out.min() >= 0.0 and out.max() <= 1.0
    if scaling == "minmax":
        sk = MinMaxScaler().fit(train.reshape(len(train), -1).astype("float64"))
        np.testing.assert_allclose(out.reshape(len(train), -1),
                                   sk.transform(train.reshape(len(train), -1)), atol=1e-5)
        assert out.max() == pytest.approx(1.0)
    np.testing.assert_allclose(loaded.predict(train[:4], verbose=0)["eyewear"],
                               model.predict(train[:4], verbose=0)["eyewear"], rtol=1e-5)


def test_an_old_per_channel_preprocessing_config_still_loads():
    from faceml.modeling.layers import FacePreprocessing

    old = {"name": "preprocessing", "trainable": True, "dtype": "float32", "image_size": 8,
           "color": "rgb", "mean": [1.0, 2.0, 3.0], "std": [2.0, 2.0, 0.0], "metadata": {}}
    layer = FacePreprocessing.from_config(old)
    assert not layer.per_pixel and layer.mean == [1.0, 2.0, 3.0] and layer.std[2] == 1e-6
    out = np.asarray(layer(np.full((1, 8, 8, 3), 5, dtype="uint8")))
    np.testing.assert_allclose(out[0, 0, 0, :2], [2.0, 1.5])
    with pytest.raises(ValueError, match="per channel or of shape"):
        FacePreprocessing(8, "gray", mean=np.zeros((4, 4, 1)))


def test_transfer_presets_and_the_vae_keep_their_own_scaling():
    for arch in ("vgg16", "vae"):
        cfg = TrainConfig(data=PrepOptions(**{**SYN, "size": 32, "color": "rgb"}), arch=arch,
                          heads=["eyewear"] if arch != "vae" else [], scaling="minmax")
        with pytest.raises(ConfigError, match="cannot apply"):
            cfg.validate()
    with pytest.raises(ConfigError, match="unknown scaling"):
        TrainConfig(data=PrepOptions(**SYN), arch="mlp", heads=["eyewear"],
                    scaling="max").validate()


# --- new fields leave old run ids alone ----------------------------------------------------------
def test_old_configurations_keep_their_run_ids():
    """Ids computed by the code before scaling/holdout/split=None existed."""
    assert TrainConfig(heads=["gender"]).run_id() == "68a22c8bd90c"
    old = TrainConfig(data=PrepOptions(dataset="fairface", size=32, color="gray", fraction=0.5,
                                       seed=3, split=(0.8, 0.1, 0.1)),
                      arch="mlp", heads=["gender", "race"], lr=0.003, epochs=7,
                      augmentation=["flip"])
    assert old.run_id() == "e122a51bd6f0"
    c = old.canonical()
    assert "scaling" not in c and "holdout" not in c["data"]
    assert TrainConfig.from_dict(c).run_id() == old.run_id()
    assert TrainConfig(heads=["gender"], scaling="minmax").run_id() != "68a22c8bd90c"
    assert TrainConfig(heads=["gender"], data=PrepOptions(holdout="official")).run_id() != \
        "68a22c8bd90c"


# --- 4. split fractions, the official held-out split ---------------------------------------------
def test_a_test_fraction_of_zero_makes_no_test_split_and_results_name_val():
    from faceml.runs import RunStore
    from faceml.training.engine import train_run

    cfg = TrainConfig(data=PrepOptions(**{**SYN, "split": (0.7, 0.3, 0.0)}), arch="small_cnn",
                      heads=["eyewear"], epochs=1, batch_size=32)
    prep = prepare(cfg.data)
    assert len(prep.split_index("test")) == 0
    assert len(prep.split_index("val")) == pytest.approx(0.3 * len(prep.frame), abs=2)
    run, _ = RunStore().create(cfg.run_id(), cfg.canonical())
    assert train_run(run)["state"] == "done"
    metrics = run.metrics()
    assert list(metrics) == ["val"]
    assert metrics["val"]["split"] == "val" and metrics["val"]["dataset"] == "synthetic"
    # the runs table shows its val results, named so; Evaluate offers val only and draws it
    row = run.summary()
    assert row["val_n"] == metrics["val"]["n"] > 0 and not any(k.startswith("test_") for k in row)
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file("../app_pages/evaluate.py", default_timeout=120)
    at.query_params["run"] = run.id
    at.run()
    assert not at.exception, at.exception
    assert [r.options for r in at.radio if r.key == "ev_split"] == [["val"]]
    assert any("**val** split" in i.value for i in at.info)


def test_official_fairface_val_is_the_validation_set_and_train_keeps_every_train_face(tmp_path):
    from fixtures_formats import make_fairface

    root = make_fairface(tmp_path / "ff", n=60, n_val=18)
    official = prepare(PrepOptions(dataset="fairface", path=str(root), size=16,
                                   holdout="official"))
    assert official.options.split == OFFICIAL_SPLIT
    assert official.frame["split"].value_counts().to_dict() == {"train": 60, "val": 18}
    assert official.frame.loc[official.split_index("val"), "source"].str.startswith("val/").all()
    carved = prepare(PrepOptions(dataset="fairface", path=str(root), size=16))
    assert carved.options.split == DEFAULT_SPLIT
    n = carved.frame["split"].value_counts().to_dict()
    assert n["val"] == 18 and n["train"] < 60 and n["train"] + n["test"] == 60
    # a test fraction asked for is carved out of the official train only
    with_test = prepare(PrepOptions(dataset="fairface", path=str(root), size=16,
                                    holdout="official", split=(0.8, 0.0, 0.2)))
    assert with_test.frame["split"].value_counts().to_dict() == {"train": 48, "val": 18,
                                                                 "test": 12}


def test_official_test_folder_is_the_validation_set(tmp_path):
    from fixtures_formats import make_folder

    root = make_folder(tmp_path / "g", n=6, with_splits=True, split_names=("train", "test"))
    prep = prepare(PrepOptions(dataset="folder", path=str(root), size=16, holdout="official"))
    assert prep.frame["split"].value_counts().to_dict() == {"train": 12, "val": 12}


def test_official_needs_an_official_split():
    with pytest.raises(DataError, match="no official held-out split"):
        prepare(PrepOptions(**SYN, holdout="official"))
    with pytest.raises(ConfigError, match="'carve' or 'official'"):
        PrepOptions(holdout="yes").validate()


# --- flags: --split, --val-split, --scaling, the preset's size and colour ------------------------
def _parse(*argv) -> TrainConfig:
    return train_config(build_parser(["train"]).parse_args(["train", *argv]))


def test_data_and_scaling_flags_reach_the_config_and_the_card():
    cfg = _parse("--heads", "gender", "--split", "0.7,0.3,0", "--scaling", "minmax")
    assert cfg.data.split == (0.7, 0.3, 0.0) and cfg.scaling == "minmax"
    line = flags.train_command(cfg.canonical())
    assert "--split 0.7,0.3,0 " in line and "--scaling minmax" in line
    back = train_config(build_parser(["train"]).parse_args(shlex.split(line)[3:]))
    assert back.run_id() == cfg.run_id()
    off = _parse("--dataset", "fairface", "--heads", "gender", "--val-split", "official")
    assert off.data.holdout == "official" and off.data.split == OFFICIAL_SPLIT
    line = flags.train_command(off.canonical())
    assert "--val-split official" in line and "--split" not in line
    assert "--split" not in flags.train_command(TrainConfig(heads=["gender"]).canonical())
    assert flags.DEFAULT_SPLIT == list(DEFAULT_SPLIT)
    assert flags.OFFICIAL_SPLIT == list(OFFICIAL_SPLIT)
    with pytest.raises(Exception, match="fractions like"):
        _parse("--split", "70/30")


def test_size_and_colour_default_to_the_presets_input():
    from faceml.modeling import architectures

    spec = architectures.get("small_cnn")
    assert (spec.default_size, spec.default_color) == (32, "gray")
    cfg = _parse("--arch", "small_cnn", "--heads", "eyewear")
    assert (cfg.data.size, cfg.data.color) == (32, "gray")
    line = flags.train_command(cfg.canonical())
    assert "--size 32 --color gray" in line
    assert train_config(build_parser(["train"]).parse_args(shlex.split(line)[3:])).run_id() \
        == cfg.run_id()
    over = _parse("--arch", "small_cnn", "--heads", "eyewear", "--size", "64")
    assert (over.data.size, over.data.color) == (64, "gray")
    vae = _parse("--arch", "vae")
    assert (vae.data.size, vae.data.color) == (64, "rgb")
    # prepare has no architecture: its defaults stay
    a = build_parser(["prepare"]).parse_args(["prepare", "synthetic"])
    assert (a.size, a.color) == (64, "rgb")


# --- 5. the Train page: size and colour follow the preset unless changed ------------------------
def test_train_page_follows_the_presets_input_until_the_visitor_changes_it():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file("../app_pages/train.py", default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    assert (at.selectbox(key="size").value, at.radio(key="color").value) == (64, "rgb")
    at.selectbox(key="arch").set_value("small_cnn").run()
    assert not at.exception, at.exception
    assert (at.selectbox(key="size").value, at.radio(key="color").value) == (32, "gray")
    assert any("32×32 gray: the preset's input" in c.value for c in at.caption)
    # the visitor's own size stays when the architecture changes again
    at.selectbox(key="size").set_value(48).run()
    at.selectbox(key="arch").set_value("mlp").run()
    assert (at.selectbox(key="size").value, at.radio(key="color").value) == (48, "gray")
    assert any("48×48 gray, set under Data (the preset's input is 32×32 gray)" in c.value
               for c in at.caption)
    # the split widgets make the data options
    at.number_input(key="test_pct").set_value(0).run()
    assert not at.exception, at.exception
