"""Faults: a checkpoint write that fails (an injected OSError, and a real full disk: a small
tmpfs as the runs folder), and corrupt run folders (listed as damaged; every other run still
works in the runs table, the CLI and the worker). The page side is in test_train_form.py; a
killed and restarted web server is in tests/browser/test_restart.py."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from faceml.training import jobs
from faceml.data.prepare import PrepOptions
from faceml.runs import RunDamaged, RunStore
from faceml.config import TrainConfig
from faceml.training.engine import train_run

ROOT = Path(__file__).resolve().parents[1]


def tiny(epochs: int = 3, seed: int = 0) -> TrainConfig:
    return TrainConfig(data=PrepOptions(dataset="synthetic", dataset_options={"n": 160},
                                        size=16, color="gray"),
                       arch="small_cnn", heads=["eyewear"], epochs=epochs, batch_size=32,
                       seed=seed)


def digest(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def leftovers(run) -> list[str]:
    return [p.name for p in run.dir.iterdir() if p.name.startswith(".")]


# -- a checkpoint write fails ------------------------------------------------------------------
def test_a_failed_checkpoint_write_fails_the_run_and_keeps_the_previous_one(monkeypatch):
    import keras

    real_save = keras.Model.save
    seen: dict = {}

    def save(self, path, *a, **k):
        seen["calls"] = seen.get("calls", 0) + 1
        if seen["calls"] == 2:  # epoch 2: the disk fills up half-way through the file
            last = Path(path).parent / "last.keras"
            seen["last"], seen["best"] = digest(last), digest(last.with_name("best.keras"))
            Path(path).write_bytes(b"PK\x03\x04 half a model")
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real_save(self, path, *a, **k)

    monkeypatch.setattr(keras.Model, "save", save)
    store = RunStore()
    cfg = tiny(epochs=3)
    run, _ = store.create(cfg.run_id(), cfg.canonical())
    st = train_run(run)
    assert st["state"] == "failed"
    assert st["reason"] == ("could not save the checkpoint of epoch 2: no space left on device; "
                            "the checkpoint of epoch 1 is kept. Free some space and resume the "
                            "run."), st["reason"]
    assert str(run.dir) not in st["reason"]  # no server path in what a visitor reads
    # the previous checkpoints are intact and agree with the history
    assert digest(run.checkpoint("last")) == seen["last"]
    assert digest(run.checkpoint("best")) == seen["best"]
    assert run.history()["epoch"].tolist() == [1]
    assert not leftovers(run), leftovers(run)
    run.load_model("last")  # loads: not the half-written file

    # space freed: resume continues after epoch 1
    monkeypatch.setattr(keras.Model, "save", real_save)
    jobs.resume(run, store, start_worker=False)
    assert train_run(run)["state"] == "done"
    assert run.history()["epoch"].tolist() == [1, 2, 3]


@pytest.fixture
def small_disk(tmp_path):
    """``mount(size) -> Path``: a tmpfs of ``size`` bytes (root only; skipped otherwise)."""
    mounted = []

    def mount(size: int) -> Path:
        d = tmp_path / f"disk{len(mounted)}"
        d.mkdir()
        out = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(d)],
                             capture_output=True, text=True)
        if out.returncode:
            pytest.skip(f"cannot mount a tmpfs here ({out.stderr.strip() or out.returncode})")
        mounted.append(d)
        return d

    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    yield mount
    for d in mounted:
        subprocess.run(["umount", "-l", str(d)], check=False)


def test_a_full_disk_fails_the_run_with_the_reason_and_keeps_the_checkpoint(small_disk):
    # how big a checkpoint of this model is: one epoch in an ordinary folder
    probe = RunStore()
    one = tiny(epochs=1, seed=4)
    r, _ = probe.create(one.run_id(), one.canonical())
    assert train_run(r)["state"] == "done"
    size = r.checkpoint("last").stat().st_size
    # room for epoch 1 (last + best) and the small JSON files, not for a third model
    disk = small_disk((int(2.5 * size) // 4096 + 16) * 4096)
    store = RunStore(disk / "runs")
    cfg = tiny(epochs=3, seed=4)
    run, _ = store.create(cfg.run_id(), cfg.canonical())
    st = train_run(run)
    assert st["state"] == "failed", st
    assert "could not save the checkpoint of epoch 2: no space left on device" in st["reason"]
    assert "the checkpoint of epoch 1 is kept" in st["reason"]
    assert run.status()["state"] == "failed"  # the reason reached the disk too
    assert run.history()["epoch"].tolist() == [1]
    assert not leftovers(run), leftovers(run)
    run.load_model("last")
    run.load_model("best")


# -- corrupt run folders -----------------------------------------------------------------------
DAMAGE = {
    "config-garbage": ("config.json", b"{not json"),
    "config-not-an-object": ("config.json", b"[1, 2, 3]"),
    "config-empty": ("config.json", b""),
    "status-garbage": ("status.json", b"\x00\xff\x00"),
    "status-not-an-object": ("status.json", b'"running"'),
    "history-garbage": ("history.json", b"[{\"epoch\": 1,"),
    "history-not-epochs": ("history.json", b"[1, 2]"),
    "metrics-garbage": ("metrics.json", b"{"),
    "metrics-not-an-object": ("metrics.json", b"[]"),
}


def two_runs(damage: str):
    store = RunStore()
    good, _ = store.create(tiny(seed=1).run_id(), tiny(seed=1).canonical())
    bad, _ = store.create(tiny(seed=2).run_id(), tiny(seed=2).canonical())
    name, blob = DAMAGE[damage]
    (bad.dir / name).write_bytes(blob)
    return store, good, bad


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_corrupt_run_is_listed_as_damaged_and_the_others_still_work(damage):
    store, good, bad = two_runs(damage)
    table = store.table().set_index("run_id")
    assert table.loc[bad.id, "state"] == "damaged", table.loc[bad.id].to_dict()
    assert DAMAGE[damage][0] in table.loc[bad.id, "reason"]
    assert table.loc[good.id, "state"] == "queued"
    assert [r.id for r in store.queued()] in ([good.id], [good.id, bad.id])


def test_a_corrupt_predictions_file_is_damage_not_a_traceback():
    store, good, bad = two_runs("metrics-garbage")
    (bad.dir / "predictions.csv").write_bytes(b'source,split\n"a,b\n\xff\xfe')
    with pytest.raises(RunDamaged, match="predictions.csv is damaged"):
        bad.predictions()
    assert good.predictions() is None


@pytest.mark.parametrize("bad_id", ["../etc", ".hidden", "", "a/b", "x" * 200, "a\x00b"])
def test_a_run_id_is_never_a_path(bad_id):
    store = RunStore()
    assert not store.exists(bad_id)
    with pytest.raises(Exception, match="not a run id"):
        store.get(bad_id)


@pytest.mark.parametrize("damage", ["config-garbage", "status-garbage", "metrics-garbage"])
def test_the_cli_lists_a_damaged_run_beside_the_others(damage):
    store, good, bad = two_runs(damage)
    env = {**os.environ, "FACEML_RUNS_DIR": str(store.root)}
    out = subprocess.run([sys.executable, "-m", "faceml", "runs"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    lines = {ln.split()[0]: ln for ln in out.stdout.splitlines()[1:]}
    assert "damaged" in lines[bad.id] and "queued" in lines[good.id], out.stdout
    out = subprocess.run([sys.executable, "-m", "faceml", "runs", "--json"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    rows = {r["run_id"]: r["state"] for r in json.loads(out.stdout)}
    assert rows == {good.id: "queued", bad.id: "damaged"}


@pytest.mark.parametrize("damage", ["config-garbage", "config-not-an-object", "history-garbage"])
def test_the_worker_fails_a_damaged_queued_run_and_trains_the_next(damage):
    store = RunStore()
    bad, _ = store.create(tiny(epochs=1, seed=2).run_id(), tiny(epochs=1, seed=2).canonical())
    good, _ = store.create(tiny(epochs=1, seed=1).run_id(), tiny(epochs=1, seed=1).canonical())
    bad.set_status(queued_at=1.0)  # first in the queue
    name, blob = DAMAGE[damage]
    (bad.dir / name).write_bytes(blob)
    assert jobs.work(store) == 2
    assert good.status()["state"] == "done"
    st = bad.status()
    assert st["state"] == "failed" and f"{name} is" in st["reason"], st
