"""The hosting policy: what a stranger on a hosted copy may do, enforced by the library itself."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from faceml import data, hosting
from faceml.training import jobs
from faceml.hosting import OPERATOR, PolicyError
from faceml.data.prepare import PrepOptions, labels_for, prepare
from faceml.runs import RunStore
from faceml.config import TrainConfig
from tests.fixtures_formats import make_folder, make_utkface

ROOT = Path(__file__).resolve().parents[1]
HUGE = {"conv_blocks": [{"filters": 2048, "kernel": 3, "padding": "same", "batchnorm": True,
                         "pool": 0, "dropout": 0, "activation": "relu"}] * 6,
        "dense": [{"units": 65536, "activation": "relu", "dropout": 0}], "global_pool": False}


@pytest.fixture
def server(tmp_path, monkeypatch):
    """A hosted server whose operator allows synthetic and one UTKFace folder, nothing else."""
    utk = make_utkface(tmp_path / "srv" / "utkface", n=12)
    secret = make_folder(tmp_path / "private" / "celebs", n=3)
    cfg = tmp_path / "hosting.toml"
    cfg.write_text(f'[datasets]\nsynthetic = ""\nutkface = "{utk}"\n\n'
                   "[caps]\nepochs = 3\nfaces = 300\nparams = 2000000\njobs_per_visitor = 1\n"
                   "queue = 3\n")
    monkeypatch.setenv("FACEML_HOSTED", "1")
    monkeypatch.setenv("FACEML_HOSTING_CONFIG", str(cfg))
    monkeypatch.setenv("FACEML_SHARED_DATA", str(tmp_path / "empty"))
    return {"utkface": utk, "secret": secret, "root": tmp_path}


def small(**kw) -> TrainConfig:
    d = dict(data=PrepOptions(dataset="synthetic", dataset_options={"n": 160}, size=16,
                              color="gray"),
             arch="small_cnn", heads=["eyewear"], epochs=2, batch_size=32)
    d.update(kw)
    return TrainConfig(**d)


# --- the policy object ------------------------------------------------------------------------
def test_not_hosted_allows_everything(monkeypatch):
    monkeypatch.delenv("FACEML_HOSTED", raising=False)
    p = hosting.current()
    assert not p.hosted and p.typed_paths and p.sweeps and p.train_again
    assert p.dataset_names() == data.names()
    assert p.dataset_path("folder", "/anywhere") == "/anywhere"


def test_hosted_without_config_offers_synthetic_and_datasets_at_their_default_place(
        monkeypatch, tmp_path):
    monkeypatch.setenv("FACEML_HOSTED", "1")
    monkeypatch.delenv("FACEML_HOSTING_CONFIG", raising=False)
    monkeypatch.setenv("FACEML_SHARED_DATA", str(tmp_path))
    make_utkface(tmp_path / "utkface", n=6)
    p = hosting.current()
    assert p.hosted and not p.typed_paths and not p.sweeps
    # (other tests register in-memory adapters named "_…": built in, so offered too)
    assert [n for n in p.dataset_names() if not n.startswith("_")] == ["synthetic", "utkface"]
    assert "folder" not in p.datasets  # no default place: never offered without a config


def test_operator_config_sets_allow_list_and_caps(server):
    p = hosting.current()
    assert p.dataset_names() == ["synthetic", "utkface"]
    assert (p.caps.epochs, p.caps.faces, p.caps.params, p.caps.queue) == (3, 300, 2_000_000, 3)
    assert p.dataset_path("utkface", None) == str(server["utkface"])
    # the operator's own path, typed again, is the same dataset
    assert p.dataset_path("utkface", str(server["utkface"])) == str(server["utkface"])


@pytest.mark.parametrize("text, why", [("[caps]\nepochs = 0\n", "epochs"),
                                       ("[caps]\nspeed = 3\n", "speed"),
                                       ("[caps\n", "not valid TOML"),
                                       ("[training]\nnice = 25\n", "nice")])
def test_a_bad_operator_config_is_one_clear_line(monkeypatch, tmp_path, text, why):
    cfg = tmp_path / "hosting.toml"
    cfg.write_text(text)
    monkeypatch.setenv("FACEML_HOSTED", "1")
    monkeypatch.setenv("FACEML_HOSTING_CONFIG", str(cfg))
    with pytest.raises(hosting.FaceMLError, match=why):
        hosting.current()


NICENESS = "import os; from faceml import hosting; " \
           "print(os.nice(0), hosting.current().yield_to_visitors(), os.nice(0))"


@pytest.mark.parametrize("hosted, config, target", [("1", "", 10),
                                                    ("1", "[training]\nnice = 4\n", 4),
                                                    ("", "[training]\nnice = 4\n", 0)])
def test_hosted_training_processes_yield_the_cpu_to_the_visitors(tmp_path, hosted, config,
                                                                  target):
    """A hosted training process (worker, CLI train) lowers its own priority, so visitors'
    uploads are served first; the web server and a local copy keep theirs. (Run in a child
    process: a niceness cannot be raised back.)"""
    cfg = tmp_path / "hosting.toml"
    cfg.write_text(config)
    env = {**os.environ, "FACEML_HOSTED": hosted, "FACEML_HOSTING_CONFIG": str(cfg)}
    out = subprocess.run([sys.executable, "-c", NICENESS], env=env, cwd=ROOT, text=True,
                         capture_output=True, check=True)
    before, said, after = map(int, out.stdout.split())
    assert said == after == max(before, target), out.stdout


# --- no reading of the server's disk ------------------------------------------------------------
@pytest.mark.parametrize("name, path", [("folder", "/etc"), ("folder", "SECRET"),
                                        ("utkface", "/etc"), ("utkface", "SECRET"),
                                        ("celeba", None), ("fairface", None)])
def test_the_library_refuses_any_dataset_or_path_off_the_allow_list(server, name, path):
    path = str(server["secret"]) if path == "SECRET" else path
    opts = PrepOptions(dataset=name, path=path, size=16)
    for call in (lambda: prepare(opts), lambda: labels_for(opts),
                 lambda: data.get(name).scan(path), lambda: data.get(name).found(path)):
        with pytest.raises(PolicyError) as e:
            call()
        msg = str(e.value)
        assert "/etc" not in msg and str(server["root"]) not in msg
    # a probe of an existing folder and of a missing one read the same: nothing to learn
    msgs = {str(pytest.raises(PolicyError, prepare, PrepOptions(dataset=name, path=p)).value)
            for p in ("/etc", "/no/such/folder")}
    assert len(msgs) == 1


def test_allowed_dataset_loads_and_its_errors_name_no_server_path(server):
    prep = prepare(PrepOptions(dataset="utkface", size=16))
    assert len(prep.frame) == 12
    assert prep.options.path is None  # nothing of the server's layout in the run's config
    for f in server["utkface"].iterdir():
        f.unlink()
    with pytest.raises(hosting.FaceMLError) as e:
        prepare(PrepOptions(dataset="utkface", size=16, seed=1))
    assert str(server["utkface"]) not in str(e.value) and "<utkface>" in str(e.value)


def test_hosted_prepare_samples_down_to_the_face_cap_and_says_so(server):
    prep = prepare(PrepOptions(dataset="synthetic", dataset_options={"n": 1000}, size=16))
    assert len(prep.frame) == 300
    assert any("at most 300 faces" in w for w in prep.warnings)


def test_cli_on_a_hosted_server_refuses_paths_without_echoing_them(server):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "faceml", "prepare", "folder", "--path", "/etc"],
                         cwd=ROOT, capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 2
    assert out.stderr.startswith("error: ") and "/etc" not in out.stderr
    out = subprocess.run([sys.executable, "-m", "faceml", "datasets", "--json"], cwd=ROOT,
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert [r["name"] for r in __import__("json").loads(out.stdout)] == ["synthetic", "utkface"]


# --- caps -------------------------------------------------------------------------------------
def test_caps_are_checked_before_anything_is_built_or_queued(server):
    store = RunStore()
    cases = [(small(epochs=4), "at most 3 epochs"),
             (small(data=PrepOptions(dataset="synthetic", dataset_options={"n": 5000})),
              "at most 300 faces"),
             (small(data=PrepOptions(dataset="folder", path=str(server["secret"]))),
              "not offered"),
             (small(repeat=1), "again is off")]
    for cfg, why in cases:
        with pytest.raises(PolicyError, match=why):
            jobs.submit(cfg, store, start_worker=False, visitor="a")
    assert store.list() == []


def test_a_huge_model_is_refused_in_milliseconds_and_no_memory(server):
    cfg = small(arch="custom", arch_params=HUGE, heads=["eyewear"])
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(PolicyError, match=r"has \d{2,},\d{3},\d{3},\d{3} parameters"):
        jobs.submit(cfg, RunStore(), start_worker=False, visitor="a")
    # 35 billion float32 weights would be 140 GB; the peak grew by far less than one layer's
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0 < 300_000  # KiB
    assert RunStore().list() == []


def test_jobs_per_visitor_and_queue_length(server):
    store = RunStore()
    a, _ = jobs.submit(small(seed=1), store, start_worker=False, visitor="alice")
    with pytest.raises(PolicyError, match="you already have 1 run"):
        jobs.submit(small(seed=2), store, start_worker=False, visitor="alice")
    jobs.submit(small(seed=3), store, start_worker=False, visitor="bob")
    jobs.submit(small(seed=4), store, start_worker=False, visitor="carol")
    with pytest.raises(PolicyError, match="queue is full"):
        jobs.submit(small(seed=5), store, start_worker=False, visitor="dave")
    # a cached configuration is shown, not refused, even when the queue is full
    again, new = jobs.submit(small(seed=1), store, start_worker=False, visitor="dave")
    assert (again.id, new) == (a.id, False)
    # the owner is stored as a hash: the token itself is never written
    assert "alice" not in (a.dir / "status.json").read_text()


# --- who may stop what -------------------------------------------------------------------------
def test_only_the_launcher_stops_a_hosted_run_and_a_stopped_config_relaunches(server):
    store = RunStore()
    run, _ = jobs.submit(small(), store, start_worker=False, visitor="alice")
    with pytest.raises(PolicyError, match="another visitor"):
        jobs.stop(run, "bob")
    with pytest.raises(PolicyError):
        jobs.stop(run, None)  # a page that forgot to say who asks is refused too
    assert run.status()["state"] == "queued"
    jobs.stop(run, "alice")
    assert run.status()["state"] == "stopped"
    # no dead end: bob launches the same configuration; it is queued again, now his
    again, new = jobs.submit(small(), store, start_worker=False, visitor="bob")
    assert (again.id, new) == (run.id, True)
    assert run.status()["state"] == "queued"
    assert hosting.current().may_stop(run, "bob") and not hosting.current().may_stop(run, "alice")
    jobs.stop(run, OPERATOR)  # the server's own CLI may stop anything
    assert run.status()["state"] == "stopped"


def test_not_hosted_anyone_may_stop(monkeypatch):
    monkeypatch.delenv("FACEML_HOSTED", raising=False)
    run, _ = jobs.submit(small(), RunStore(), start_worker=False)
    jobs.stop(run)
    assert run.status()["state"] == "stopped"


def test_sizing_in_concurrent_sessions_never_allocates_weights():
    """Streamlit runs visitors' scripts in threads: one visitor's sizing must not end another's
    deferred-weights scope (keras.backend.clear_session() would, for every thread)."""
    from concurrent.futures import ThreadPoolExecutor

    from faceml.modeling.sizing import model_size

    cfg = small(arch="custom", arch_params=HUGE, heads=["eyewear"])
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with ThreadPoolExecutor(4) as ex:
        totals = set(ex.map(lambda _: model_size(cfg).total, range(12)))
    assert len(totals) == 1 and totals.pop() > 10**10
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0 < 300_000  # KiB


def test_a_model_that_cannot_be_built_is_a_config_error():
    from faceml.errors import ConfigError
    from faceml.modeling.sizing import model_size

    bad = {"conv_blocks": [{"filters": 8, "kernel": 9, "padding": "valid", "batchnorm": False,
                            "pool": 0, "dropout": 0, "activation": "relu"}] * 3,
           "dense": [], "global_pool": True}
    with pytest.raises(ConfigError):
        model_size(small(arch="custom", arch_params=bad))


def test_a_run_whose_training_raises_fails_alone_and_the_worker_goes_on(monkeypatch):
    """Even a run whose status cannot be written (disk full) never stalls the queue."""
    from faceml.training import engine as training

    monkeypatch.delenv("FACEML_HOSTED", raising=False)
    store = RunStore()
    bad, _ = jobs.submit(small(seed=1), store, start_worker=False)
    good, _ = jobs.submit(small(seed=2), store, start_worker=False)
    trained = []

    def fake(run, **kw):
        trained.append(run.id)
        if run.id == bad.id:
            raise OSError(28, "No space left on device")
        run.set_status(state="done")

    monkeypatch.setattr(training, "train_run", fake)
    assert jobs.work(store, idle_exit=0.3) == 2  # runs taken from the queue
    assert trained == [bad.id, good.id]
    assert bad.status()["state"] == "failed" and "No space left" in bad.status()["reason"]
    assert good.status()["state"] == "done"
