"""`python -m faceml`: datasets, prepare, train, runs; bad input exits 2 with one line."""

import json
import os
import subprocess
import sys

import pytest

from faceml.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_cli(capsys, *args):
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_datasets_json_lists_every_adapter(capsys):
    code, out, _ = run_cli(capsys, "datasets", "--json")
    assert code == 0
    rows = {r["name"]: r for r in json.loads(out)}
    assert {"synthetic", "utkface", "utkface-csv", "fairface", "celeba", "folder"} <= set(rows)
    assert rows["synthetic"]["found"] is True
    assert rows["utkface"]["labels"]["race"]["classes"][0] == "White"


def test_prepare_prints_a_summary_and_fills_the_cache(capsys):
    args = ["prepare", "synthetic", "--size", "16", "--color", "gray",
            "--dataset-option", "n=300", "--json"]
    code, out, _ = run_cli(capsys, *args)
    assert code == 0
    first = json.loads(out)
    assert first["n"] == 300 and first["splits"] == {"train": 210, "val": 45, "test": 45}
    assert first["cache_hit"] is False
    code, out, _ = run_cli(capsys, *args)
    assert json.loads(out)["cache_hit"] is True
    code, out, _ = run_cli(capsys, "prepare", "synthetic", "--size", "16",
                           "--dataset-option", "n=300")
    assert code == 0 and "300 faces at 16x16 rgb" in out


@pytest.mark.parametrize("args,needle", [
    (["prepare", "utkface", "--path", "/nonexistent/utk"], "does not exist"),
    (["prepare", "nope"], "unknown dataset"),
    (["prepare", "synthetic", "--size", "4"], "image size"),
    (["prepare", "synthetic", "--color", "cmyk"], "invalid choice"),
    (["train", "--heads", "eyewear", "--lr", "0"], "learning rate must be > 0"),
    (["train", "--heads", "eyewear", "--batch-size", "0"], "batch size"),
    (["train", "--heads", "eyewear", "--epochs", "0"], "epochs"),
    (["train", "--heads", "race"], "has no label 'race'"),
    (["train", "--heads", "eyewear", "--arch", "vgg16", "--color", "gray",
      "--param", "weights=null"], "RGB"),
    (["evaluate-nothing"], "invalid choice"),
])
def test_bad_input_exits_2_with_one_line(capsys, args, needle):
    with pytest.raises(SystemExit) as e:
        code = main(args)
        raise SystemExit(code)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and needle in err[0], err


def test_empty_and_non_image_folders(capsys, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = run_cli(capsys, "prepare", "folder", "--path", str(empty))
    assert code == 2 and "error:" in err
    junk = tmp_path / "junk" / "a"
    junk.mkdir(parents=True)
    (junk / "x.txt").write_text("hello")
    code, _, err = run_cli(capsys, "prepare", "folder", "--path", str(tmp_path / "junk"))
    assert code == 2 and "error:" in err


def test_train_json_then_cached_then_runs(capsys):
    args = ["train", "--dataset", "synthetic", "--dataset-option", "n=160", "--size", "16",
            "--color", "gray", "--arch", "small_cnn", "--heads", "eyewear,age", "--epochs", "1",
            "--batch-size", "32", "--json"]
    code, out, _ = run_cli(capsys, *args)
    assert code == 0
    res = json.loads(out)
    assert res["status"] == "done" and res["cached"] is False
    assert res["metrics"]["test"]["heads"]["eyewear"]["accuracy"] is not None
    assert set(res["metrics"]["test"]["heads"]["age"]) == {"mae", "rmse"}
    code, out, _ = run_cli(capsys, *args)
    again = json.loads(out)
    assert again["cached"] is True and again["run_id"] == res["run_id"]
    code, out, _ = run_cli(capsys, "runs", "--json")
    rows = json.loads(out)
    assert [r["run_id"] for r in rows] == [res["run_id"]] and rows[0]["state"] == "done"


def test_real_process_exit_code():
    out = subprocess.run([sys.executable, "-m", "faceml", "prepare", "utkface", "--path",
                          "/nonexistent"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1].startswith("error: utkface: path does not exist")


HEAVY = ("keras", "tensorflow", "pandas", "numpy", "PIL", "sklearn", "cv2")


def _imported_by(argv: list[str]) -> tuple[str, list[str], list[str]]:
    """``python -m faceml ARGV`` in a fresh process: its output, the heavy libraries and the
    command modules it imported."""
    code = ("import json, runpy, sys; sys.argv = ['faceml', *sys.argv[1:]]\n"
            "try:\n    runpy.run_module('faceml', run_name='__main__')\n"
            "except SystemExit:\n    pass\n"
            f"print('IMPORTED', json.dumps([sorted(m for m in {HEAVY!r} if m in sys.modules), "
            "sorted(m for m in sys.modules if m.startswith('faceml.cli.') "
            "and m != 'faceml.cli.common')]))")
    out = subprocess.run([sys.executable, "-c", code, *argv], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    text, _, tail = out.stdout.rpartition("IMPORTED ")
    heavy, mods = json.loads(tail)
    return text, heavy, mods


def test_help_lists_every_command_and_imports_no_heavy_library():
    from faceml.cli import COMMANDS

    text, heavy, mods = _imported_by(["--help"])
    assert heavy == [] and mods == []  # no Keras, TensorFlow, pandas…; no command module
    for name, (_, help_text) in COMMANDS.items():
        assert f"    {name} " in text and help_text.split()[0] in text


def test_a_commands_help_imports_that_command_only():
    text, heavy, mods = _imported_by(["train", "--help"])
    assert "--mixed-precision" in text and "--dataset-option" in text
    assert mods == ["faceml.cli.train"]
    assert not {"keras", "tensorflow"} & set(heavy)


def test_the_library_never_imports_the_cli():
    import ast
    from pathlib import Path

    pkg = Path(ROOT) / "faceml"
    for f in pkg.rglob("*.py"):
        if f.parent.name == "cli" or f.name == "__main__.py":
            continue
        for node in ast.walk(ast.parse(f.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(n == "faceml.cli" or n.startswith("faceml.cli.") for n in names), f


SWEEP_BASE = ["sweep", "--dataset", "synthetic", "--dataset-option", "n=120", "--size", "16",
              "--color", "gray", "--arch", "small_cnn", "--heads", "eyewear", "--epochs", "1"]


@pytest.mark.parametrize("grid,needle", [
    (["--grid", "colour=1,2"], "--grid colour: unknown key; sweep one of"),
    (["--grid", "lr="], "--grid lr: give at least one value"),
    (["--grid", "lr= , "], "--grid lr: give at least one value"),
    (["--grid", "lr"], "--grid takes KEY=V1,V2"),
    (["--grid", "batch-size=8,big"], "--grid batch-size: 'big' is not a valid int"),
    (["--grid", "lr=0.01,0"], "learning rate must be > 0"),
    (["--grid", "batch_size=8,0"], "batch size must be at least 1"),
    (["--grid", "optimizer=adam,lion"], "unknown optimizer 'lion'"),
    (["--grid", "color=gray,cmyk"], "'cmyk' is not one of gray, rgb"),
    (["--grid", "heads=eyewear,age"], "cannot be swept"),
    (["--grid", "lr=0.1,0.1"], "values repeat"),
    (["--grid", "lr=0.1", "--grid", "lr=0.2"], "given twice"),
    ([], "give the grid"),
])
def test_sweep_bad_input_exits_2_and_queues_nothing(capsys, grid, needle):
    from faceml.runs import RunStore

    code, out, err = run_cli(capsys, *SWEEP_BASE, *grid)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    assert needle in lines[0], lines[0]
    assert RunStore().list() == []  # nothing queued, not even the valid cells


def test_sweep_queues_the_grid_waits_and_reuses_the_pages_runs(capsys):
    from faceml.config import TrainConfig
    from faceml.data.prepare import PrepOptions
    from faceml.runs import RunStore
    from faceml.training import jobs, sweeps

    grid = ["--grid", "lr=0.01,0.001", "--grid", "batch-size=32"]
    code, out, err = run_cli(capsys, *SWEEP_BASE, *grid, "--json")
    assert code == 0, err
    rows = json.loads(out)
    assert [r["params"] for r in rows] == [{"lr": 0.01, "batch_size": 32},
                                           {"lr": 0.001, "batch_size": 32}]
    # the same run ids as the Compare page's sweep of the same base configuration
    base = TrainConfig(data=PrepOptions(dataset="synthetic", dataset_options={"n": 120},
                                        size=16, color="gray"),
                       arch="small_cnn", heads=["eyewear"], epochs=1)
    page = sweeps.grid(base, "lr", [0.01, 0.001], "batch_size", [32])
    assert [r["run_id"] for r in rows] == [c.run_id() for c in page]
    store = RunStore()
    for r in rows:
        assert r["state"] == "done"
        hist = store.get(r["run_id"]).history()
        m = r["metrics"]
        assert m["split"] == "val" and m["dataset"] == "synthetic" and m["epochs"] == 1
        assert m["highest_val_acc"] == pytest.approx(hist["val_accuracy"].max())
        assert m["val_loss_at_highest_val_acc"] == pytest.approx(hist["val_loss"].iloc[0])
    # the table; cached cells reused, a new one queued without waiting
    code, out, err = run_cli(capsys, *SWEEP_BASE, "--grid", "lr=0.01,0.001,0.0001",
                             "--grid", "batch_size=32")
    assert code == 0 and "3 runs, 1 new, 2 reused" in err
    assert "validation split of synthetic" in out and "best val acc" in out
    assert len(store.list()) == 3
    code, out, err = run_cli(capsys, *SWEEP_BASE, "--grid", "lr=0.01,0.003",
                             "--grid", "batch_size=32", "--json", "--no-wait")
    assert code == 0 and "2 runs, 1 new, 1 reused" in err
    rows = json.loads(out)
    assert rows[0]["state"] == "done" and rows[1]["state"] in ("queued", "running")
    assert jobs.wait(store.get(rows[1]["run_id"]), timeout=300)["state"] == "done"
