"""Bundling a run trained on several datasets at once (issue 12, deliverable 3): a card with a
section per dataset whose numbers are `python -m faceml evaluate`'s, per-group tables, --test-path
per dataset, and the bundled file on the Predict page (age intervals from exact ages only)."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil

import numpy as np
import pandas as pd
import pytest

from faceml.errors import FaceMLError
from faceml.serving.bundle import bundle
from fixtures_formats import make_fairface, make_utkface

_MADE: dict = {}


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """Two tiny datasets on disk, a UTKFace copy shrunk to 16 px, and two one-epoch runs on
    both datasets: ``plain`` (the originals, bundled here as ``duo``) and ``small`` (trained on
    the shrunk copy)."""
    if _MADE:
        return _MADE
    from faceml.config import TrainConfig
    from faceml.data.prepare import PrepOptions
    from faceml.data.shrink import shrink
    from faceml.runs import RunStore
    from faceml.training.engine import train_run

    base = tmp_path_factory.mktemp("multi_bundle")
    old = {k: os.environ.get(k) for k in ("FACEML_RUNS_DIR", "FACEML_CACHE_DIR")}
    os.environ["FACEML_RUNS_DIR"] = str(base / "runs")
    os.environ["FACEML_CACHE_DIR"] = str(base / "cache")
    try:
        utk = make_utkface(base / "utk", 80, size=40)
        ff = make_fairface(base / "ff", 90, n_val=30)
        shrink(utk, base / "utk16", 16, quality=90)
        runs = {}
        for key, path in (("plain", utk), ("small", base / "utk16")):
            cfg = TrainConfig(data=PrepOptions(dataset="utkface,fairface", size=16,
                                               path={"utkface": str(path), "fairface": str(ff)}),
                              arch="small_cnn", heads=["gender", "race", "age"],
                              head_weights={"age": 0.05}, epochs=1, batch_size=16)
            run, _ = RunStore().create(cfg.run_id(), cfg.canonical())
            assert train_run(run)["state"] == "done"
            runs[key] = run
        mpath, card = bundle(runs["plain"], "duo", base / "models")
    finally:
        for k, v in old.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    _MADE.update(base=base, utk=utk, ff=ff, runs=runs, model=mpath, card=card.read_text())
    return _MADE


@pytest.fixture
def store(made, monkeypatch):
    monkeypatch.setenv("FACEML_RUNS_DIR", str(made["base"] / "runs"))
    monkeypatch.setenv("FACEML_CACHE_DIR", str(made["base"] / "cache"))
    return made


def section(card: str, start: str, end: str = "\n#") -> str:
    assert start in card, start
    rest = card.split(start, 1)[1]
    return rest.split(end, 1)[0]


def table(text: str) -> list[list[str]]:
    """The rows (cells) of the first Markdown table in ``text``, header first."""
    rows = [[c.strip() for c in line.strip().strip("|").split("|")]
            for line in text.splitlines() if line.startswith("|")]
    first = next(i for i, r in enumerate(rows) if all(set(c) <= {"-"} for c in r)) - 1
    out = [rows[first]]
    for r in rows[first + 2:]:
        if len(r) != len(out[0]):
            break
        out.append(r)
    return out


def evaluate_json(capsys, *argv) -> dict:
    from faceml.cli import main

    assert main(["evaluate", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def shown(v) -> str:
    return "—" if v is None else f"{v:.3f}"


def test_the_card_has_a_section_per_dataset_and_the_safe_file_answers(store):
    import keras

    from faceml.data.prepare import PrepOptions, prepare
    from faceml.flags import train_command

    card, run = store["card"], store["runs"]["plain"]
    assert train_command(run.config) in card
    assert f"python -m faceml bundle {run.id} --name duo\n" in card
    for part in ("## Data and split", "## How it was made", "## Size and speed",
                 "## Metrics on each dataset's own test split", "### utkface", "### fairface",
                 "## Limits and ethics"):
        assert part in card
    # each dataset: its path and faces per split, as the data gives them
    counts = {r[0]: r for r in table(section(card, "## Data and split"))[1:]}
    opts = PrepOptions.from_dict(run.config["data"])
    for d in ("utkface", "fairface"):
        split = prepare(opts.part(d)).frame["split"].value_counts()
        assert counts[d][1] == f"`{opts.part(d).path}`"
        assert [int(c) for c in counts[d][2:]] == [split["train"], split["val"], split["test"]]
    # the file: size and time per face, with how it was measured
    size = section(card, "## Size and speed")
    mb = store["model"].stat().st_size / 1e6
    assert f"{mb:.1f} MB (within the 10 MB limit)" in size
    assert re.search(r"CPU time per face: \d+\.\d ms median", size) and "batch 1" in size
    # race in the merged classes for FairFace, its ages as bins, said where the numbers are
    ff = section(card, "### fairface", "\n### ")
    assert "race | accuracy (5 merged classes)" in ff and "Latino_Hispanic → Others" in ff
    assert "MAE against bin midpoints (years)" in ff and "| age | inside the true bin |" in ff
    assert "inside the true bin" not in section(card, "### utkface", "\n### ")
    # the annotators' categories, said plainly, for both datasets
    ethics = " ".join(section(card, "## Limits and ethics", "\n## ").split())
    assert "Race and gender here are the categories of the datasets' annotators" in ethics
    assert "UTKFace's" in ethics and "FairFace's" in ethics
    # the bundled file loads with safe_mode=True and answers as the run's best model does
    model = keras.saving.load_model(store["model"], safe_mode=True, compile=False)
    x = np.random.default_rng(0).integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    got, want = model.predict(x, verbose=0), run.load_model("best").predict(x, verbose=0)
    for head in ("gender", "race", "age"):
        np.testing.assert_allclose(got[head], want[head], rtol=1e-5, atol=1e-5)
    # validation answers beside it: each face's dataset and age bin, no file names
    val = pd.read_csv(store["base"] / "models" / "duo.predictions.csv")
    assert list(val.columns) == ["split", "gender_true", "gender_pred", "race_true",
                                 "race_pred", "age_true", "age_pred", "dataset", "age_bin"]
    assert set(val["split"]) == {"val"} and set(val["dataset"]) == {"utkface", "fairface"}
    assert val.loc[val["dataset"] == "fairface", "age_bin"].notna().all()
    assert val.loc[val["dataset"] == "utkface", "age_bin"].isna().all()


def test_the_cards_numbers_are_evaluates_on_each_test_split(store, capsys):
    from faceml.evaluation.groups import wilson_interval

    card, run = store["card"], store["runs"]["plain"]
    by_run = evaluate_json(capsys, run.id)["by_dataset"]
    by_file = evaluate_json(capsys, "--model", str(store["model"]))["by_dataset"]
    assert set(by_run) == set(by_file) == {"utkface", "fairface"}
    preds = run.predictions()
    test = preds[preds["split"] == "test"]
    for d in ("utkface", "fairface"):
        text = section(card, f"### {d}", "\n### ")
        want = by_run[d]
        assert want["split"] == "test" and f"Split `test` of `{d}`, n = {want['n']} faces." in text
        rows = table(text)
        assert rows[0] == ["head", "accuracy", "balanced_accuracy", "f1_macro", "auc", "mae",
                           "rmse"]
        for head, *cells in rows[1:]:
            for metric, cell in zip(rows[0][1:], cells):
                v = want["heads"][head].get(metric)
                assert cell == shown(v), (d, head, metric)
                assert cell == shown(by_file[d]["heads"][head].get(metric))  # the bundled file
        # the intervals: the same values; Wilson recomputed from the stored answers
        iv = {(r[0], r[1]): r[2] for r in table(text.split("With 95 % intervals")[1])[1:]}
        mine = test[test["group_dataset"] == d]
        k = int((mine["gender_true"] == mine["gender_pred"]).sum())
        lo, hi = wilson_interval(k, len(mine))
        assert iv[("gender", "accuracy")] == f"{k / len(mine):.3f} ({lo:.3f}–{hi:.3f})"
        assert iv[("gender", "ROC AUC")].startswith(shown(want["heads"]["gender"]["auc"]))
        mae = "MAE (years)" if d == "utkface" else "MAE against bin midpoints (years)"
        assert iv[("age", mae)].startswith(shown(want["heads"]["age"]["mae"]))
        # per group: race × gender × age band, every test face in one row
        groups = table(section(text, "#### Per group"))
        assert groups[0][:4] == ["race", "gender", "age band", "n"]
        assert sum(int(r[3]) for r in groups[1:]) == want["n"]
        race = "group_race_fairface" if d == "fairface" else "group_race"
        r = groups[1]
        band = {"0-19": (0, 20), "20-39": (20, 40), "40-59": (40, 60), "60+": (60, 999)}[r[2]]
        cell = mine[(mine[race] == r[0]) & (mine["group_gender"] == r[1])
                    & mine["group_age"].between(band[0], band[1], inclusive="left")]
        assert int(r[3]) == len(cell)
        acc = (cell["race_true"] == cell["race_pred"]).mean()
        assert r[5].startswith(f"{acc:.3f}")
    # FairFace's own race classes group its faces; the share inside the true bin, by hand
    ff = section(card, "### fairface", "\n### ")
    assert "Latino_Hispanic" in section(ff, "#### Per group")
    mine = test[test["group_dataset"] == "fairface"]
    bins = {"0-2": (0, 3), "3-9": (3, 10), "more than 70": (70, 120)}
    inside = [bins[b] if b in bins else (int(b[:2]), int(b[:2]) + 10)
              for b in mine["group_age_bin"]]
    k = sum(lo <= p <= hi for (lo, hi), p in zip(inside, mine["age_pred"]))
    lo, hi = wilson_interval(k, len(mine))
    assert f"| age | inside the true bin | {k / len(mine):.3f} ({lo:.3f}–{hi:.3f}) |" in ff


def test_a_run_on_a_shrunk_copy_is_scored_per_dataset_on_the_originals(store, capsys):
    from faceml.data.prepare import PrepOptions
    from faceml.evaluation.evaluate import evaluate_model, interpret

    run, utk, ff = store["runs"]["small"], store["utk"], store["ff"]
    out = store["base"] / "models2"
    mpath, card = bundle(run, "small", out, test_path=f"utkface={utk}")
    text = card.read_text()
    small = PrepOptions.from_dict(run.config["data"]).part("utkface").path
    assert f"python -m faceml shrink --path {utk} --size 16 --color rgb --quality 90 --out " \
           f"{small}" in text
    assert f"python -m faceml bundle {run.id} --name small --test-path utkface={utk}" in text
    rows = {r[0]: r for r in table(section(text, "## Data and split"))[1:]}
    assert rows["utkface"][1:3] == [f"`{small}`", f"`{utk}`"]
    assert rows["fairface"][1:3] == [f"`{ff}`", f"`{ff}`"]  # read where it trained
    # the numbers: the bundled file on the originals (evaluate's function, several at once)
    opts = PrepOptions.from_dict(run.config["data"])
    frame = evaluate_model(mpath, PrepOptions.from_dict(
        {**opts.canonical(), "path": {"utkface": str(utk), "fairface": str(ff)}}), "test")
    parts = {d: p.summary() for d, p in interpret(frame).by_dataset().items()}
    # and UTKFace alone through the CLI (its face box is the whole chip, as alone)
    alone = evaluate_json(capsys, "--model", str(mpath), "--dataset", "utkface", "--path",
                          str(utk))
    assert alone["n"] == parts["utkface"]["n"]
    for d in ("utkface", "fairface"):
        got = {r[0]: r[1:] for r in table(section(text, f"### {d}", "\n### "))[1:]}
        for head, vals in parts[d]["heads"].items():
            assert got[head][0] == shown(vals.get("accuracy")) and \
                got[head][4] == shown(vals.get("mae"))
            if d == "utkface":
                assert got[head][0] == shown(alone["heads"][head].get("accuracy"))
                assert got[head][4] == shown(alone["heads"][head].get("mae"))
    stored = evaluate_json(capsys, run.id)["by_dataset"]["utkface"]["heads"]["age"]["mae"]
    assert parts["utkface"]["heads"]["age"]["mae"] != stored  # the originals, not the copy


def test_a_bad_test_path_is_one_clear_message(store, capsys, tmp_path):
    from faceml.cli import main

    run, utk = store["runs"]["plain"], store["utk"]
    out = tmp_path / "m"
    with pytest.raises(FaceMLError, match="names 'celeba', but run .* was trained on utkface, "
                                          "fairface"):
        bundle(run, "bad", out, test_path="celeba=/data/celeba")
    with pytest.raises(FaceMLError, match="several datasets .*utkface=FOLDER"):
        bundle(run, "bad", out, test_path=str(utk))
    with pytest.raises(FaceMLError, match="no such folder"):
        bundle(run, "bad", out, test_path={"utkface": str(tmp_path / "absent")})
    other = make_utkface(tmp_path / "other", 70, size=40)  # a folder that is not a copy
    with pytest.raises(FaceMLError, match=r"the val split of utkface read from .*other is not "
                                          r"run .*'s own val split of utkface \(\d+ faces "
                                          r"differ\): is it a copy of .*utk\?"):
        bundle(run, "bad", out, test_path={"utkface": str(other)})
    shutil.rmtree(other)
    for bad in ("celeba=/x", f"utkface={other}", str(utk)):
        assert main(["bundle", run.id, "--name", "bad", "--out", str(out), "--test-path",
                     bad]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and "Traceback" not in err
    assert not (out / "bad.keras").exists() and not (out / "bad.md").exists()


def test_the_bundled_model_on_predict_calibrates_age_on_exact_ages(store):
    from PIL import Image
    from skimage import data

    from faceml.serving.detect import FaceDetector
    from faceml.serving.predict import load_predictor, predict_faces

    val = pd.read_csv(store["base"] / "models" / "duo.predictions.csv")
    pred = load_predictor(store["model"])
    ref = pred.reference
    assert ref.binned == {"age": int((val["dataset"] == "fairface").sum())}
    exact = val[val["dataset"] == "utkface"]
    assert len(ref.residuals["age"][0]) == len(exact)
    np.testing.assert_allclose(np.sort(ref.residuals["age"][1]),
                               np.sort(exact["age_true"] - exact["age_pred"]))
    faces = predict_faces(Image.fromarray(data.astronaut()), pred, FaceDetector())
    age = faces[0].heads["age"]
    assert age.interval is not None and age.interval[0] <= age.years <= age.interval[1]
    assert "faces with an exact age only" in age.interval_note
    assert f"the {ref.binned['age']} whose age is a bin" in age.interval_note
    # rare-age warnings count a bin inside one decade in it, not "more than 70"
    assert sum(ref.counts["age"].values()) == len(exact) + int(
        ((val["dataset"] == "fairface") & (val["age_bin"] != "more than 70")).sum())


def test_the_predict_page_answers_with_the_bundled_model(store, monkeypatch):
    import gc
    import io

    from PIL import Image
    from skimage import data
    from streamlit.runtime.scriptrunner import script_runner
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("FACEML_MODELS_DIR", str(store["base"] / "models"))
    original = script_runner._clean_problem_modules
    try:
        at = AppTest.from_file("../app_pages/predict.py", default_timeout=60)
        at.run()
        assert not at.exception, at.exception
        assert at.selectbox(key="pr_model").value.endswith("duo")
        buf = io.BytesIO()
        Image.fromarray(data.astronaut()).save(buf, "PNG")
        at.file_uploader(key="pr_upload").set_value(("a.png", buf.getvalue(), "image/png")).run()
        assert not at.exception, at.exception
        assert not at.error, [e.value for e in at.error]
        assert [s.value for s in at.subheader] == ["Face 1"]
        assert "80 % interval" in " ".join(m.value for m in at.markdown)
        assert any("exact age only" in c.value for c in at.caption)
    finally:  # the page stops Streamlit's per-run cleaner and freezes the heap: given back
        script_runner._clean_problem_modules = original
        gc.unfreeze()


def _utk_only(store, **data):
    """A one-epoch run on the fixture's UTKFace alone, heads and input as the mixed run's."""
    from faceml.config import TrainConfig
    from faceml.data.prepare import PrepOptions
    from faceml.runs import RunStore
    from faceml.training.engine import train_run

    cfg = TrainConfig(data=PrepOptions(dataset="utkface", path=str(store["utk"]), size=16,
                                       **data),
                      arch="small_cnn", heads=["gender", "race", "age"],
                      head_weights={"age": 0.05}, epochs=1, batch_size=16)
    run, _ = RunStore().create(cfg.run_id(), cfg.canonical())
    assert train_run(run)["state"] == "done"
    return run


def test_a_bundled_file_joins_a_run_on_several_datasets_when_it_split_alike(store, capsys):
    """--with FILE.keras: a model bundled from a UTKFace-only run (itself a mirrored
    ensemble, as the shipped v1 is) joins the mixed run's average member by member; the card
    names the file, its run and the command; a file split otherwise is refused in one line."""
    from faceml.cli import main
    from faceml.modeling.modelio import load_model

    models = store["base"] / "models"
    utk = _utk_only(store)
    single, _ = bundle(utk, "single", models, mirror=True)  # an ensemble of one, mirrored
    run = store["runs"]["plain"]
    code = main(["bundle", run.id, "--with", str(single), "--mirror", "--name", "joined",
                 "--out", str(models)])
    out = capsys.readouterr().out
    assert code == 0, out
    x = np.random.default_rng(1).integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)
    got = load_model(models / "joined.keras").predict(x, verbose=0)
    parts = [m.predict(v, verbose=0) for m in (run.load_model("best"), utk.load_model("best"))
             for v in (x, x[:, :, ::-1])]  # each member on the face and its mirror, once
    for head in ("gender", "race", "age"):
        np.testing.assert_allclose(got[head], np.mean([p[head] for p in parts], axis=0),
                                   rtol=1e-4, atol=1e-4)
    card = (models / "joined.md").read_text()
    assert "the average of 2 models, each also shown the mirrored face" in card
    assert f"run `{utk.id}`" in card and "trained on utkface only" in card
    assert "its commands are in `single.md`" in card
    assert f"python -m faceml bundle {run.id} --with {single} --name joined --mirror" in card
    assert "### fairface" in card
    # one member of a file by its number: the same model here (the file holds one)
    code = main(["bundle", run.id, "--with", f"{single}#1", "--mirror", "--name", "joined1",
                 "--out", str(models)])
    assert code == 0, capsys.readouterr().out
    np.testing.assert_allclose(load_model(models / "joined1.keras").predict(x, verbose=0)["age"],
                               got["age"], rtol=1e-5, atol=1e-4)
    card = (models / "joined1.md").read_text()
    assert f"--with {shlex.quote(f'{single}#1')} --name joined1" in card
    assert "commands are in `single.md`" in card
    with pytest.raises(FaceMLError, match="single.keras holds 1 model.s.: it has no member #3"):
        bundle(run, "bad", models, with_files=[f"{single}#3"])

    other, _ = bundle(_utk_only(store, seed=1), "other", models)
    with pytest.raises(FaceMLError, match=r"split utkface differently .*seed 1 vs 0"):
        bundle(run, "bad", models, with_files=[other])
    with pytest.raises(FaceMLError, match="once"):
        bundle(run, "bad", models, with_files=[single, single])
    with pytest.raises(FaceMLError, match="once"):
        bundle(run, "bad", models, with_files=[single, f"{single}#1"])
    with pytest.raises(FaceMLError, match=f"trained on fairface, which run {utk.id} did not"):
        bundle(utk, "bad", models, with_files=[store["model"]])  # the mixed model, to UTK alone
    assert not (models / "bad.keras").exists()


def test_candidates_are_scored_on_validation_per_dataset(store, capsys):
    """scripts/val_candidates.py: a run alone scores as `evaluate RUN --split val` does, per
    dataset; a file's member is taken by its number; members split otherwise are refused."""
    from scripts.val_candidates import main as candidates

    models = store["base"] / "models"
    run = store["runs"]["plain"]
    want = evaluate_json(capsys, run.id, "--split", "val")["by_dataset"]
    single, _ = bundle(_utk_only(store), "single-c", models, mirror=True)
    assert candidates(["--split-of", run.id, "--json", f"alone={run.id}",
                       f"joined={run.id}+{single}#1+mirror"]) == 0
    rows = {r["candidate"]: r for r in map(json.loads, capsys.readouterr().out.splitlines())}
    assert set(rows) == {"alone", "joined"}
    assert rows["alone"]["age_map"] is None  # 12 exact ages: too few for --calibrate-age
    for d in ("utkface", "fairface"):
        got = rows["alone"]["val"][d]
        assert got["split"] == "val" and got["n"] == want[d]["n"]
        for head, metrics in want[d]["heads"].items():
            for m, v in metrics.items():
                assert got["heads"][head][m] == pytest.approx(v, abs=1e-9), (d, head, m)
    assert rows["joined"]["size_mb"] > rows["alone"]["size_mb"] > 0
    assert rows["joined"]["ms_per_face"] > 0 and rows["alone"]["ms_per_face"] > 0
    with pytest.raises(FaceMLError, match="holds 1 model.s.: it has no member #2"):
        candidates(["--split-of", run.id, f"bad={run.id}+{single}#2"])
    other = _utk_only(store, seed=1)  # a run on other data joins as a file would: checked
    with pytest.raises(FaceMLError, match=r"split utkface differently .*seed 1 vs 0"):
        candidates(["--split-of", run.id, f"bad={run.id}+{other.id}"])
    # a run on UTKFace alone joins as `bundle --with RUN_ID` does; +float16 as --float16 does
    utk = _utk_only(store)
    assert candidates(["--split-of", run.id, "--json", f"full={run.id}+{utk.id}+mirror",
                       f"half={run.id}+{utk.id}+mirror+float16"]) == 0
    rows = {r["candidate"]: r for r in map(json.loads, capsys.readouterr().out.splitlines())}
    assert rows["half"]["size_mb"] < 0.75 * rows["full"]["size_mb"]
    for d in ("utkface", "fairface"):
        full, half = rows["full"]["val"][d]["heads"], rows["half"]["val"][d]["heads"]
        assert half["age"]["mae"] == pytest.approx(full["age"]["mae"], abs=0.05)
        assert half["gender"]["auc"] == pytest.approx(full["gender"]["auc"], abs=0.02)
    # without --json: a Markdown table, one row a candidate, with its size and time a face
    assert candidates(["--split-of", run.id, f"alone={run.id}"]) == 0
    header, rule, row = capsys.readouterr().out.splitlines()
    assert header.startswith("| candidate (validation split) | MB | ms a face | utkface gender")
    assert rule.count("---") == header.count("|") - 1 == row.count("|") - 1
    # every metric is there; the last cell is "–": too few exact ages for --calibrate-age
    assert row.startswith("| alone | ") and "–" not in row[:-4] and row.endswith(" | – |")
    assert header.endswith(" | age MAE with --calibrate-age |")


def test_candidates_share_their_members_answers(store, monkeypatch):
    """val_candidates predicts each (member, float16, mirror) once for the whole grid, and a
    candidate scored from its members' cached answers scores as its own ensemble does."""
    from faceml.runs import RunStore
    from faceml.serving import calibration
    from scripts.val_candidates import Members, age_map, candidate, score

    run, utk = store["runs"]["plain"], _utk_only(store)
    members = Members(RunStore(), run)
    predicted = []
    for spec in (f"a={run.id}+{utk.id}+mirror", f"b={run.id}+mirror", f"c={run.id}+mirror",
                 f"d={run.id}+{utk.id}+mirror+float16", f"e={run.id}+{utk.id}",
                 f"f={run.id}+{utk.id}+mirror+gender=1"):
        label, model, predict = candidate(spec, run, members)
        cached, direct = score(model, run, predict)[0], score(model, run)[0]
        predicted.append(members.predicted)
        assert set(cached) == set(direct) == {"utkface", "fairface"}
        for d, want in direct.items():
            assert cached[d]["n"] == want["n"] > 0
            for head, metrics in want["heads"].items():
                for m, v in metrics.items():
                    got = cached[d]["heads"][head][m]
                    assert got == pytest.approx(v, rel=1e-6, abs=1e-6), (label, d, head, m)
    # a: two members; b and c: the run's mirrored answers again; d: both at float16; e: both
    # without the mirror
    assert predicted == [2, 2, 2, 4, 6, 6]  # f: a's answers, gender from the run alone
    # what --calibrate-age would do to the last one (the fixture has 12 exact ages)
    monkeypatch.setattr(calibration, "MIN_FACES", 5)
    frame = score(model, run, predict)[1]
    got = age_map(frame)
    want = calibration.fit_age_map(frame)
    assert got["fitted_on"] == ["utkface"] and got["n"] == 12
    assert got["mae_cv"] == want.mae_cv and got["scale"] == round(want.scale, 4)
    assert got["mae_other"] == {"fairface": calibration.mapped_mae(frame, want)["fairface"]}


def test_calibrate_age_fits_the_line_on_validation_exact_ages_and_carries_it(store, capsys,
                                                                            monkeypatch):
    """bundle --calibrate-age: the map is the median-regression line of the uncalibrated
    bundle's validation answers (exact ages only: UTKFace's, not FairFace's bins), carried in
    the file (safe load), in its validation CSV and on its card; its members still join other
    bundles; too few exact ages is a clear message and writes nothing."""
    from faceml.cli import main
    from faceml.modeling.layers import AgeCalibration
    from faceml.modeling.modelio import load_model
    from faceml.serving import calibration
    from faceml.serving.bundle import file_members

    models = store["base"] / "models"
    run = store["runs"]["plain"]
    with pytest.raises(FaceMLError, match="at least 50 validation faces with an exact age; "
                                          "this model's validation split has 12"):
        bundle(run, "cal-few", models, mirror=True, calibrate_age=True)
    assert not (models / "cal-few.keras").exists()
    monkeypatch.setattr(calibration, "MIN_FACES", 5)  # the fixture's 12 UTKFace faces
    bundle(run, "nocal", models, mirror=True)
    assert main(["bundle", run.id, "--mirror", "--calibrate-age", "--name", "cal",
                 "--out", str(models)]) == 0, capsys.readouterr().err
    capsys.readouterr()
    raw = pd.read_csv(models / "nocal.predictions.csv")
    want = calibration.fit_age_map(raw)
    assert want.datasets == ("utkface",) and want.n == 12
    model = load_model(models / "cal.keras")
    layer = next(lay for lay in model.layers if isinstance(lay, AgeCalibration))
    assert float(layer.scale.numpy()) == pytest.approx(want.scale, rel=1e-5)
    assert float(layer.offset.numpy()) == pytest.approx(want.offset, rel=1e-5, abs=1e-5)
    x = np.random.default_rng(3).integers(0, 256, (5, 16, 16, 3), dtype=np.uint8)
    before = load_model(models / "nocal.keras").predict(x, verbose=0)
    after = model.predict(x, verbose=0)
    np.testing.assert_allclose(after["age"], want(before["age"]), rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(after["gender"], before["gender"], rtol=1e-6)
    val = pd.read_csv(models / "cal.predictions.csv")
    np.testing.assert_allclose(val["age_pred"], want(raw["age_pred"]), rtol=1e-4, atol=1e-3)
    card = (models / "cal.md").read_text()
    assert f"python -m faceml bundle {run.id} --name cal --mirror --calibrate-age" in card
    assert "## Age calibration (carried inside the model)" in card
    assert "fitted on the 12 validation faces of utkface with an exact age" in card
    assert f"{want.mae_before:.3f} years without the map and {want.mae_cv:.3f} with it" in card
    assert "Age calibration" not in (models / "nocal.md").read_text()
    assert len(file_members(models / "cal.keras")) == 1  # its member, without the map

    # --split-of: an earlier bundle's members alone, calibrated on the run's split (the run is
    # not a member): the same model as above, and the card says how
    duo = store["model"]
    assert main(["bundle", "--split-of", run.id, "--with", str(duo), "--mirror",
                 "--calibrate-age", "--name", "cal-split", "--out", str(models)]) == 0
    capsys.readouterr()
    np.testing.assert_allclose(load_model(models / "cal-split.keras").predict(x, verbose=0)["age"],
                               after["age"], rtol=1e-5, atol=1e-4)
    card = (models / "cal-split.md").read_text()
    assert "the bundled model is one model, each also shown the mirrored face" in card
    assert f"# run {run.id}: the split the bundle is scored on (not a member)" in card
    assert (f"python -m faceml bundle --split-of {run.id} --with {shlex.quote(str(duo))} "
            "--name cal-split --mirror --calibrate-age") in card
    assert f"- run `{run.id}`" not in card  # not listed as a member
    assert "trained on utkface,fairface (seed" in card  # all the bundle's datasets: no "only"
    with pytest.raises(FaceMLError, match="nothing to bundle: give a run, or --with members and "
                                          "--split-of"):
        bundle([], "bad", models)
    with pytest.raises(FaceMLError, match=f"--split-of {run.id} names the split only"):
        bundle([], "bad", models, split_of=run)
    # --head-members: gender from the run alone, age from both (and mapped)
    utk = _utk_only(store)
    assert main(["bundle", run.id, "--with", utk.id, "--mirror", "--calibrate-age",
                 "--head-members", "gender=1", "--name", "heads", "--out", str(models)]) == 0
    capsys.readouterr()
    heads = load_model(models / "heads.keras").predict(x, verbose=0)
    np.testing.assert_allclose(heads["gender"], before["gender"], rtol=1e-5, atol=1e-6)
    assert not np.allclose(heads["age"], after["age"], atol=1e-3)  # the UTKFace run's age too
    card = (models / "heads.md").read_text()
    assert "- The gender answer averages members 1 only, in the order above" in card
    assert f"bundle {run.id} --with {utk.id} --name heads --mirror --calibrate-age " \
           "--head-members gender=1" in card
    single, _ = bundle(_utk_only(store), "single-s", models)  # a member of fewer datasets first
    with pytest.raises(FaceMLError, match=f"the first member trained on utkface, and run {run.id}"
                                          "'s split is of utkface,fairface"):
        bundle([], "bad", models, with_files=[single, duo], split_of=run)
    assert not (models / "bad.keras").exists()


def test_a_run_on_fewer_datasets_joins_with_its_command_and_float16_halves_the_file(store,
                                                                                   capsys):
    """bundle --with RUN_ID: a finished UTKFace-only run joins a mixed run's average, checked
    as a file member is (its split, its datasets); the card gives its train command and the
    bundle line. --float16 stores the kernels at half precision: the file is about half and
    the answers are the float32 average's within the rounding; the card says so."""
    from faceml.cli import main
    from faceml.flags import train_command
    from faceml.modeling.modelio import load_model

    models = store["base"] / "models"
    run, utk = store["runs"]["plain"], _utk_only(store)
    for name, extra in (("withrun", []), ("withrun16", ["--float16"])):
        code = main(["bundle", run.id, "--with", utk.id, "--mirror", "--name", name,
                     "--out", str(models), *extra])
        assert code == 0, capsys.readouterr().err
    capsys.readouterr()
    x = np.random.default_rng(2).integers(0, 256, (6, 16, 16, 3), dtype=np.uint8)
    full = load_model(models / "withrun.keras").predict(x, verbose=0)
    half = load_model(models / "withrun16.keras").predict(x, verbose=0)
    parts = [m.predict(v, verbose=0) for m in (run.load_model("best"), utk.load_model("best"))
             for v in (x, x[:, :, ::-1])]
    for head in ("gender", "race", "age"):
        want = np.mean([p[head] for p in parts], axis=0)
        np.testing.assert_allclose(full[head], want, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(half[head], want, atol=2e-3 if head != "age" else 0.05)
    sizes = {n: (models / f"{n}.keras").stat().st_size for n in ("withrun", "withrun16")}
    assert 0.45 < sizes["withrun16"] / sizes["withrun"] < 0.7, sizes
    for name in ("withrun", "withrun16"):
        card = (models / f"{name}.md").read_text()
        assert f"run `{utk.id}`" in card and "(`--with`), trained on utkface only" in card
        assert train_command(utk.config) in card and train_command(run.config) in card
        assert "the average of 2 models, each also shown the mirrored face" in card
        half_said = "kernels stored at half precision (float16" in card
        assert half_said == (name == "withrun16")
        assert (f"python -m faceml bundle {run.id} --with {utk.id} --name {name} --mirror"
                + (" --float16" if name == "withrun16" else "")) in card
    other = _utk_only(store, seed=1)
    assert main(["bundle", run.id, "--with", other.id, "--name", "bad", "--out",
                 str(models)]) == 2
    assert "split utkface differently" in capsys.readouterr().err
    assert main(["bundle", run.id, "--with", "x.kerass", "--name", "bad", "--out",
                 str(models)]) == 2
    assert "'x.kerass' is neither" in capsys.readouterr().err
    with pytest.raises(FaceMLError, match="once"):
        bundle(run, "bad", models, with_runs=[run])
    with pytest.raises(FaceMLError, match="once"):
        bundle(run, "bad", models, with_runs=[utk, utk])
    with pytest.raises(FaceMLError, match=f"trained on fairface, which run {utk.id} did not"):
        bundle(utk, "bad", models, with_runs=[run])
    from faceml.config import TrainConfig
    from faceml.runs import RunStore

    cfg = TrainConfig.from_dict({**utk.config, "epochs": 2})  # made, never trained
    unfinished, _ = RunStore().create(cfg.run_id(), cfg.canonical())
    with pytest.raises(FaceMLError, match=f"run {unfinished.id} is .*only finished runs"):
        bundle(run, "bad", models, with_runs=[unfinished])
    assert not (models / "bad.keras").exists()
