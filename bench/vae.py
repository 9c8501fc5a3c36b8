"""Benchmark: the VAE studio's two promises, measured on a VAE trained through the engine.

    python bench/vae.py                                  # synthetic faces, 32 px RGB
    python bench/vae.py --dataset utkface --size 64 --epochs 20
    python bench/vae.py --png /tmp/vae.png               # also save reconstructions + samples

Prints ONE JSON line:

- ``decode_ms``: a slider move → the decoded face on this machine's CPU: the median of
  ``--decodes`` calls of :func:`faceml.modeling.vae.decode` on one latent vector (after warm-up),
  i.e. the
  decoder called directly as the page does; ``predict_ms`` is the same through
  ``decoder.predict()`` (the baseline the page avoids), measured in the same process.
- ``recon_mse`` / ``mean_image_mse`` / ``ratio``: validation reconstruction MSE (pixels in [0, 1],
  deterministic decode of μ) against the MSE of predicting every face by the per-pixel mean
  image of the *training* split, as the engine stored them in metrics.json. Goal: ratio ≤ 0.5.

The run is trained in a temporary run store (``--runs-dir`` to keep it); prepared arrays go
through the usual on-disk cache, so a second run skips decoding.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
from _timing import median_ms  # noqa: E402 - bench/ is the script's own directory

import numpy as np  # noqa: E402

GOAL_MS, GOAL_RATIO = 100.0, 0.5


def mosaic(rows: list[np.ndarray], scale: int = 3, gap: int = 2) -> np.ndarray:
    """uint8 rows of faces ``(k, s, s, c)`` → one RGB picture, ``scale``× nearest-neighbour."""
    k = max(len(r) for r in rows)
    s = rows[0].shape[1]
    out = np.full((len(rows) * (s + gap) + gap, k * (s + gap) + gap, 3), 255, np.uint8)
    for i, r in enumerate(rows):
        for j, img in enumerate(r):
            img = np.repeat(img, 3, -1) if img.shape[-1] == 1 else img
            y, x = gap + i * (s + gap), gap + j * (s + gap)
            out[y:y + s, x:x + s] = img
    return np.kron(out, np.ones((scale, scale, 1), np.uint8))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default="synthetic", choices=["synthetic", "utkface"])
    ap.add_argument("--path", default=None, help="dataset folder (utkface: ../shared/data/utkface)")
    ap.add_argument("--n", type=int, default=3000, help="synthetic faces")
    ap.add_argument("--size", type=int, default=None, help="pixels (synthetic 32, utkface 64)")
    ap.add_argument("--color", default="rgb")
    ap.add_argument("--fraction", type=float, default=1.0)
    ap.add_argument("--epochs", type=int, default=None, help="synthetic 25, utkface 20")
    ap.add_argument("--latent", type=int, default=32)
    ap.add_argument("--beta", type=float, default=0.05)
    ap.add_argument("--filters", default="32,64")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--decodes", type=int, default=50)
    ap.add_argument("--runs-dir", default=None, help="keep the run here (default: a temp dir)")
    ap.add_argument("--png", default=None, help="save val originals / reconstructions / prior "
                                               "samples as a PNG")
    a = ap.parse_args()
    size = a.size or (32 if a.dataset == "synthetic" else 64)
    epochs = a.epochs or (25 if a.dataset == "synthetic" else 20)
    path = a.path
    if a.dataset == "utkface":
        from faceml import paths

        path = path or str(paths.shared_data_dir() / "utkface")
        if not Path(path).is_dir():
            print(json.dumps({"error": f"no UTKFace folder at {path}"}))
            sys.exit(2)

    runs_dir = a.runs_dir or tempfile.mkdtemp(prefix="faceml-bench-vae-")
    os.environ["FACEML_RUNS_DIR"] = runs_dir

    import keras

    from faceml.modeling import vae
    from faceml.data.prepare import PrepOptions, prepare
    from faceml.runs import RunStore
    from faceml.config import TrainConfig
    from faceml.training.engine import train_run

    data = PrepOptions(dataset=a.dataset, path=path, size=size, color=a.color,
                       fraction=a.fraction,
                       dataset_options={"n": a.n} if a.dataset == "synthetic" else {})
    cfg = TrainConfig(data=data, arch="vae", epochs=epochs, batch_size=a.batch, lr=a.lr,
                      arch_params={"latent_dim": a.latent, "beta": a.beta, "recon": "mse",
                                   "filters": [int(f) for f in a.filters.split(",")]})
    cfg.validate()
    t = time.perf_counter()
    prep = prepare(data)
    prep_s = time.perf_counter() - t
    run, _ = RunStore().create(cfg.run_id(), cfg.canonical())
    t = time.perf_counter()
    st = train_run(run, prep)
    train_s = time.perf_counter() - t
    if st["state"] != "done":
        print(json.dumps({"error": f"training {st['state']}: {st.get('reason', '')}"}))
        sys.exit(1)
    m = run.metrics()
    model = run.load_model()
    _, dec = vae.vae_parts(model)
    z = np.random.default_rng(0).standard_normal((1, vae.latent_dim(model))).astype("float32")
    decode_ms = median_ms(lambda: vae.decode(model, z), a.decodes, warmup=5)
    predict_ms = median_ms(lambda: dec.predict(z, verbose=0), a.decodes, warmup=5)

    if a.png:
        from PIL import Image

        val = prep.x[prep.split_index("val")]
        val = val[np.sort(np.random.default_rng(0).choice(len(val), min(10, len(val)),
                                                          replace=False))]
        rows = [val, vae.reconstruct(model, val), vae.sample_prior(model, 10, seed=0),
                vae.sample_prior(model, 10, seed=1)]
        Image.fromarray(mosaic(rows)).save(a.png)

    val = m.get("val", {})
    ratio = val["recon_mse"] / val["mean_image_mse"] if val.get("mean_image_mse") else None
    hist = run.history()
    print(json.dumps({
        "dataset": a.dataset, "size": size, "color": a.color, "n_train": int(
            len(prep.split_index("train"))), "n_val": int(val.get("n", 0)),
        "latent": a.latent, "beta": a.beta, "filters": a.filters, "epochs": epochs,
        "decode_ms": round(decode_ms, 2), "predict_ms": round(predict_ms, 2),
        "decode_goal_ms": GOAL_MS, "decode_ok": decode_ms <= GOAL_MS,
        "recon_mse": round(val.get("recon_mse", float("nan")), 5),
        "mean_image_mse": round(val.get("mean_image_mse", float("nan")), 5),
        "ratio": None if ratio is None else round(ratio, 3), "ratio_goal": GOAL_RATIO,
        "ratio_ok": ratio is not None and ratio <= GOAL_RATIO,
        "test_ratio": round(m["test"]["recon_mse"] / m["test"]["mean_image_mse"], 3)
        if m.get("test", {}).get("mean_image_mse") else None,
        "prep_s": round(prep_s, 1), "train_s": round(train_s, 1),
        "sec_per_epoch": round(float(hist["seconds"].mean()), 2),
        "backend": keras.backend.backend(), "cores": os.cpu_count(), "run_id": run.id,
        "png": a.png}))


if __name__ == "__main__":
    main()
