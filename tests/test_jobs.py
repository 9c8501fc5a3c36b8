"""Background jobs: a detached worker, Stop, crash and resume, queue order, double launch."""

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from faceml.training import jobs
from faceml.data.prepare import PrepOptions
from faceml.runs import RunStore
from faceml.config import TrainConfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cfg(epochs=2, seed=0) -> TrainConfig:
    return TrainConfig(data=PrepOptions(dataset="synthetic", dataset_options={"n": 160}, size=16,
                                        color="gray"),
                       arch="small_cnn", heads=["eyewear"], epochs=epochs, batch_size=32,
                       seed=seed)


def wait_for(pred, timeout=120, poll=0.2):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if pred():
            return True
        time.sleep(poll)
    raise TimeoutError("condition not reached")


def test_a_job_outlives_the_process_that_started_it():
    code = ("from faceml.training import jobs; from tests.test_jobs import cfg; "
            "run, new = jobs.submit(cfg(epochs=2)); print(run.id)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=120, env=os.environ.copy())
    assert out.returncode == 0, out.stderr
    run_id = out.stdout.strip().splitlines()[-1]
    run = RunStore().get(run_id)
    # the process that launched it is gone; the detached worker trains on
    st = jobs.wait(run, timeout=180)
    assert st["state"] == "done", st
    assert run.history()["epoch"].tolist() == [1, 2]


def test_stop_then_kill_then_resume_continue_from_the_last_epoch():
    store = RunStore()
    run, _ = jobs.submit(cfg(epochs=400), store)
    wait_for(lambda: len(run.history()) >= 2, timeout=180)
    jobs.stop(run)
    st = jobs.wait(run, timeout=60)
    assert st["state"] == "stopped", st
    assert "stopped by the user" in st["reason"]
    stopped_at = int(run.history()["epoch"].max())
    assert run.has_checkpoint("last")
    before = run.history().set_index("epoch")["loss"]

    # resume, then SIGKILL the worker mid-training: the run shows as crashed
    jobs.resume(run, store)
    wait_for(lambda: run.status().get("state") == "running"
             and len(run.history()) >= stopped_at + 2, timeout=180)
    os.kill(run.status()["pid"], signal.SIGKILL)
    wait_for(lambda: run.status().get("state") == "failed", timeout=30)
    st = run.status()
    assert st.get("crashed") and "died" in st["reason"]
    killed_at = int(run.history()["epoch"].max())
    assert killed_at >= stopped_at + 2

    # resume after the crash: epochs continue, earlier ones are kept as they were
    run.dir.joinpath("config.json")  # unchanged config
    jobs.resume(run, store)
    wait_for(lambda: len(run.history()) >= killed_at + 1, timeout=180)
    jobs.stop(run)
    jobs.wait(run, timeout=60)
    hist = run.history().set_index("epoch")
    epochs = hist.index.tolist()
    assert epochs == list(range(1, len(epochs) + 1))  # no gap, no repeat
    assert hist.loc[before.index, "loss"].tolist() == before.tolist()


def test_queue_trains_in_launch_order_one_at_a_time():
    store = RunStore()
    runs = [jobs.submit(cfg(epochs=1, seed=s), store, start_worker=False)[0] for s in (3, 1, 2)]
    assert [r.id for r in store.queued()] == [r.id for r in runs]
    assert jobs.work(store) == 3
    starts = [r.status()["started"] for r in runs]
    ends = [r.status()["finished"] for r in runs]
    assert starts == sorted(starts)
    assert all(e <= s for e, s in zip(ends, starts[1:]))  # one finished before the next began


def test_double_launch_makes_one_job():
    store = RunStore()
    c = cfg(epochs=1, seed=9)
    results = []

    def launch():
        results.append(store.create(c.run_id(), c.canonical()))

    threads = [threading.Thread(target=launch) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(new for _, new in results) == 1
    assert len(store.list()) == 1


def test_only_one_worker_holds_the_lock():
    store = RunStore()
    lock = jobs._lock(store)
    lock.acquire()
    try:
        assert jobs.worker_running(store)
        assert jobs.work(store) == 0  # a second worker exits at once
    finally:
        lock.release()
    assert not jobs.worker_running(store)


@pytest.mark.parametrize("state", ["done", "running", "queued"])
def test_resume_refuses_runs_that_are_not_stopped(state):
    store = RunStore()
    run, _ = store.create(f"r-{state}", cfg().canonical())
    run.set_status(state=state, pid=os.getpid())
    with pytest.raises(Exception, match="only stopped or failed runs resume"):
        jobs.resume(run, store)
