"""The run store at an fsspec URL (issue #13): the same run-store tests on a local folder, a
``file://`` URL and a local S3 (moto's server on 127.0.0.1), whole writes for a reader while
a writer is interrupted, a training run whose store is S3 read back by a fresh store, and the
messages for a scheme without a driver and for missing credentials."""

from __future__ import annotations

import json
import os
import re
import tomllib
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from faceml.config import TrainConfig
from faceml.data.heads import HeadSpec
from faceml.data.prepare import PrepOptions
from faceml.errors import FaceMLError
from faceml.runs import Run, RunStore
from faceml.storage import StorageError

ROOT = Path(__file__).resolve().parents[1]
S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
          "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}


@pytest.fixture(scope="module")
def s3_endpoint():
    server_mod = pytest.importorskip("moto.server", reason="moto[server] (requirements-dev.txt)")
    pytest.importorskip("s3fs", reason="s3fs (the scale extra)")
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def _s3(monkeypatch, endpoint: str) -> str:
    """A fresh bucket on the local S3; the store's URL (credentials and endpoint in the
    environment, as a worker on another machine would have them)."""
    import fsspec

    for k, v in S3_ENV.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("FACEML_RUNS_STORAGE_OPTIONS", json.dumps({"endpoint_url": endpoint}))
    bucket = f"faceml-{uuid.uuid4().hex[:10]}"
    fsspec.filesystem("s3", endpoint_url=endpoint).mkdir(bucket)
    return f"s3://{bucket}/runs"


@pytest.fixture(params=["local", "file", "s3"])
def store_url(request, tmp_path, monkeypatch) -> str:
    """FACEML_RUNS_DIR as a local path, a file:// URL, and an s3:// URL on a local S3."""
    if request.param == "local":
        url = str(tmp_path / "runs")
    elif request.param == "file":
        pytest.importorskip("fsspec")
        url = f"file://{tmp_path}/runs"
    else:
        url = _s3(monkeypatch, request.getfixturevalue("s3_endpoint"))
    monkeypatch.setenv("FACEML_RUNS_DIR", url)
    return url


@pytest.fixture
def s3_url(s3_endpoint, monkeypatch) -> str:
    url = _s3(monkeypatch, s3_endpoint)
    monkeypatch.setenv("FACEML_RUNS_DIR", url)
    return url


def tiny(**kw) -> TrainConfig:
    data = PrepOptions(dataset="synthetic", dataset_options={"n": 96}, size=16, color="gray")
    base = dict(data=data, arch="small_cnn", heads=["eyewear"], epochs=1, batch_size=32)
    base.update(kw)
    return TrainConfig(**base)


def small_model(seed: float):
    import keras

    inp = keras.Input((3,))
    model = keras.Model(inp, keras.layers.Dense(2, name="out")(inp))
    model.get_layer("out").set_weights([np.full((3, 2), seed, "float32"),
                                        np.zeros(2, "float32")])
    return model


def weight(model) -> float:
    return float(model.get_layer("out").get_weights()[0][0, 0])


# -- the same run-store tests on every kind of location ------------------------------------------

def test_run_store_round_trip(store_url):
    store = RunStore()
    assert store.location == store_url.rstrip("/")
    assert store.remote == ("://" in store_url)
    cfg = tiny()
    run, new = store.create(cfg.run_id(), cfg.canonical())
    again, new2 = store.create(cfg.run_id(), cfg.canonical())
    assert new and not new2 and again == run
    assert store.exists(run.id) and not store.exists("nope")
    assert store.get(run.id).config == cfg.canonical() and run.train_config().run_id() == run.id
    with pytest.raises(FaceMLError, match="no run 'nope'"):
        store.get("nope")
    assert run.state == "queued" and run.history().empty and run.metrics() == {}

    # status: a running run of this machine's live process is running; its host is recorded
    run.set_status(state="running", pid=os.getpid(), epoch=1)
    st = store.get(run.id).status()
    assert st["state"] == "running" and st["epoch"] == 1 and st["host"]

    # history
    run.append_history({"epoch": 1, "loss": 1.0, "val_loss": 0.9, "seconds": 2.0})
    run.append_history({"epoch": 2, "loss": 0.5, "val_loss": 0.7, "seconds": 4.0})
    run.append_history({"epoch": 2, "loss": 0.4, "val_loss": 0.6, "seconds": 4.0})  # replaced
    assert store.get(run.id).history()["loss"].tolist() == [1.0, 0.4]
    run.truncate_history(1)
    assert store.get(run.id).history()["epoch"].tolist() == [1]

    # results: metrics, heads, predictions with class names kept as text
    heads = [HeadSpec("digit", "binary", ["1", "2"])]
    frame = pd.DataFrame({"source": ["007", "010"], "split": ["val", "test"],
                          "digit_true": ["1", "2"], "digit_pred": ["2", "2"],
                          "digit_p_2": [0.7, 0.9]})
    assert not run.has_predictions() and run.predictions_version() is None
    run.write_results(frame, {"test": {"n": 1, "accuracy": 0.5}}, heads)
    fresh = store.get(run.id)
    assert fresh.heads() == heads and fresh.metrics()["test"]["n"] == 1
    got = fresh.predictions()
    assert list(got["digit_true"]) == ["1", "2"] and list(got["source"]) == ["007", "010"]
    v1 = fresh.predictions_version()
    run.write_results(frame.iloc[:1], {"test": {"n": 1}}, heads)
    assert fresh.predictions_version() != v1 and len(fresh.predictions()) == 1

    # checkpoints: saved through a local file, committed with the epoch's row, loaded back
    assert run.saved_checkpoint() is None and not run.has_checkpoint("last")
    run.commit_epoch(small_model(1.0), {"epoch": 2, "loss": 0.3, "val_loss": 0.5}, best=True)
    best_v = run.checkpoint_version("best")
    assert run.saved_checkpoint() == "best" and run.has_checkpoint("last")
    run.commit_epoch(small_model(2.0), {"epoch": 3, "loss": 0.2, "val_loss": 0.8}, best=False)
    reader = RunStore(store_url).get(run.id)
    assert reader.history()["epoch"].tolist() == [1, 2, 3]
    assert "time" in reader.history()
    assert weight(reader.load_model("best")) == 1.0
    assert weight(reader.load_model("last")) == 2.0
    assert reader.checkpoint_version("best") == best_v != reader.checkpoint_version("last")
    assert reader.checkpoint("last").is_file()  # a local file (a cached copy for a URL)
    if store.remote:  # the replaced epoch-2 'last' object is gone: one object per checkpoint
        objects = [n for n in run.folder.names() if n.endswith(".keras")]
        assert len(objects) == 2, objects

    # stop requests are a file in the run's folder
    run.request_stop()
    assert store.get(run.id).stop_requested()
    run.clear_stop()
    assert not store.get(run.id).stop_requested()

    # the store's queries
    other, _ = store.create(tiny(seed=3).run_id(), tiny(seed=3).canonical())
    fresh_store = RunStore(store_url)
    assert [r.id for r in fresh_store.list()] == [run.id, other.id]
    assert [r.id for r in fresh_store.find(kind="classifier", state="running")] == [run.id]
    assert [r.id for r in fresh_store.queued()] == [other.id]
    assert other.store.location == fresh_store.location
    row = fresh_store.get(run.id).summary()
    assert row["state"] == "running" and row["epochs_done"] == 3 and row["test_n"] == 1
    assert list(fresh_store.table()["run_id"]) == [run.id, other.id]

    # the store's own records (sweeps)
    fresh_store.write_record("sweeps", "s1", {"id": "s1"})
    assert RunStore(store_url).records_of("sweeps") == [{"id": "s1"}]


def test_a_worker_on_another_machine_is_judged_by_its_last_update(store_url):
    store = RunStore()
    run, _ = store.create(tiny().run_id(), tiny().canonical())
    run.set_status(state="running", pid=1, host="gpu-box-7")  # pid 1 is alive here: no matter
    assert run.status()["state"] == "running"  # updated just now
    st = run.status()  # set_status stamps 'updated' itself: an old one is written by hand
    run._write_json("status.json", {**st, "updated": 1.0})
    st = run.status()
    assert st["state"] == "failed" and st.get("crashed")


# -- whole writes --------------------------------------------------------------------------------

def test_a_reader_never_sees_half_a_history(s3_url, monkeypatch):
    """A writer interrupted before its commit marker (history.json): the reader sees the
    previous epoch whole, history and checkpoints agreeing; the next commit removes the
    interrupted writer's upload."""
    store = RunStore()
    run, _ = store.create(tiny().run_id(), tiny().canonical())
    run.commit_epoch(small_model(1.0), {"epoch": 1, "loss": 1.0}, best=True)

    real_write = type(run.folder).write_bytes

    def killed(self, name, data):
        if name == "history.json":
            raise KeyboardInterrupt  # the worker is killed between upload and commit
        return real_write(self, name, data)

    monkeypatch.setattr(type(run.folder), "write_bytes", killed)
    with pytest.raises(KeyboardInterrupt):
        run.commit_epoch(small_model(5.0), {"epoch": 2, "loss": 0.5}, best=True)
    monkeypatch.setattr(type(run.folder), "write_bytes", real_write)
    uploaded = [n for n in run.folder.names() if n.endswith(".keras")]
    assert len(uploaded) == 4  # epoch 1's two, and the interrupted epoch's two, uncommitted

    reader = RunStore().get(run.id)
    assert reader.history()["epoch"].tolist() == [1]
    assert weight(reader.load_model("last")) == 1.0 == weight(reader.load_model("best"))

    run.commit_epoch(small_model(3.0), {"epoch": 2, "loss": 0.4}, best=False)
    assert len([n for n in run.folder.names() if n.endswith(".keras")]) == 2
    assert RunStore().get(run.id).history()["epoch"].tolist() == [1, 2]


def test_file_url_writes_leave_no_temporary_files(tmp_path, monkeypatch):
    pytest.importorskip("fsspec")
    monkeypatch.setenv("FACEML_RUNS_DIR", f"file://{tmp_path}/runs")
    run, _ = RunStore().create(tiny().run_id(), tiny().canonical())
    run.append_history({"epoch": 1, "loss": 1.0})
    run.commit_epoch(small_model(1.0), {"epoch": 2, "loss": 0.5}, best=True)
    files = sorted(p.name for p in (tmp_path / "runs" / run.id).iterdir())
    assert not [f for f in files if f.startswith(".")], files
    assert "history.json" in files and "status.json" in files


# -- training with the store on S3 ---------------------------------------------------------------

def test_training_into_s3_is_read_back_by_a_fresh_store(s3_url):
    from faceml.training.engine import train_run

    cfg = tiny()
    run, _ = RunStore().create(cfg.run_id(), cfg.canonical())
    st = train_run(run)
    assert st["state"] == "done", st
    back = RunStore(s3_url).get(cfg.run_id())  # another process or machine: the same URL
    assert back.state == "done" and back.history()["epoch"].tolist() == [1]
    assert back.saved_checkpoint() == "best" and back.status()["results"]["checkpoint"] == "best"
    assert set(back.predictions()["split"]) == {"val", "test"}
    assert 0 <= back.metrics()["test"]["heads"]["eyewear"]["accuracy"] <= 1
    assert back.load_model().output_names == ["eyewear"]
    assert RunStore(s3_url).table().loc[0, "state"] == "done"


def test_a_background_worker_trains_into_s3(s3_url):
    """The CLI's worker, in its own process, with the store at the URL (its lock on this
    machine), then the run read back here."""
    from faceml.training import jobs

    store = RunStore()
    run, new = jobs.submit(tiny(seed=11), store)
    assert new
    st = jobs.wait(run, timeout=300)
    assert st["state"] == "done", (st, jobs.log_path(store).read_text()[-2000:])
    assert jobs.log_path(store).parent == store.machine_dir and store.machine_dir.is_dir()
    assert RunStore(s3_url).get(run.id).history()["epoch"].tolist() == [1]


# -- bad input -----------------------------------------------------------------------------------

def test_a_scheme_without_a_driver_names_the_package(monkeypatch):
    registry = pytest.importorskip("fsspec.registry")

    monkeypatch.setitem(registry.known_implementations, "fmltest",
                        {"class": "faceml_no_such_driver.FS",
                         "err": "Install faceml-no-such-driver to access fmltest"})
    with pytest.raises(StorageError, match="faceml-no-such-driver"):
        RunStore("fmltest://bucket/runs")
    with pytest.raises(StorageError, match="no fsspec driver knows the scheme nope://"):
        RunStore("nope://bucket/runs")


def test_a_missing_driver_for_a_known_scheme_says_pip_install_the_extra(monkeypatch):
    import builtins

    registry = pytest.importorskip("fsspec.registry")

    real_import = builtins.__import__

    def no_gcsfs(name, *a, **k):
        if name.split(".")[0] == "gcsfs":
            raise ImportError("No module named 'gcsfs'")
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_gcsfs)
    monkeypatch.delitem(registry._registry, "gs", raising=False)
    monkeypatch.delitem(registry._registry, "gcs", raising=False)
    with pytest.raises(StorageError) as e:
        RunStore("gs://bucket/runs")
    assert "pip install .[scale] (or pip install gcsfs)" in str(e.value)


def test_no_fsspec_at_all_says_what_to_install(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_fsspec(name, *a, **k):
        if name.split(".")[0] == "fsspec":
            raise ImportError("No module named 'fsspec'")
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_fsspec)
    with pytest.raises(StorageError, match=re.escape("pip install .[scale] "
                                                     "(or pip install fsspec s3fs)")):
        RunStore("s3://bucket/runs")
    assert RunStore(str(Path("/tmp") / "runs")).folder.remote is False  # a path needs none


def test_missing_credentials_give_the_drivers_message_in_one_line(s3_endpoint, monkeypatch,
                                                                   tmp_path):
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("FACEML_RUNS_STORAGE_OPTIONS",
                       json.dumps({"endpoint_url": s3_endpoint, "skip_instance_cache": True}))
    store = RunStore("s3://faceml-nobody/runs")
    with pytest.raises(StorageError) as e:
        store.list()
    msg = str(e.value)
    assert msg == "the run store s3://faceml-nobody/runs: Unable to locate credentials"


def test_cli_says_a_bad_store_in_one_line(monkeypatch, capsys):
    pytest.importorskip("fsspec")
    from faceml.cli import main

    monkeypatch.setenv("FACEML_RUNS_DIR", "nope://bucket/runs")
    assert main(["runs"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: the run store nope://bucket/runs: no fsspec driver")
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_bad_storage_options_are_named(monkeypatch):
    pytest.importorskip("fsspec")
    monkeypatch.setenv("FACEML_RUNS_STORAGE_OPTIONS", "{endpoint")
    with pytest.raises(StorageError, match="FACEML_RUNS_STORAGE_OPTIONS is not JSON"):
        RunStore("memory://runs")


# -- the optional dependencies -------------------------------------------------------------------

def _pins(lines) -> dict[str, str]:
    out = {}
    for line in lines:
        m = re.match(r"^\s*([A-Za-z0-9_.-]+)(\[[^\]]*\])?==([^\s;#]+)", line)
        if m:
            out[m.group(1).lower()] = m.group(3)
    return out


def test_the_scale_extra_is_pinned_and_installed_for_the_tests():
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]["scale"]
    pinned = _pins(extra)
    assert {"fsspec", "s3fs"} <= set(pinned) and len(pinned) == len(extra)
    dev = _pins((ROOT / "requirements-dev.txt").read_text().splitlines())
    assert {k: dev.get(k) for k in pinned} == pinned  # the tests install the same versions
    assert "moto" in dev


def test_a_local_store_never_imports_fsspec():
    import subprocess
    import sys

    code = ("import sys; from faceml.runs import RunStore; s = RunStore('/tmp/x-runs'); "
            "s.list(); print('fsspec' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert out.stdout.strip() == "False", out.stderr[-2000:]


def test_a_run_at_a_url_has_no_local_folder(s3_url):
    run, _ = RunStore().create(tiny().run_id(), tiny().canonical())
    with pytest.raises(FaceMLError, match="not in a local folder"):
        run.dir
    assert Run(run.where) == run and Run(run.where).config == tiny().canonical()
