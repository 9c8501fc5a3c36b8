"""Course recipes: every recipe builds for its own input to the notebook's printed parameter
counts (weight-free sizing, VGG16 with weights=None), the FairFace recipes with --split give the
very run ids of the train commands already launched, and recipe list / show / run (JSON and bad
input) on the CLI."""

from __future__ import annotations

import json
import shlex

import pytest

from faceml.cli import main
from faceml.cli.common import Parser, add_train_args, train_values
from faceml.config import TrainConfig
from faceml.errors import ConfigError
from faceml.modeling import architectures as A
from faceml.runs import RunStore
from faceml.training import recipes
from tests.fixtures_formats import make_fairface

# the notebooks' printed model.summary() totals (issue #11), by recipe
PRINTED = {
    "fairface-mlp-gender": (1_625_902, 1_625_902),
    "fairface-mlp-age": (1_626_609, 1_626_609),
    "fairface-small-cnn-gender": (785_342, 785_342),
    "fairface-small-cnn-age": (786_049, 786_049),
    "fairface-own-cnn-gender": (651_266, 651_266 - 448),
    "fairface-own-cnn-age": (652_169, 652_169 - 448),
    "fairface-multitask": (106_315, 106_315),
    "fairface-vae": (104_341, 104_341),
    "utk-csv-age-decades": (38_298, 38_298),
    "utk-csv-ethnicity": (2_981, 2_981),
    "utk-csv-gender": (673, 673),
    "utk128-vgg16-gender": (14_846_273, 131_585),
    "gender-folder-baseline": (9_050_961, 9_050_961),
    "gender-folder-baseline-aug": (9_050_961, 9_050_961),
}
# not printed by the notebooks: what the recipes' layers give (counted by hand)
VGG = 14_714_688  # VGG16 without its top
COUNTED = {
    "utk-csv-age-life6": (38_298 - 4 * 17, 38_298 - 4 * 17),  # 6 classes, not 10: 4·(16+1)
    "utk128-cnn4-gender-age": (2_781_122, 2_781_122),
    "celeba-vgg16-final": (VGG + 7 * 7 * 512 * 2 + 2, 7 * 7 * 512 * 2 + 2),
    "gender-folder-vgg16-fc": (VGG + (512 * 512 + 512) + (512 * 256 + 256) + 257,
                               (512 * 512 + 512) + (512 * 256 + 256) + 257),
}

# the commands the lead launched on the real FairFace copy (no official val there)
LAUNCHED = ("--dataset fairface --size 32 --color gray --scaling minmax --lr 0.001 "
            "--batch-size 32 --split 0.8,0.1,0.1 --binary-output softmax2 --optimizer adam")
TRAINED = {"fairface-mlp-gender": ("mlp", "gender", 10),
           "fairface-small-cnn-gender": ("small_cnn", "gender", 10),
           "fairface-own-cnn-gender": ("own_cnn", "gender", 10),
           "fairface-multitask": ("multitask_cnn", "gender,age", 10),
           "fairface-own-cnn-age": ("own_cnn", "age", 10),
           "fairface-small-cnn-age": ("small_cnn", "age", 10),
           "fairface-mlp-age": ("mlp", "age", 50),
           "fairface-mlp-race": ("mlp", "race", 10)}


def run_cli(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_every_notebook_and_experiment_has_a_recipe():
    by = recipes.by_notebook()
    assert set(by) == {"fairface", "utkface-csv", "utkface-128", "celeba", "gender-folder"}
    assert all(by.values())
    assert set(PRINTED) | set(COUNTED) | {"fairface-mlp-race", "celeba-vgg16-sweep",
                                          "gender-folder-vgg16-other-set"} == set(recipes.names())
    assert len(set(recipes.names())) == len(recipes.RECIPES)


@pytest.mark.parametrize("name", recipes.names())
def test_recipe_builds_for_its_own_input_to_the_notebooks_count(name):
    r = recipes.get(name)
    size = recipes.sizes(r)
    want = PRINTED.get(name) or COUNTED.get(name)
    if want is None:  # race-7, the sweep, the evaluation step: the same layers as a sibling
        sibling = {"fairface-mlp-race": None, "celeba-vgg16-sweep": "celeba-vgg16-final",
                   "gender-folder-vgg16-other-set": "gender-folder-vgg16-fc"}[name]
        want = ((1024 * 1024 + 1024) + (1024 * 512 + 512) + (512 * 100 + 100) + 707,) * 2 \
            if sibling is None else COUNTED[sibling]
    assert (size.total, size.trainable) == want
    if r.params is not None:
        assert r.params == PRINTED[name]
    assert int(size.table["params"].sum()) == size.total


@pytest.mark.parametrize("name", ["fairface-mlp-gender", "fairface-own-cnn-age",
                                  "utk-csv-gender"])
def test_keras_builds_the_same_count_as_sizing(name):
    r = recipes.get(name)
    cfg = r.config()
    heads = cfg.kind.placeholder_heads(cfg, r.sizing_labels())
    model = A.build(cfg.arch, image_size=cfg.data.size, color=cfg.data.color, heads=heads,
                    **cfg.arch_params)
    assert A.param_counts(model) == PRINTED[name]


def test_recipes_say_the_notebooks_settings():
    ff = recipes.get("fairface-mlp-gender").config()
    assert (ff.data.size, ff.data.color, ff.scaling, ff.lr, ff.batch_size, ff.epochs) == \
        (32, "gray", "minmax", 1e-3, 32, 10)
    assert ff.data.holdout == "official" and ff.binary_output == "softmax2"
    assert recipes.get("fairface-mlp-age").config().epochs == 50
    utk = recipes.get("utk-csv-age-life6").config()
    assert (utk.data.size, utk.data.color, utk.scaling, tuple(utk.data.split), utk.batch_size,
            utk.epochs, utk.data.age) == (48, "gray", "unit", (0.7, 0.3, 0.0), 128, 25, "life6")
    final = recipes.get("celeba-vgg16-final").config()
    assert (final.lr, final.batch_size, final.epochs, final.data.size) == (1e-4, 64, 12, 224)
    assert recipes.get("celeba-vgg16-sweep").grid == {"lr": [1e-2, 1e-3, 1e-4],
                                                      "batch_size": [8, 16, 32, 64]}
    ages = {r.name: r.claims[0] for r in recipes.RECIPES
            if r.claims and r.claims[0].head == "age" and r.dataset == "fairface"}
    assert {n: (c.value, c.corrected) for n, c in ages.items()} == {
        "fairface-mlp-age": (0.830, 0.36), "fairface-small-cnn-age": (0.869, 0.37),
        "fairface-own-cnn-age": (0.826, 0.41), "fairface-multitask": (0.412, None)}
    assert "exp(½·logvar)" in " ".join(recipes.get("fairface-vae").notes)
    assert "1500 steps" in recipes.get("celeba-vgg16-sweep").claims[0].note
    assert "faceml evaluate" in recipes.get("gender-folder-vgg16-other-set").evaluate


@pytest.mark.parametrize("name", list(TRAINED))
def test_recipe_with_split_is_the_launched_train_command(name):
    arch, heads, epochs = TRAINED[name]
    p = Parser()
    add_train_args(p)
    argv = shlex.split(LAUNCHED) + ["--arch", arch, "--heads", heads, "--epochs", str(epochs)]
    launched = TrainConfig.from_dict(train_values(p.parse_args(argv)))
    mine = recipes.get(name).config(split=[0.8, 0.1, 0.1])
    assert mine.canonical() == launched.canonical()
    assert mine.run_id() == launched.run_id()
    # the notebook-faithful recipe itself is another run (official val)
    assert recipes.get(name).config().run_id() != launched.run_id()
    assert recipes.overrides_of(recipes.get(name), launched.canonical()) == \
        ["split 0.8,0.1,0.1 (carve validation)"]


def test_matching_runs_allow_only_the_overrides():
    r = recipes.get("fairface-mlp-gender")
    store = RunStore()
    a = r.config(path="/x", epochs=1, fraction=0.5)
    other = r.config()
    other.lr = 0.01
    for cfg in (a, other):
        store.create(cfg.run_id(), cfg.canonical())
    found = {run.id: over for run, over in recipes.matching_runs(r, store)}
    assert found == {a.run_id(): ["path /x", "epochs 1", "fraction 0.5"]}
    sweep = recipes.get("celeba-vgg16-sweep")
    cell = sweep.config()
    cell.lr, cell.batch_size = 0.01, 8
    assert recipes.overrides_of(sweep, cell.canonical()) == ["lr 0.01", "batch_size 8"]
    assert recipes.overrides_of(recipes.get("celeba-vgg16-final"), cell.canonical()) is None


def test_unknown_recipe_lists_the_names(capsys):
    with pytest.raises(ConfigError, match="unknown recipe 'nope'; known: fairface-mlp-gender"):
        recipes.get("nope")
    for action in ("show", "run"):
        code, out, err = run_cli(capsys, "recipe", action, "nope")
        assert code == 2 and out == ""
        assert err.startswith("error: unknown recipe 'nope'; known: ")
        assert "celeba-vgg16-final" in err and "Traceback" not in err


def test_list_json(capsys):
    code, out, _ = run_cli(capsys, "recipe", "list", "--json")
    assert code == 0
    rows = json.loads(out)
    assert [r["name"] for r in rows] == recipes.names()
    by = {r["name"]: r for r in rows}
    assert by["utk128-vgg16-gender"]["params"] == {"total": 14_846_273, "trainable": 131_585}
    assert by["fairface-mlp-gender"]["claimed"] == [
        {"head": "gender", "metric": "accuracy", "split": "val", "value": 0.716, "note": "",
         "corrected": None}]
    assert by["fairface-mlp-age"]["claimed"][0]["corrected"] == 0.36
    assert {r["notebook"] for r in rows} == set(recipes.NOTEBOOKS)
    assert all({"name", "notebook", "title", "dataset", "params", "claimed"} <= set(r)
               for r in rows)


def test_show_json_has_the_config_and_the_layer_table(capsys):
    code, out, _ = run_cli(capsys, "recipe", "show", "utk-csv-gender", "--json")
    assert code == 0
    d = json.loads(out)
    assert d["config"] == recipes.get("utk-csv-gender").config().canonical()
    assert sum(row["params"] for row in d["layers"]) == 673 == d["params"]["total"]
    assert d["command"].startswith("python -m faceml train --dataset utkface-csv")
    code, out, _ = run_cli(capsys, "recipe", "show", "fairface-multitask")
    assert code == 0 and "106,315 total" in out and "multitask_cnn" in out


def test_run_without_the_dataset_names_it_where_and_path(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("FACEML_SHARED_DATA", str(tmp_path / "nothing"))
    code, out, err = run_cli(capsys, "recipe", "run", "utk-csv-gender")
    assert code == 2 and out == ""
    assert err.startswith("error: the utkface-csv dataset is not on disk: looked at ")
    assert str(tmp_path / "nothing") in err and "--path" in err
    code, _, err = run_cli(capsys, "recipe", "run", "gender-folder-baseline")
    assert code == 2 and "folder dataset is not on disk" in err and "--path" in err
    assert not RunStore().list()


def test_fairface_without_official_val_suggests_split(capsys, tmp_path):
    root = make_fairface(tmp_path / "ff", n=12, n_val=2)
    (root / "fairface_label_val.csv").unlink()
    code, out, err = run_cli(capsys, "recipe", "run", "fairface-mlp-gender", "--path", str(root))
    assert code == 2
    assert "no fairface_label_val.csv" in err and "--split 0.8,0.1,0.1" in err
    assert not RunStore().list()


def test_an_override_that_breaks_the_recipe_gets_the_configs_message(capsys):
    code, _, err = run_cli(capsys, "recipe", "run", "fairface-mlp-gender", "--epochs", "0")
    assert code == 2 and err.strip() == "error: epochs must be at least 1, not 0"
    code, _, err = run_cli(capsys, "recipe", "run", "fairface-mlp-gender", "--split", "0.5,x")
    assert code == 2 and "--split takes fractions" in err


def test_run_trains_a_fairface_recipe_cached_like_any_run(capsys, tmp_path):
    root = make_fairface(tmp_path / "ff", n=40, n_val=12, size=32)
    args = ["recipe", "run", "fairface-small-cnn-gender", "--path", str(root), "--epochs", "1",
            "--json"]
    code, out, _ = run_cli(capsys, *args)
    assert code == 0
    first = json.loads(out)
    want = recipes.get("fairface-small-cnn-gender").config(path=str(root), epochs=1)
    assert first["run_id"] == want.run_id() and first["cached"] is False
    assert first["status"] == "done"
    val = first["metrics"]["val"]
    assert val["n"] == 12  # the official val faces are the validation set
    assert 0 <= val["heads"]["gender"]["accuracy"] <= 1
    code, out, _ = run_cli(capsys, *args)
    assert code == 0 and json.loads(out)["cached"] is True
    r = recipes.get("fairface-small-cnn-gender")
    (run, over), = recipes.matching_runs(r, RunStore())
    assert run.id == want.run_id() and over == [f"path {root}", "epochs 1"]
    assert recipes.ours(run, recipes.Claim("gender", "accuracy", "val", None)) == \
        val["heads"]["gender"]["accuracy"]
