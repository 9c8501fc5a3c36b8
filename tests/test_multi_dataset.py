"""Training on several datasets at once (issue 12, deliverable 1): label spaces merged from the
declared mappings, masked losses, per-dataset seeded splits, the face box, the CLI and the
stored per-dataset results, on tiny fixtures written in the real formats."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from faceml.config import TrainConfig
from faceml.data import multi
from faceml.data.base import LabelSpec
from faceml.data.prepare import PrepOptions, channel_stats, labels_for, prepare
from faceml.errors import ConfigError, DataError
from fixtures_formats import (FAIRFACE_RACES, UTK_RACES, face_image, fairface_labels,
                              make_fairface, make_utkface, utk_codes)


@pytest.fixture
def two(tmp_path):
    utk = make_utkface(tmp_path / "utk", n=40)
    ff = make_fairface(tmp_path / "ff", n=42, n_val=14)
    return str(utk), str(ff)


def both(two, **kw) -> PrepOptions:
    utk, ff = two
    return PrepOptions(dataset="utkface,fairface", path={"utkface": utk, "fairface": ff},
                       size=16, **kw)


# --- options and run ids ----------------------------------------------------------------------
def test_one_dataset_keeps_its_run_id():
    # ids computed on main before several datasets existed
    cfg = {"data": {"dataset": "utkface", "path": "/data/utk", "size": 64, "color": "rgb"},
           "heads": ["gender", "race", "age"]}
    assert TrainConfig.from_dict(cfg).run_id() == "e99a3203181d"
    as_list = {**cfg, "data": {**cfg["data"], "dataset": ["utkface"],
                               "path": {"utkface": "/data/utk"}}}
    assert TrainConfig.from_dict(as_list).run_id() == "e99a3203181d"
    ff = {"data": {"dataset": "fairface", "size": 32, "color": "gray", "age": "fairface9"},
          "heads": ["age"]}
    assert TrainConfig.from_dict(ff).run_id() == "74b30c37d215"
    assert "framing" not in TrainConfig.from_dict(ff).canonical()["data"]


def test_several_datasets_are_named_in_order_and_framed_alike():
    o = PrepOptions(dataset=["utkface", "fairface"], path={"fairface": "/f", "utkface": "/u"})
    assert o.dataset == "utkface,fairface" and o.datasets == ["utkface", "fairface"]
    assert o.multi and o.framing == "face"
    assert o.part("fairface").path == "/f" and o.part("fairface").framing == "face"
    other = PrepOptions(dataset="fairface,utkface", path={"fairface": "/f", "utkface": "/u"})
    assert TrainConfig(data=o, heads=["gender"]).run_id() != \
        TrainConfig(data=other, heads=["gender"]).run_id()


def test_one_path_for_several_datasets_is_refused(two):
    o = PrepOptions(dataset="utkface,fairface", path=two[0])
    with pytest.raises(ConfigError, match="a path each"):
        o.validate()


# --- label spaces -----------------------------------------------------------------------------
def test_merged_labels_race_in_utkface_classes_age_in_years(two):
    labels = labels_for(both(two))
    assert labels["race"].classes == UTK_RACES
    assert labels["gender"].classes == ("Male", "Female")
    assert labels["age"].kind == "years"
    # either order gives the same race classes: FairFace's 7 do not take UTKFace's Asian/Others
    utk, ff = two
    rev = PrepOptions(dataset="fairface,utkface", path={"utkface": utk, "fairface": ff})
    assert labels_for(rev)["race"].classes == UTK_RACES


def test_mapping_both_ways():
    ff = {"race": LabelSpec("race", "categorical", tuple(FAIRFACE_RACES))}
    utk = {"race": LabelSpec("race", "categorical", UTK_RACES)}
    assert multi.merge_labels({"fairface": ff, "utkface": utk})["race"].classes == UTK_RACES
    # FairFace -> UTKFace: every class has one target
    frame = pd.DataFrame({"source": list("abcdefg"), "race": list(FAIRFACE_RACES),
                          "split": "train"})
    out = multi.common_frame("fairface", frame, ff, {"race": utk["race"]})
    assert out["race"].tolist() == ["White", "Black", "Others", "Asian", "Asian", "Indian",
                                    "Others"]
    assert out["race_fairface"].tolist() == list(FAIRFACE_RACES)  # the finer classes kept
    # UTKFace -> FairFace: Asian and Others have no single class
    from faceml.data.mapping import uncovered

    assert uncovered(UTK_RACES, "race", FAIRFACE_RACES) == ["Asian", "Others"]
    # neither way: every class without a mapping is named
    odd = LabelSpec("race", "categorical", ("White", "East Asian", "Martian"))
    with pytest.raises(ConfigError, match="utkface's 'Asian', 'Black', 'Indian', 'Others' "
                                          "into x's classes; nor x's 'Martian' into utkface"):
        multi.merge_labels({"utkface": utk, "x": {"race": odd}})


def test_age_bins_as_intervals_and_schemes():
    own = {"age": LabelSpec("age", "categorical", ("0-2", "20-29", "more than 70"))}
    merged = {"age": LabelSpec("age", "years")}
    frame = pd.DataFrame({"source": ["a", "b", "c"], "age": ["0-2", "20-29", "more than 70"],
                          "split": "train"})
    out = multi.common_frame("fairface", frame, own, merged)
    assert out["age_lo"].tolist() == [0, 20, 70]
    assert out["age_hi"].tolist() == [3, 30, multi.MAX_YEARS]
    assert out["age"].tolist() == [1.0, 24.5, 75.0]  # representative ages (stored predictions)
    assert out["age_bin"].tolist() == ["0-2", "20-29", "more than 70"]
    years = {"age": LabelSpec("age", "years")}
    assert multi.merge_labels({"u": years, "f": own}, "fairface9")["age"].classes[3] == "20-29"
    with pytest.raises(ConfigError, match="'20-29'.*span several 'decades' bins"):
        multi.merge_labels({"u": years, "f": own}, "decades")


def test_labels_that_cannot_be_reconciled_are_named(monkeypatch, tmp_path):
    from faceml.data import registry
    from faceml.data.synthetic import SyntheticAdapter

    class Odd(SyntheticAdapter):
        name = "odd"

        def label_specs(self):
            return {"expression": LabelSpec("expression", "categorical", ("grin", "frown"))}

    monkeypatch.setitem(registry._REGISTRY, "odd", Odd)
    cfg = TrainConfig(data=PrepOptions(dataset="synthetic,odd"), heads=["expression"])
    with pytest.raises(ConfigError) as e:
        cfg.validate()
    msg = str(e.value)
    assert "'expression' labels cannot be reconciled" in msg
    assert "'frown', 'grin'" in msg and "odd's" in msg and "synthetic's" in msg


# --- preparing --------------------------------------------------------------------------------
def test_split_per_dataset_deterministic_and_scaling_on_combined_train(two, tmp_path):
    from faceml.data.cache import ArrayCache

    opts = both(two)
    a = prepare(opts)
    b = prepare(both(two), cache=ArrayCache(tmp_path / "other-cache"))
    assert a.frame["split"].tolist() == b.frame["split"].tolist()
    assert a.cache_hit is False and b.cache_hit is False
    assert list(pd.unique(a.frame["dataset"])) == ["utkface", "fairface"]
    for d in opts.datasets:  # each dataset split on its own, as it would be alone
        alone = prepare(opts.part(d))
        mine = a.frame[a.frame["dataset"] == d]
        assert mine["source"].tolist() == alone.frame["source"].tolist()
        assert mine["split"].tolist() == alone.frame["split"].tolist()
        assert np.array_equal(a.x[mine.index], alone.x)
    ff = a.frame[a.frame["dataset"] == "fairface"]
    assert set(ff["split"]) == {"train", "val", "test"}
    assert (ff.loc[ff["source"].str.startswith("val/"), "split"] == "val").all()  # official
    # another data seed gives another split
    c = prepare(both(two, seed=3))
    assert c.frame["split"].tolist() != a.frame["split"].tolist()
    # scaling: the combined training split, both datasets in it
    train = a.split_index("train")
    assert set(a.frame["dataset"].iloc[train]) == {"utkface", "fairface"}
    assert a.scaling("zscore") == channel_stats(a.x[train])
    assert a.scaling("zscore") != channel_stats(a.x[train[a.frame["dataset"].iloc[train]
                                                       == "utkface"]])


def test_labels_after_merging_match_the_files(two):
    prep = prepare(both(two))
    f = prep.frame
    utk = f[f["dataset"] == "utkface"]
    i = utk.index[0]
    codes = utk_codes(int(utk.at[i, "source"].split("_")[3].split(".")[0][-9:]))
    assert utk.at[i, "age"] == codes[0] == utk.at[i, "age_lo"] == utk.at[i, "age_hi"]
    assert utk.at[i, "race"] == UTK_RACES[codes[2]]
    ff = f[f["dataset"] == "fairface"]
    j = ff.index[ff["source"] == "train/5.jpg"][0]
    age, gender, race = fairface_labels(4)
    assert ff.at[j, "race_fairface"] == race and ff.at[j, "gender"] == gender
    assert ff.at[j, "age_bin"] == age


def test_a_dataset_not_on_disk_is_named_and_nothing_trains(two, tmp_path, capsys):
    from faceml.cli import main
    from faceml.runs import RunStore

    utk, _ = two
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError, match="not on disk: fairface"):
        prepare(PrepOptions(dataset="utkface,fairface",
                            path={"utkface": utk, "fairface": str(missing)}))
    code = main(["train", "--dataset", "utkface,fairface", "--path",
                 f"utkface={utk},fairface={missing}", "--heads", "gender", "--epochs", "1"])
    assert code == 2
    assert "not on disk: fairface" in capsys.readouterr().err
    assert RunStore().list() == []


# --- masking ----------------------------------------------------------------------------------
def test_a_face_without_a_label_adds_nothing_to_that_heads_loss(two):
    """By hand on a tiny batch: UTKFace faces have no expression, synthetic ones no race."""
    import keras

    from faceml.training.engine import build_model, compile_model

    opts = PrepOptions(dataset="utkface,synthetic", path={"utkface": two[0]},
                       dataset_options={"synthetic": {"n": 40}}, size=16)
    prep = prepare(opts)
    cfg = TrainConfig(data=opts, heads=["race", "expression", "age"], epochs=1)
    heads = cfg.kind.heads(cfg, prep)
    keras.utils.set_random_seed(0)
    model = compile_model(build_model(cfg, prep, heads), cfg, heads, 1)
    idx = np.r_[np.flatnonzero(prep.frame["dataset"] == "utkface")[:3],
                np.flatnonzero(prep.frame["dataset"] == "synthetic")[:3]]
    x, y, sw = cfg.kind.targets(cfg, prep, heads, idx)
    assert sw["race"].tolist() == [1, 1, 1, 0, 0, 0]
    assert sw["expression"].tolist() == [0, 0, 0, 1, 1, 1]
    assert sw["age"].tolist() == [1] * 6

    def losses(y):
        r = model.evaluate(x, y, sample_weight=sw, batch_size=6, verbose=0, return_dict=True)
        return r["race_loss"], r["expression_loss"]

    base = losses(y)
    other = {k: v.copy() for k, v in y.items()}
    other["race"][3:] = 4  # the synthetic faces' placeholder race: changes nothing
    other["expression"][:3] = 2  # the UTKFace faces' placeholder expression: nothing
    assert losses(other) == pytest.approx(base, abs=1e-7)
    labelled = {k: v.copy() for k, v in y.items()}
    labelled["race"][0] = (labelled["race"][0] + 1) % 5  # a labelled face: it counts
    assert losses(labelled)[0] != pytest.approx(base[0], abs=1e-4)


def test_interval_loss_by_hand():
    from faceml.modeling.losses import IntervalLoss, interval_error

    y = np.array([[20, 30], [25, 25], [70, 120]], "float32")
    p = np.array([[35], [23], [50]], "float32")
    assert np.asarray(interval_error(y, p)).tolist() == [5, 2, 20]
    # inside the bin: zero; a face weighted 0 adds nothing (sum over the batch size)
    loss = IntervalLoss()
    w = np.array([1, 1, 0], "float32")
    assert float(loss(y, p, sample_weight=w)) == pytest.approx(7 / 3)
    p2 = p.copy()
    p2[2] = 1000
    assert float(loss(y, p2, sample_weight=w)) == pytest.approx(7 / 3)
    assert float(loss(y, np.array([[22], [25], [90]], "float32"))) == 0
    huber = IntervalLoss(delta=5.0)
    assert float(huber(y[:1], np.array([[32]], "float32"))) == pytest.approx(2.0)  # ½·2²
    assert float(huber(y[:1], np.array([[40]], "float32"))) == pytest.approx(37.5)  # 12.5+5·5


# --- the face box -----------------------------------------------------------------------------
def test_face_box_crops_the_centre():
    from faceml.data.imageio import face_crop, to_pixels

    img = face_image(3, size=100)
    assert face_crop(img, (1.0, 0.0)) is img
    crop = face_crop(img, (0.5, 0.0))
    assert crop.size == (50, 50)
    assert np.array_equal(np.asarray(crop), np.asarray(img)[25:75, 25:75])
    assert np.array_equal(to_pixels(img, 50, "rgb", (0.5, 0.0)), np.asarray(img)[25:75, 25:75])
    down = face_crop(img, (0.5, 0.1))  # moved down a tenth of its side
    assert np.array_equal(np.asarray(down), np.asarray(img)[30:80, 25:75])


def test_several_datasets_read_each_in_its_face_box(two):
    from faceml.data import get

    assert get("utkface").face_box == (1.0, 0.0)
    side = get("fairface").face_box[0]
    assert 0.8 < side < 1.0
    prep = prepare(both(two))
    alone = prepare(PrepOptions(dataset="fairface", path=two[1], size=16))  # native framing
    ff = prep.frame.index[prep.frame["dataset"] == "fairface"]
    assert not np.array_equal(prep.x[ff], alone.x)
    # --framing face on one dataset reads it as the mixed run does; native on several as alone
    boxed = prepare(PrepOptions(dataset="fairface", path=two[1], size=16, framing="face"))
    assert np.array_equal(prep.x[ff], boxed.x)
    raw = prepare(both(two, framing="native"))
    assert np.array_equal(raw.x[raw.frame.index[raw.frame["dataset"] == "fairface"]], alone.x)


# --- the CLI and stored results ---------------------------------------------------------------
def test_cli_trains_two_datasets_and_stores_results_per_dataset(two, capsys):
    from faceml.cli import main
    from faceml.evaluation.interpretation import Interpretation
    from faceml.evaluation.predictions import dataset_rows, frame_datasets
    from faceml.evaluation.stored import stored_predictions
    from faceml.flags import train_command
    from faceml.runs import RunStore

    utk, ff = two
    code = main(["train", "--dataset", "utkface,fairface", "--path",
                 f"utkface={utk},fairface={ff}", "--heads", "gender,race,age", "--epochs", "2",
                 "--size", "16", "--batch-size", "16", "--json"])
    out = capsys.readouterr().out
    assert code == 0, out
    res = json.loads(out)
    assert res["status"] == "done"
    run = RunStore().get(res["run_id"])
    m = run.metrics()
    assert m["val"]["dataset"] == "utkface,fairface"
    for d in ("utkface", "fairface"):
        for split in ("val", "test"):
            s = m["by_dataset"][d][split]
            assert s["dataset"] == d and s["split"] == split
            assert set(s["heads"]) == {"gender", "race", "age"}
    hist = run.history()
    assert {"age_interval_mae", "val_age_interval_mae"} <= set(hist.columns)
    frame = stored_predictions(run)
    assert frame_datasets(frame) == ["utkface", "fairface"]
    val = frame[frame["split"] == "val"]
    sub = dataset_rows(val, "fairface")
    assert sub.attrs["dataset"] == "fairface"
    again = Interpretation.from_frame(sub, run.heads(), split="val").summary()
    assert again["n"] == m["by_dataset"]["fairface"]["val"]["n"]
    assert again["heads"]["race"] == pytest.approx(m["by_dataset"]["fairface"]["val"]["heads"]
                                                   ["race"])
    # the model card's train command reproduces the run
    cmd = train_command(run.config)
    assert f"--path fairface={ff},utkface={utk}" in cmd  # sorted in the canonical config
    assert main(cmd.split()[3:] + ["--json"]) == 0
    assert json.loads(capsys.readouterr().out)["run_id"] == run.id
    # the compiled checkpoint (its interval loss) loads with safe_mode for a resume
    from faceml.modeling.modelio import load_model

    model = load_model(run.checkpoint("last"), compile=True)
    assert type(model.loss["age"]).__name__ == "IntervalLoss"

    # Evaluate shows one dataset at a time, each number named by it
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    page = str(Path(__file__).resolve().parents[1] / "app_pages" / "evaluate.py")
    at = AppTest.from_file(page, default_timeout=120)
    at.query_params["run"] = run.id
    at.run()
    assert not at.exception and not at.error
    assert at.radio(key="ev_dataset").options == ["utkface", "fairface"]
    at.radio(key="ev_split").set_value("val").run()
    at.radio(key="ev_dataset").set_value("fairface").run()
    assert not at.exception and not at.error
    n = m["by_dataset"]["fairface"]["val"]["n"]
    assert any(f"**fairface**, **val** split, {n} faces" in i.value for i in at.info)

    # the report pools the datasets, then gives each one's own numbers (the stored ones)
    out = Path(two[0]).parent / "report.md"
    assert main(["evaluate", run.id, "--split", "val", "--report", str(out)]) == 0
    capsys.readouterr()
    text = out.read_text()
    assert "## Each dataset on its own" in text
    part = text.split("## Each dataset on its own", 1)[1].split("\n## ", 1)[0]
    rows = [[c.strip() for c in line.split("|")[1:-1]] for line in part.splitlines()
            if line.startswith("| ") and not line.startswith("| dataset")]
    got = {(r[0], r[1]): r for r in rows}
    assert {d for d, _ in got} == {"utkface", "fairface"}
    for d in ("utkface", "fairface"):
        want = m["by_dataset"][d]["val"]["heads"]
        assert float(got[(d, "gender")][3]) == pytest.approx(want["gender"]["accuracy"],
                                                              abs=6e-4)


def test_train_page_offers_several_datasets(two):
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    utk, ff = two
    page = str(Path(__file__).resolve().parents[1] / "app_pages" / "train.py")
    at = AppTest.from_file(page, default_timeout=120)
    at.session_state["dataset"] = "utkface"
    at.session_state["also_datasets"] = ["fairface"]
    at.session_state["path_utkface"] = utk
    at.session_state["path_fairface"] = ff
    at.run()
    assert not at.exception and not at.error
    assert at.multiselect(key="also_datasets").value == ["fairface"]
    assert [t.label for t in at.text_input][:2] == ["Path of utkface", "Path of fairface"]
    # the form filled from a several-dataset config shows it again
    from ui.runs import form_state

    cfg = TrainConfig(data=both(two), heads=["gender"])
    state = form_state(cfg)
    assert state["dataset"] == "utkface" and state["also_datasets"] == ["fairface"]
    assert state["path_utkface"] == utk and state["path_fairface"] == ff
