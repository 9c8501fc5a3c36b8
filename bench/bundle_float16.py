"""Benchmark: a bundled model with float16 kernels (``bundle --float16``) against the same file as
shipped (float32), in the same process.

    python bench/bundle_float16.py [--model models/faceml-v2.keras] [--faces 256] [--calls 100]

The model's members (:func:`faceml.serving.bundle.file_members`) are copied with
:func:`faceml.modeling.ensemble.half_kernels` and averaged again as the file averages them (with
the mirrored face when the file has a ``HorizontalFlip``); both files are saved and loaded back
with ``safe_mode=True``, as the Predict page loads them. Prints ONE JSON line:

- ``mb`` / ``baseline_mb``: the two files' sizes;
- ``median_ms`` / ``baseline_median_ms`` (and ``p90``): CPU time per face, one face at a time
  (:func:`faceml.serving.bundle.measure_speed`, what the model card reports), timed alternately
  ``--rounds`` times with the best of each side kept, so a busy machine favours neither;
- ``max_abs_diff``: per head, the largest difference between the two files' answers on
  ``--faces`` random faces plus skimage's astronaut (a real face): a probability, or years of age.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

DEFAULT = Path(__file__).resolve().parents[1] / "models" / "faceml-v2.keras"


def main() -> None:
    import numpy as np
    from PIL import Image
    from skimage import data

    from faceml.modeling.ensemble import build_ensemble, half_kernels
    from faceml.modeling.layers import HorizontalFlip, find_preprocessing
    from faceml.modeling.modelio import load_model, predict_arrays, save_model
    from faceml.serving.bundle import file_members, measure_speed

    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=str(DEFAULT))
    ap.add_argument("--faces", type=int, default=256)
    ap.add_argument("--calls", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=2)
    a = ap.parse_args()

    shipped = load_model(a.model)
    members = [fm.model for fm in file_members(a.model)]
    mirror = any(isinstance(layer, HorizontalFlip) for layer in shipped.layers)
    halves = [half_kernels(m) for m in members]
    half = build_ensemble(halves, mirror=mirror, name=shipped.name)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "half.keras"
        save_model(half, path)
        half = load_model(path)
        mb = path.stat().st_size / 1e6
    pre = find_preprocessing(shipped)
    size, c = int(pre.image_size), 1 if pre.color == "gray" else 3
    faces = np.random.default_rng(0).integers(0, 256, (a.faces, size, size, c), dtype=np.uint8)
    face = Image.fromarray(data.astronaut()).crop((140, 20, 320, 200)).resize((size, size))
    faces = np.concatenate([faces, np.asarray(face.convert("L" if c == 1 else "RGB"))
                            .reshape(1, size, size, c)])
    want, got = predict_arrays(shipped, faces), predict_arrays(half, faces)
    best: dict[str, dict] = {}
    for _ in range(a.rounds):
        for side, model in (("baseline", shipped), ("half", half)):
            s = measure_speed(model, calls=a.calls)
            if side not in best or s["median_ms"] < best[side]["median_ms"]:
                best[side] = s
    print(json.dumps({
        "model": Path(a.model).name, "members": len(members), "mirror": mirror,
        "mb": round(mb, 3), "baseline_mb": round(Path(a.model).stat().st_size / 1e6, 3),
        "median_ms": round(best["half"]["median_ms"], 2),
        "p90_ms": round(best["half"]["p90_ms"], 2),
        "baseline_median_ms": round(best["baseline"]["median_ms"], 2),
        "baseline_p90_ms": round(best["baseline"]["p90_ms"], 2),
        "max_abs_diff": {h: float(np.abs(got[h] - want[h]).max()) for h in want},
        "faces": len(faces), "backend": best["half"]["backend"],
        "cores": best["half"]["cores"], "loadavg_1m": os.getloadavg()[0]}))


if __name__ == "__main__":
    main()
