"""Benchmark: our training engine vs plain ``model.fit`` on the same model, same process.

    python bench/train.py [--dataset utkface|synthetic] [--n 3000] [--epochs 2] [--batch-size 64]
    KERAS_BACKEND=jax python bench/train.py --distribute   # + the engine over every device

The default CNN (``default_cnn``) on UTKFace at 64 px RGB (synthetic faces when UTKFace is
absent), heads gender + race + age. Both sides train the same architecture on the same training
split with the same batch size; the first epoch of each (graph building) is not timed. The
engine's figure is wall time between epoch ends and includes everything it does per epoch
(validation pass, atomic checkpoints, history, status); plain fit runs without validation.
Both run ``--rounds`` times in alternating order and the best time of each side counts, so a
busy machine does not favour one side. Prints one JSON line with images per second for both
and their ratio.

``--distribute`` (JAX) adds a third side, the engine with ``train_run(distribute=True)``
(Keras's ``DataParallel`` over ``keras.distribution.list_devices()``), timed the same way in
the same rounds: ``dist_engine_img_s`` at ``n_devices`` and ``dist_ratio`` against the plain
engine. On a CPU, ``XLA_FLAGS=--xla_force_host_platform_device_count=2`` makes a virtual
2-device mesh: that checks the script runs, it is no speed figure (both "devices" share the
same cores).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

SHARED_UTK = Path(__file__).resolve().parents[2] / "shared" / "data" / "utkface"


def main() -> None:
    import keras

    from faceml.data.prepare import PrepOptions, prepare
    from faceml.runs import RunStore
    from faceml.config import TrainConfig
    from faceml.training.engine import build_model, compile_model, device_info, train_run

    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default="utkface" if SHARED_UTK.is_dir() else "synthetic")
    ap.add_argument("--n", type=int, default=3000, help="faces used (a stratified sample)")
    ap.add_argument("--epochs", type=int, default=2, help="timed epochs (one more is warm-up)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=2, help="alternating rounds; best of each side")
    ap.add_argument("--distribute", action="store_true",
                    help="also time the engine data-parallel over every device (JAX)")
    a = ap.parse_args()
    devices = []
    if a.distribute:
        from faceml.errors import FaceMLError
        from faceml.training.engine import distribute_devices

        try:
            devices = distribute_devices(a.batch_size)
        except FaceMLError as e:
            print(f"error: {e}", file=sys.stderr)
            raise SystemExit(2) from None

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

    def plain() -> float:
        keras.utils.set_random_seed(0)
        model = compile_model(build_model(cfg, prep, hs), cfg, hs, steps_per_epoch=1)
        model.fit(x, y, batch_size=a.batch_size, epochs=1, verbose=0)  # warm-up: graph building
        t = time.perf_counter()
        model.fit(x, y, batch_size=a.batch_size, epochs=a.epochs, verbose=0)
        secs = time.perf_counter() - t
        keras.backend.clear_session()
        return secs

    n_dist = [n]  # the distributed engine fits a multiple of the device count

    def engine(rep: int, distribute: bool = False) -> float:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            store = RunStore(tmp)
            c = TrainConfig.from_dict({**cfg.canonical(), "repeat": rep})
            run, _ = store.create(c.run_id(), c.canonical())
            st = train_run(run, prep=prep, distribute=distribute)
            assert st["state"] == "done", st
            if distribute:
                n_dist[0] = int(st["n_train"])
            hist = run.history()
            secs = float(hist["time"].iloc[-1] - hist["time"].iloc[0])
        keras.backend.clear_session()
        return secs

    # alternate the order so load on a shared machine hits every side alike
    plain_times, engine_times, dist_times = [], [], []
    for r in range(a.rounds):
        sides = [lambda: plain_times.append(plain()),
                 lambda: engine_times.append(engine(r))]
        if devices:
            sides.append(lambda: dist_times.append(engine(r, distribute=True)))
        for side in (sides if r % 2 == 0 else sides[::-1]):
            side()
    plain_s, engine_s = min(plain_times), min(engine_times)
    plain_ips = n * a.epochs / plain_s
    engine_ips = n * a.epochs / engine_s
    dist = {}
    if devices:
        dist_ips = n_dist[0] * a.epochs / min(dist_times)
        dist = {"n_devices": len(devices), "devices": [str(d) for d in devices],
                "dist_engine_img_s": round(dist_ips, 1),
                "dist_ratio": round(dist_ips / engine_ips, 3),
                "dist_s": [round(v, 2) for v in dist_times]}
    print(json.dumps({"dataset": a.dataset, "n_train": n, "size": a.size,
                      "batch_size": a.batch_size,
                      "timed_epochs": a.epochs, "device": device_info()["device"],
                      "backend": keras.backend.backend(),
                      "plain_fit_img_s": round(plain_ips, 1), "engine_img_s": round(engine_ips, 1),
                      "ratio": round(engine_ips / plain_ips, 3), "rounds": a.rounds,
                      "plain_s": [round(v, 2) for v in plain_times],
                      "engine_s": [round(v, 2) for v in engine_times], **dist}))


if __name__ == "__main__":
    main()
