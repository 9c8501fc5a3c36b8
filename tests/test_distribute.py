"""`train --distribute`: Keras's DataParallel under JAX, tested on a virtual 2-device CPU mesh
(XLA's host platform device count) in a subprocess; bad input exits 2 with one line."""

import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import keras
import pytest

from faceml.cli import main
from faceml.runs import RunStore

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["train", "--dataset", "synthetic", "--dataset-option", "n=121", "--size", "16",
        "--arch", "small_cnn", "--heads", "eyewear", "--epochs", "1"]


@pytest.mark.skipif(keras.backend.backend() == "jax", reason="checks a non-JAX backend")
def test_distribute_needs_jax_and_queues_nothing(capsys):
    code = main([*TINY, "--distribute"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip().splitlines() == [
        f"error: --distribute needs KERAS_BACKEND=jax (this process uses "
        f"{keras.backend.backend()})"]
    assert RunStore().list() == []


@pytest.mark.skipif(keras.backend.backend() == "jax", reason="checks a non-JAX backend")
def test_faceml_distribute_in_a_workers_env_fails_the_run_plainly(monkeypatch):
    from faceml.config import TrainConfig
    from faceml.training.engine import train_run

    cfg = TrainConfig.from_dict({"data": {"dataset": "synthetic",
                                          "dataset_options": {"n": 120}, "size": 16},
                                 "arch": "small_cnn", "heads": ["eyewear"], "epochs": 1})
    run, _ = RunStore().create(cfg.run_id(), cfg.canonical())
    monkeypatch.setenv("FACEML_DISTRIBUTE", "1")
    st = train_run(run)
    assert st["state"] == "failed"
    assert st["reason"].startswith("--distribute needs KERAS_BACKEND=jax")


MESH_SCRIPT = textwrap.dedent("""
    import contextlib, io, json, sys
    import keras
    from faceml.cli import main
    from faceml.runs import RunStore

    TINY = json.loads(sys.argv[1])
    out = {"devices": [str(d) for d in keras.distribution.list_devices()]}

    def cli(*args):
        o, e = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(o), contextlib.redirect_stderr(e):
            code = main(list(args))
        return code, o.getvalue(), e.getvalue()

    code, _, err = cli(*TINY, "--batch-size", "33", "--distribute")
    out["odd_batch"] = [code, err.strip().splitlines(), len(RunStore().list())]
    code, o, err = cli(*TINY, "--batch-size", "32", "--distribute", "--json")
    out["mesh"] = [code, json.loads(o)]
    run = RunStore().get(out["mesh"][1]["run_id"])
    out["status"] = run.status()
    frame = run.predictions()
    out["predictions"] = {s: int((frame["split"] == s).sum()) for s in ("val", "test")}
    # the same configuration without --distribute is the same run: cached
    code, o, _ = cli(*TINY, "--batch-size", "32", "--json")
    out["plain"] = [code, json.loads(o)]
    # one device: trains plainly and says so
    keras.distribution.list_devices = lambda *a, **k: ["cpu:0"]
    code, o, err = cli(*TINY, "--batch-size", "32", "--distribute", "--again", "--json")
    out["one"] = [code, err, RunStore().get(json.loads(o)["run_id"]).status()["distribute"]]
    print("RESULT " + json.dumps(out, default=str))
""")


@pytest.mark.skipif(importlib.util.find_spec("jax") is None,
                    reason="jax is not installed (pip install faceml[scale])")
def test_distribute_on_a_virtual_two_device_mesh(tmp_path):
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu",
           "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
           "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "3"}
    p = subprocess.run([sys.executable, "-c", MESH_SCRIPT, json.dumps(TINY)], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=600)
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")]
    assert p.returncode == 0 and lines, p.stderr[-3000:]
    r = json.loads(lines[-1][len("RESULT "):])
    assert len(r["devices"]) == 2
    code, err, n_runs = r["odd_batch"]
    assert code == 2 and n_runs == 0
    assert err == ["error: --distribute over 2 devices needs a batch size divisible by 2, "
                   "not 33"]
    code, res = r["mesh"]
    assert code == 0 and res["status"] == "done", res
    st = r["status"]
    assert st["state"] == "done"
    assert st["distribute"]["n_devices"] == 2
    assert st["distribute"]["devices"] == r["devices"]
    assert res["distribute"] == st["distribute"]
    # 121 faces leave an odd split: fit drops its last face (JAX shards every batch evenly),
    # yet every val/test face has a prediction (stored by a plain model)
    dropped = st["distribute"]["dropped"]
    assert sum(dropped.values()) >= 1
    assert r["predictions"]["val"] == st["n_val"] + dropped["val"]
    assert r["predictions"]["test"] > 0
    assert res["metrics"]["val"]["heads"]["eyewear"]["accuracy"] >= 0
    code, plain = r["plain"]
    assert code == 0 and plain["cached"] and plain["run_id"] == res["run_id"]
    code, err, dist = r["one"]
    assert code == 0
    assert "--distribute: one device (cpu:0), training plainly" in err
    assert dist == {"devices": ["cpu:0"], "n_devices": 1, "note": "one device: trained plainly"}
