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

That worker is the ``local`` executor, the default. ``FACEML_EXECUTOR=ray`` (or a caller's
``executor="ray"``: the CLI's ``--backend ray``) hands queued runs to Ray instead
(:mod:`faceml.training.ray_executor`, one actor per run on ``FACEML_RAY_ADDRESS`` or a local
Ray). Either way the run is created the same way (its id is its config's hash, a known one is
reused) and trained by the same engine into the same run store; a run's status says which
executor has it (``executor``), so Stop reaches it from any process.
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


EXECUTORS = ("local", "ray")


class Executor:
    """Where queued runs are trained. ``ready`` connects (before any run is queued, so a
    cluster that does not answer queues nothing); ``start`` hands it queued runs."""

    name = "local"
    detached = True
    """Whether its runs go on after the calling process exits."""

    def ready(self) -> None:
        pass

    def start(self, store: RunStore, runs: list[Run]) -> None:
        if any(r.status().get("state") == "queued" for r in runs):
            ensure_worker(store)


class RayExecutor(Executor):
    name = "ray"

    def __init__(self, address: str | None = None):
        from faceml.training import ray_executor

        self._ray = ray_executor
        if not ray_executor.available():
            raise FaceMLError(ray_executor.INSTALL)
        self.address = address or os.environ.get("FACEML_RAY_ADDRESS") or None
        # a Ray this process starts itself ends with it; a cluster's actors outlive it
        self.detached = bool(self.address or os.environ.get("RAY_ADDRESS"))

    def ready(self) -> None:
        self._ray.connect(self.address)

    def start(self, store: RunStore, runs: list[Run]) -> None:
        self._ray.start(store, runs, self.address)


def get_executor(name: "str | Executor | None" = None, address: str | None = None) -> Executor:
    """The executor called ``name`` (default ``FACEML_EXECUTOR``, else ``local``); ``address``
    is a Ray cluster's (default ``FACEML_RAY_ADDRESS``, else a local Ray)."""
    if isinstance(name, Executor):
        return name
    name = (name or os.environ.get("FACEML_EXECUTOR") or "local").strip().lower()
    if name == "local":
        return Executor()
    if name == "ray":
        return RayExecutor(address)
    raise FaceMLError(f"unknown executor {name!r}; choose one of {', '.join(EXECUTORS)} "
                      "(FACEML_EXECUTOR, --backend)")


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
           start_worker: bool = True, visitor: str | None = None,
           executor: "str | Executor | None" = None) -> tuple[Run, bool]:
    """Queue a TrainConfig. Returns ``(run, new)``; an existing run of the same config is
    returned as it is (its cached history), unless ``again`` asks for a fresh repeat.

    ``visitor`` is who launches it (a session's token; :data:`faceml.hosting.OPERATOR` for the
    server's own tools). The hosting policy checks the caps first; when hosted, launching a
    configuration whose run was stopped or crashed queues that run again (it continues from
    its last saved epoch), so a stopped configuration is never a dead end.

    ``executor`` (a name or an :class:`Executor`; default ``FACEML_EXECUTOR``) trains it when
    ``start_worker``; it is made ready before the run is created, so an executor that cannot
    start (Ray not installed, a cluster that does not answer) leaves nothing queued."""
    store = store or RunStore()
    config.validate()
    ex = get_executor(executor) if start_worker else None
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
    if ex is not None and not existing:
        ex.ready()  # before anything is queued (a hosted resume readies it too)
    if existing and policy.hosted:
        resume(run, store, start_worker=start_worker, executor=ex, **owner)
        return run, True
    run, new = store.create(config.run_id(), config.canonical())
    if new and owner:
        run.set_status(**owner)
    if new and ex is not None:
        ex.start(store, [run])
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
           executor: "str | Executor | None" = None, **fields) -> None:
    """Queue a stopped or crashed run again (on ``executor``, default ``FACEML_EXECUTOR``);
    it continues after its last saved epoch."""
    st = run.status()
    if st.get("state") not in ("stopped", "failed"):
        raise FaceMLError(f"run {run.id} is {st.get('state')}; only stopped or failed runs resume")
    ex = get_executor(executor) if start_worker else None
    if ex is not None:
        ex.ready()  # a cluster that does not answer leaves the run as it was
    run.clear_stop()
    run.set_status(state="queued", queued_at=time.time(), reason="", pid=None,
                   executor=ex.name if ex is not None else "local", **fields)
    if ex is not None:
        ex.start(store or run.store, [run])


def stop(run: Run, visitor: str | None = None) -> None:
    """Ask a queued or running run to stop (within one batch); a queued one stops at once.

    When hosted, only the visitor who launched it (or the operator) may stop it."""
    hosting.current().check_stop(run, visitor)
    st = run.status()
    if st.get("state") == "queued":
        run.set_status(state="stopped", reason="stopped before it started")
    elif st.get("state") == "running" and st.get("executor") != "ray":
        run.request_stop()
    if st.get("executor") == "ray" and st.get("state") in ("queued", "running"):
        from faceml.training import ray_executor

        ray_executor.stop(run)  # the STOP file, then its actor ended (from any process)


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
            queued = [r for r in store.queued() if r.id not in gave_up
                      and r.status().get("executor", "local") == "local"]  # not Ray's
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
