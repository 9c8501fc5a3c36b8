"""Background training: a queue of runs and one worker process that trains them in order.

The Streamlit app (or the CLI with ``--background``) never trains in its own process: it
creates the run (status ``queued``) and makes sure a worker is running. The worker is a
separate, detached ``python -m faceml worker`` process, so refreshing the page, leaving it or
closing the browser does not stop training. A file lock lets only one worker (so one job on
the GPU) run at a time; it takes queued runs oldest first and exits when none are left.

The store may be at a URL (:mod:`faceml.runs`): the worker reads and writes runs through the
run store's API, Stop is a file in the run's folder (any filesystem), and the lock, the
worker's pid and its log stay on the machine running it (``RunStore.machine_dir``). The lock
holds one worker per machine; workers on two machines sharing one store are not coordinated
by it (a queue for several machines is Ray's job, issue #13's executor).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from filelock import FileLock, Timeout

from faceml import hosting, paths
from faceml.errors import FaceMLError
from faceml.modeling.sizing import model_size
from faceml.runs import Run, RunStore


def _lock(store: RunStore) -> FileLock:
    """One worker per store on this machine. The lock is a local file (in the store's folder,
    or for a store at a URL in this machine's folder for it, ``RunStore.machine_dir``): workers
    on other machines sharing a URL store are not held back by it."""
    store.machine_dir.mkdir(parents=True, exist_ok=True)
    return FileLock(str(store.machine_dir / ".worker.lock"))


def worker_running(store: RunStore | None = None) -> bool:
    store = store or RunStore()
    lock = _lock(store)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return True
    lock.release()
    return False


def submit(config, store: RunStore | None = None, again: bool = False,
           start_worker: bool = True, visitor: str | None = None) -> tuple[Run, bool]:
    """Queue a TrainConfig. Returns ``(run, new)``; an existing run of the same config is
    returned as it is (its cached history), unless ``again`` asks for a fresh repeat.

    ``visitor`` is who launches it (a session's token; :data:`faceml.hosting.OPERATOR` for the
    server's own tools). The hosting policy checks the caps first; when hosted, launching a
    configuration whose run was stopped or crashed queues that run again (it continues from
    its last saved epoch), so a stopped configuration is never a dead end."""
    store = store or RunStore()
    config.validate()
    policy = hosting.current()
    if again:
        config.repeat = 1 + max([r.config.get("repeat", 0) for r in store.list()
                                 if _same_but_repeat(r, config)] + [config.repeat])
    existing = store.exists(config.run_id())
    if existing and policy.hosted:
        run = store.get(config.run_id())
        if run.status().get("state") not in ("stopped", "failed"):
            return run, False  # cached (or already queued): nothing to check or queue
    policy.check_train(config, store, visitor, lambda: model_size(config).total)
    owner = {"owner": hosting.owner_tag(visitor)} if visitor else {}
    if existing and policy.hosted:
        resume(run, store, start_worker=start_worker, **owner)
        return run, True
    run, new = store.create(config.run_id(), config.canonical())
    if new and owner:
        run.set_status(**owner)
    if new and start_worker:
        ensure_worker(store)
    return run, new


def _same_but_repeat(run: Run, config) -> bool:
    try:
        a = dict(run.config)
    except FaceMLError:
        return False
    b = config.canonical()
    a.pop("repeat", None)
    b.pop("repeat", None)
    return a == b


def resume(run: Run, store: RunStore | None = None, start_worker: bool = True,
           **fields) -> None:
    """Queue a stopped or crashed run again; it continues after its last saved epoch."""
    st = run.status()
    if st.get("state") not in ("stopped", "failed"):
        raise FaceMLError(f"run {run.id} is {st.get('state')}; only stopped or failed runs resume")
    run.clear_stop()
    run.set_status(state="queued", queued_at=time.time(), reason="", pid=None, **fields)
    if start_worker:
        ensure_worker(store or run.store)


def stop(run: Run, visitor: str | None = None) -> None:
    """Ask a queued or running run to stop (within one batch); a queued one stops at once.

    When hosted, only the visitor who launched it (or the operator) may stop it."""
    hosting.current().check_stop(run, visitor)
    st = run.status()
    if st.get("state") == "queued":
        run.set_status(state="stopped", reason="stopped before it started")
    elif st.get("state") == "running":
        run.request_stop()


def _holder_alive(store: RunStore) -> bool:
    """Whether the worker that holds the lock is alive (a killed one may still be exiting
    and hold the lock for a moment after its run already shows as crashed)."""
    from faceml.runs import pid_alive

    try:
        return pid_alive(int((store.machine_dir / ".worker.pid").read_text()))
    except (OSError, ValueError):
        return True  # a worker that has not written its pid yet is starting up


def ensure_worker(store: RunStore | None = None) -> int | None:
    """Start a detached worker unless a live one is running; returns its pid (None if one was).

    A new worker waits up to a minute for the lock, so one started while a killed worker is
    still exiting takes over instead of leaving the queue unattended."""
    store = store or RunStore()
    if worker_running(store) and _holder_alive(store):
        return None
    log = open(log_path(store), "ab")
    env = {**os.environ, "FACEML_RUNS_DIR": store.location}
    proc = subprocess.Popen(
        [sys.executable, "-m", "faceml", "worker", "--wait", "60"], cwd=str(paths.PROJECT_ROOT),
        env=env,
        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True)  # outlives the app's process and its session
    log.close()
    return proc.pid


def work(store: RunStore | None = None, once: bool = False, idle_exit: float = 2.0,
         wait: float = 0.0) -> int:
    """The worker loop: hold the lock (waiting up to ``wait`` s for it), train queued runs
    oldest first. Returns the number of runs trained."""
    store = store or RunStore()
    lock = _lock(store)
    try:
        lock.acquire(timeout=wait)
    except Timeout:
        return 0
    from faceml.io import write_text_atomic
    from faceml.training.engine import train_run

    write_text_atomic(store.machine_dir / ".worker.pid", str(os.getpid()))
    n = 0
    gave_up: set[str] = set()  # runs this worker could not even mark: never retried forever
    try:
        idle_since = time.monotonic()
        while True:
            queued = [r for r in store.queued() if r.id not in gave_up]
            if not queued:
                if time.monotonic() - idle_since > idle_exit:
                    return n
                time.sleep(0.2)
                continue
            run = queued[0]
            print(f"[worker {os.getpid()}] training {run.id}", flush=True)
            try:
                train_run(run)
            except Exception as e:  # noqa: BLE001 - one run's failure never stops the queue
                print(f"[worker {os.getpid()}] run {run.id} failed: {e!r}", flush=True)
                gave_up.add(run.id)
                try:
                    run.set_status(state="failed", reason=f"the worker could not train it: {e}",
                                   phase="")
                except Exception:  # noqa: BLE001 - e.g. the disk is full: leave it, go on
                    pass
            n += 1
            idle_since = time.monotonic()
            if once:
                return n
    finally:
        lock.release()


def wait(run: Run, timeout: float = 600, poll: float = 0.5) -> dict:
    """Block until a run finishes (for the CLI and tests)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        st = run.status()
        if st.get("state") in ("done", "failed", "stopped"):
            return st
        time.sleep(poll)
    raise TimeoutError(f"run {run.id} did not finish within {timeout:.0f} s")


def log_path(store: RunStore | None = None) -> Path:
    """The worker's output on this machine (``RunStore.machine_dir``)."""
    return (store or RunStore()).machine_dir / "worker.log"
