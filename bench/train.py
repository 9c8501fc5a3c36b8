"""Benchmark: our training engine vs plain ``model.fit`` on the same model, same process.

    python bench/train.py [--dataset utkface|synthetic] [--n 3000] [--epochs 2] [--batch-size 64]

The default CNN (``default_cnn``) on UTKFace at 64 px RGB (synthetic faces when UTKFace is
absent), heads gender + race + age. Both sides train the same architecture on the same training
split with the same batch size; the first epoch of each (graph building) is not timed. The
engine's figure is wall time between epoch ends and includes everything it does per epoch
(validation pass, atomic checkpoints, history, status); plain fit runs without validation.
Prints one JSON line with images per second for both and their ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SHARED_UTK = Path(__file__).resolve().parents[2] / "shared" / "data" / "utkface"


def main() -> None:
    import keras

    from faceml.preprocessing import PrepOptions, prepare
    from faceml.runs import RunStore
    from faceml.training import TrainConfig, build_model, compile_model, device_info, train_run

    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default="utkface" if SHARED_UTK.is_dir() else "synthetic")
    ap.add_argument("--n", type=int, default=3000, help="faces used (a stratified sample)")
    ap.add_argument("--epochs", type=int, default=2, help="timed epochs (one more is warm-up)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--size", type=int, default=64)
    a = ap.parse_args()

    if a.dataset == "utkface":
        total = 20196
        data = PrepOptions(dataset="utkface", path=str(SHARED_UTK), size=a.size,
                           fraction=min(1.0, a.n / total), stratify="race")
        heads = ["gender", "race", "age"]
    else:
        data = PrepOptions(dataset="synthetic", dataset_options={"n": a.n}, size=a.size)
        heads = ["expression", "eyewear", "age"]
    cfg = TrainConfig(data=data, arch="default_cnn", heads=heads, head_weights={"age": 0.05},
                      epochs=a.epochs + 1, batch_size=a.batch_size, seed=0)
    prep = prepare(data)
    hs = prep.heads(heads, cfg.head_weights)
    idx = prep.split_index("train")
    x, y = prep.x[idx], prep.targets(hs, idx)
    n = len(x)

    # plain fit on the same model
    keras.utils.set_random_seed(0)
    model = compile_model(build_model(cfg, prep, hs), cfg, hs, steps_per_epoch=1)
    model.fit(x, y, batch_size=a.batch_size, epochs=1, verbose=0)  # warm-up: graph building
    t = time.perf_counter()
    model.fit(x, y, batch_size=a.batch_size, epochs=a.epochs, verbose=0)
    plain_s = time.perf_counter() - t
    del model
    keras.backend.clear_session()

    # the engine: a real run in a temporary run store
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        store = RunStore(tmp)
        run, _ = store.create(cfg.run_id(), cfg.canonical())
        st = train_run(run, prep=prep)
        assert st["state"] == "done", st
        hist = run.history()
        engine_s = float(hist["time"].iloc[-1] - hist["time"].iloc[0])
    plain_ips = n * a.epochs / plain_s
    engine_ips = n * a.epochs / engine_s
    print(json.dumps({"dataset": a.dataset, "n_train": n, "size": a.size, "batch_size": a.batch_size,
                      "timed_epochs": a.epochs, "device": device_info()["device"],
                      "backend": keras.backend.backend(),
                      "plain_fit_img_s": round(plain_ips, 1), "engine_img_s": round(engine_ips, 1),
                      "ratio": round(engine_ips / plain_ips, 3)}))


if __name__ == "__main__":
    main()
