"""Ray as an executor: each queued run is trained by its own Ray actor, on a local Ray or a
cluster, with the same engine function (:func:`faceml.training.engine.train_run`) and the same
run store as the local worker.

Why a *named detached actor* per run rather than a plain task: a task's ``ObjectRef`` can be
cancelled only by the process that submitted it (its owner), and the task dies with that
process. A detached actor outlives the process that made it (``sweep --no-wait``, a dashboard
that reloads), and any process connected to the cluster finds it by name
(``ray.get_actor(name, namespace)``) and ends it with ``ray.kill``: Ray's documented way to
stop work from another driver. The actor's name, namespace and the cluster's address are kept
in the run's status (``executor``, ``ray_actor``, ``ray_namespace``, ``ray_address``), so the
dashboard's Stop reaches it. The actor trains one run, then exits (``exit_actor``), so Ray
frees its GPU for the next queued actor: Ray is the scheduler, not FaceML.

Ray is an optional dependency (``pip install faceml[scale]``); without it every entry point
here raises one clear :class:`FaceMLError`.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid

from faceml.errors import FaceMLError
from faceml.runs import Run, RunStore

NAMESPACE = "faceml"
INSTALL = "Ray is not installed: install faceml[scale] (ray)"
STOP_GRACE = 10.0
"""Seconds Stop waits for the engine to stop cleanly (the STOP file) before killing the actor."""
_ENV_PREFIXES = ("FACEML_", "KERAS_BACKEND", "TF_CPP_MIN_LOG_LEVEL")
_lock = threading.Lock()


def _ray():
    try:
        import ray
    except ImportError:
        raise FaceMLError(INSTALL) from None
    return ray


def available() -> bool:
    try:
        _ray()
    except FaceMLError:
        return False
    return True


def _probe(address: str, timeout: float = 3.0) -> None:
    """Fail fast (one sentence) when nothing answers at ``address`` (``host:port`` or
    ``ray://host:port``); ``auto`` and ``local`` are left to Ray."""
    if address in ("auto", "local"):
        return
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise FaceMLError(f"not a Ray address: {address!r}; give HOST:PORT (the head node's "
                          "GCS port, e.g. 127.0.0.1:6379) or ray://HOST:10001")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as e:
        why = e.strerror or type(e).__name__
        raise FaceMLError(f"no Ray cluster answers at {address} ({why[:1].lower() + why[1:]}); "
                          "start one with `ray start --head` or check --address") from None


def _current_address(ray) -> str | None:
    try:
        return ray.get_runtime_context().gcs_address
    except Exception:  # noqa: BLE001 - a client connection has no GCS address here
        return None


def connect(address: str | None = None) -> str:
    """Connect this process to Ray (``address`` None: the Ray this process already joined, or
    ``RAY_ADDRESS``, or a new local one); returns the cluster's address. A cluster that does
    not answer raises FaceMLError before anything is queued."""
    ray = _ray()
    with _lock:
        if ray.is_initialized():
            here = _current_address(ray)
            if address in (None, "auto") or address.split("://")[-1] == here:
                return here or address or ""
        if address:
            _probe(address)  # before leaving the Ray this process is on
        if ray.is_initialized():
            ray.shutdown()  # another cluster was asked for
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False,
                     configure_logging=False)
        except (ConnectionError, RuntimeError, ValueError, TimeoutError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise FaceMLError(f"could not connect to Ray at {address or 'a local Ray'}: "
                              f"{first}") from None
        return _current_address(ray) or address or ""


class RunActor:
    """Trains one run in a Ray worker process, then exits (made by :func:`start`)."""

    def __init__(self, env: dict):
        os.environ.update(env)  # before Keras is imported here: its backend, the store

    def train(self, root: str, run_id: str, name: str) -> str:
        import ray

        try:
            run = RunStore(root).get(run_id)
            st = run.status()
            # stopped (or taken by another executor) while this actor waited for a slot
            if st.get("state") != "queued" or st.get("ray_actor") != name:
                return "skipped"
            from faceml import hosting
            from faceml.training.engine import train_run

            hosting.current().yield_to_visitors()  # hosted: the visitors' pages come first
            return str(train_run(run).get("state"))
        finally:
            ray.actor.exit_actor()  # frees its CPU/GPU at once; nobody waits on the result


def _actor_class(ray):
    return ray.remote(RunActor)


def _env() -> dict:
    return {k: v for k, v in os.environ.items()
            if k.startswith(_ENV_PREFIXES) and k != "FACEML_EXECUTOR"}


def start(store: RunStore, runs: list[Run], address: str | None = None) -> list[str]:
    """Give each queued run its own detached Ray actor (one GPU each when the cluster has
    GPUs); returns their names. The actor's name goes into the run's status before the actor
    exists, so the actor knows the run is its own and another process can stop it."""
    ray = _ray()
    cluster = connect(address)
    gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
    actor = _actor_class(ray)
    env = {**_env(), "FACEML_RUNS_DIR": str(store.root)}
    names = []
    for run in runs:
        if run.status().get("state") != "queued":
            continue
        name = f"faceml-{run.id}-{uuid.uuid4().hex[:8]}"
        run.set_status(executor="ray", ray_actor=name, ray_namespace=NAMESPACE,
                       ray_address=cluster, pid=None)
        try:
            handle = actor.options(name=name, namespace=NAMESPACE, lifetime="detached",
                                   num_cpus=1, num_gpus=gpus, max_restarts=0).remote(env)
            handle.train.remote(str(store.root), run.id, name)
        except Exception as e:  # noqa: BLE001 - the run says why instead of staying queued
            run.set_status(state="failed", phase="",
                           reason=f"Ray could not start it: {str(e).splitlines()[0]}")
            continue
        names.append(name)
    return names


def _handle(ray, st: dict):
    try:
        return ray.get_actor(st["ray_actor"], namespace=st.get("ray_namespace", NAMESPACE))
    except (ValueError, KeyError):
        return None  # finished, killed, or never made


def alive(run: Run) -> bool | None:
    """Whether the run's Ray actor still exists (None: not a Ray run, or Ray unreachable)."""
    st = run.status()
    if st.get("executor") != "ray" or not st.get("ray_actor"):
        return None
    try:
        ray = _ray()
        connect(st.get("ray_address") or None)
    except FaceMLError:
        return None
    return _handle(ray, st) is not None


def check(runs: list[Run]) -> None:
    """Mark failed the queued Ray runs whose actor is gone (it died before it could train:
    e.g. its worker could not import faceml); a waiting CLI calls this so it never waits
    forever."""
    for run in runs:
        st = run.status()
        if st.get("state") == "queued" and alive(run) is False:
            run.set_status(state="failed", phase="", reason="its Ray actor ended before "
                           "training started (see the Ray logs); resume queues it again")


def stop(run: Run, grace: float = STOP_GRACE) -> None:
    """Stop a Ray run: the STOP file first (the engine stops cleanly after the batch and keeps
    its last epoch), then, if it has not stopped within ``grace`` s (still preparing data, or
    its worker hangs), ``ray.kill`` of its actor, found by name from any process."""
    st = run.status()
    if st.get("state") == "running":
        run.request_stop()
        t0 = time.monotonic()
        while time.monotonic() - t0 < grace:
            if run.status().get("state") != "running":
                return
            time.sleep(0.2)
    try:
        ray = _ray()
        connect(st.get("ray_address") or None)
    except FaceMLError:
        return  # Ray gone: so is its actor (a running run then shows as crashed)
    handle = _handle(ray, st)
    if handle is not None:
        ray.kill(handle, no_restart=True)
    now = run.status()  # a killed worker's run reads as crashed: it was stopped instead
    if now.get("state") in ("running", "queued") or now.get("crashed"):
        run.set_status(state="stopped", phase="", reason="stopped by the user (its Ray task "
                       "was ended); resume continues from the last saved epoch")
