"""Ray as an executor: a sweep through ``--backend ray`` on a local Ray (same run ids as the
local worker, curves in the run store, cells reused), Stop from another process, a Ray address
that does not answer, a worker killed mid-run (failed, crashed, resumed), and Ray missing."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from faceml.config import TrainConfig
from faceml.data.prepare import PrepOptions
from faceml.errors import FaceMLError
from faceml.runs import RunStore
from faceml.training import jobs, ray_executor, sweeps
from tests.test_jobs import wait_for

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
needs_ray = pytest.mark.skipif(not ray_executor.available(),
                               reason="ray is not installed (pip install faceml[scale])")

BASE = ["--dataset", "synthetic", "--dataset-option", "n=120", "--size", "16", "--color", "gray",
        "--arch", "small_cnn", "--heads", "eyewear", "--epochs", "1"]
GRID = ["--grid", "lr=0.01,0.001", "--grid", "batch-size=16,32"]  # the 2×2


def cfg(epochs: int) -> TrainConfig:
    return TrainConfig(data=PrepOptions(dataset="synthetic", dataset_options={"n": 160}, size=16,
                                        color="gray"),
                       arch="small_cnn", heads=["eyewear"], epochs=epochs, batch_size=32)


def cli(capsys, *argv) -> tuple[int, str, str]:
    from faceml.cli import main

    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def local_ray():
    """One small local Ray for the module (2 CPUs, no dashboard); the executor joins it."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             object_store_memory=80 * 2**20)
    yield ray
    ray.shutdown()


# --- without Ray, and bad input: no cluster needed -----------------------------------------
def test_without_ray_the_message_says_what_to_install(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    code, out, err = cli(capsys, "sweep", *BASE, *GRID, "--backend", "ray")
    assert code == 2 and err.strip() == "error: Ray is not installed: install faceml[scale] (ray)"
    monkeypatch.setenv("FACEML_EXECUTOR", "ray")
    with pytest.raises(FaceMLError, match=r"install faceml\[scale\] \(ray\)"):
        jobs.submit(cfg(1))
    code, out, err = cli(capsys, "train", *BASE, "--background")
    assert code == 2 and "install faceml[scale] (ray)" in err
    assert RunStore().list() == []  # nothing queued


def test_an_unknown_executor_is_named(monkeypatch):
    monkeypatch.setenv("FACEML_EXECUTOR", "slurm")
    with pytest.raises(FaceMLError, match="unknown executor 'slurm'; choose one of local, ray"):
        jobs.submit(cfg(1))
    assert RunStore().list() == []


def test_the_local_worker_leaves_runs_queued_for_ray_alone():
    store = RunStore()
    run, _ = jobs.submit(cfg(1), store, start_worker=False)
    run.set_status(executor="ray", ray_actor="faceml-elsewhere")
    assert jobs.work(store, idle_exit=0.3) == 0
    assert run.status()["state"] == "queued"


@needs_ray
@pytest.mark.parametrize("address,needle", [
    (None, "no Ray cluster answers at 127.0.0.1:"),
    ("no-port-here", "not a Ray address: 'no-port-here'"),
])
def test_a_ray_address_that_does_not_answer_exits_2_and_queues_nothing(capsys, address,
                                                                       needle):
    address = address or f"127.0.0.1:{free_port()}"
    t0 = time.monotonic()
    for argv in (["sweep", *BASE, *GRID, "--backend", "ray", "--address", address],
                 ["train", *BASE, "--address", address, "--background"]):
        code, out, err = cli(capsys, *argv)
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
        assert needle in lines[0], lines[0]
    assert time.monotonic() - t0 < 30  # fails fast, not after Ray's own minute of retries
    assert RunStore().list() == []  # nothing queued, so nothing can be queued twice


@needs_ray
def test_no_wait_on_a_ray_that_ends_with_the_command_is_refused(capsys, monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.delenv("FACEML_RAY_ADDRESS", raising=False)
    code, out, err = cli(capsys, "sweep", *BASE, *GRID, "--backend", "ray", "--no-wait")
    assert code == 2 and "a local Ray ends with this command" in err
    assert RunStore().list() == []


# --- on a local Ray --------------------------------------------------------------------------
@needs_ray
def test_a_sweep_on_ray_gives_the_local_run_ids_streams_curves_and_reuses_cells(capsys,
                                                                                local_ray):
    code, out, err = cli(capsys, "sweep", *BASE, *GRID, "--backend", "ray", "--json")
    assert code == 0, err
    assert "4 runs, 4 new, 0 reused from the run store on ray" in err
    rows = json.loads(out)
    assert [r["params"] for r in rows] == [{"lr": lr, "batch_size": b} for lr in (0.01, 0.001)
                                           for b in (16, 32)]
    assert {r["backend"] for r in rows} == {"ray"} and {r["state"] for r in rows} == {"done"}

    # the same run ids as the local worker's sweep of the same configuration
    base = TrainConfig(data=PrepOptions(dataset="synthetic", dataset_options={"n": 120},
                                        size=16, color="gray"),
                       arch="small_cnn", heads=["eyewear"], epochs=1)
    other = RunStore(RunStore().root.parent / "local-runs")
    local = sweeps.launch_grid(base, {"lr": [0.01, 0.001], "batch_size": [16, 32]}, other,
                               start_worker=False)
    assert [r["run_id"] for r in rows] == [c["run_id"] for c in local["cells"]]

    store = RunStore()
    actors = {}
    for r in rows:
        run = store.get(r["run_id"])
        st = run.status()
        # trained by a Ray actor in another process, into this run store, epoch by epoch
        assert st["executor"] == "ray" and st["ray_actor"].startswith(f"faceml-{run.id}-")
        assert st["pid"] != os.getpid()
        hist = run.history()
        assert hist["epoch"].tolist() == [1] and {"loss", "val_loss"} <= set(hist)
        assert r["metrics"]["final_val_loss"] == pytest.approx(hist["val_loss"].iloc[-1])
        assert run.has_checkpoint("last") and run.has_predictions()
        assert ray_executor.alive(run) is False  # the actor exited after its run
        actors[run.id] = st["ray_actor"]

    # again: both cells reused, no new actor, nothing trained twice
    code, out, err = cli(capsys, "sweep", *BASE, *GRID, "--backend", "ray", "--json")
    assert code == 0 and "4 runs, 0 new, 4 reused" in err
    again = json.loads(out)
    assert [r["run_id"] for r in again] == [r["run_id"] for r in rows]
    assert all(r["state"] == "done" and r["backend"] == "ray" for r in again)
    assert {i: store.get(i).status()["ray_actor"] for i in actors} == actors
    assert all(len(store.get(i).history()) == 1 for i in actors)


@needs_ray
def test_stop_from_another_process_stops_the_ray_run_cleanly(local_ray, monkeypatch):
    monkeypatch.setenv("FACEML_EXECUTOR", "ray")  # as the dashboard's launches go to Ray
    store = RunStore()
    run, new = jobs.submit(cfg(epochs=400), store, visitor="visitor-a")
    assert new and run.status()["executor"] == "ray"
    wait_for(lambda: len(run.history()) >= 1, timeout=180)
    # the dashboard's Stop is another process: it finds the run's actor through the run store
    out = subprocess.run([sys.executable, "-m", "faceml", "stop", run.id], cwd=ROOT,
                         capture_output=True, text=True, timeout=120, env=os.environ.copy())
    assert out.returncode == 0, out.stderr
    st = run.status()
    assert st["state"] == "stopped" and "stopped by the user after epoch" in st["reason"], st
    assert int(run.history()["epoch"].max()) < 400 and run.has_checkpoint("last")
    wait_for(lambda: ray_executor.alive(run) is False, timeout=30)


@needs_ray
def test_a_killed_ray_worker_fails_its_run_which_resumes_from_its_checkpoint(local_ray):
    store = RunStore()
    run, _ = jobs.submit(cfg(epochs=400), store, executor="ray")
    wait_for(lambda: run.status().get("state") == "running" and len(run.history()) >= 2,
             timeout=180)
    first = run.status()["ray_actor"]
    os.kill(run.status()["pid"], signal.SIGKILL)  # the Ray worker process dies mid-run
    wait_for(lambda: run.status().get("state") == "failed", timeout=30)
    st = run.status()
    assert st.get("crashed") and "died" in st["reason"], st
    killed_at = int(run.history()["epoch"].max())
    before = run.history().set_index("epoch")["loss"]
    wait_for(lambda: ray_executor.alive(run) is False, timeout=30)  # Ray did not restart it

    # resume on Ray: a new actor continues after the last saved epoch
    jobs.resume(run, store, executor="ray")
    assert run.status()["ray_actor"] != first
    wait_for(lambda: len(run.history()) >= killed_at + 1, timeout=180)
    assert run.status().get("start_epoch") == killed_at
    # Stop that cannot wait for the engine ends the actor itself (ray.kill by name)
    ray_executor.stop(run, grace=0)
    st = run.status()
    assert st["state"] == "stopped" and "its Ray task was ended" in st["reason"], st
    wait_for(lambda: ray_executor.alive(run) is False, timeout=30)
    hist = run.history().set_index("epoch")
    assert hist.index.tolist() == list(range(1, len(hist) + 1))
    assert hist["loss"].loc[:killed_at].tolist() == before.loc[:killed_at].tolist()
