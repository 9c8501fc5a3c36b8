"""Pack finished runs for the trip back from a GPU server (see scripts/gpu_candidates.sh).

    python -m scripts.pack_runs RUNS_DIR OUT     # from the project root

(as a module, so that it finds ``faceml`` in a checkout where the package is not installed,
as on the GPU server)

Writes OUT/ID.keras (the best checkpoint without optimizer state) per run, OUT/runs.tgz (every
run's config, status, history, metrics, heads and predictions) and prints one summary line
per run. Unpack with ``tar xzf runs.tgz -C $FACEML_RUNS_DIR`` and copy ID.keras to
``$FACEML_RUNS_DIR/ID/best.keras``.
"""

from __future__ import annotations

import json
import sys
import tarfile
from pathlib import Path

RECORDS = ("config.json", "status.json", "history.json", "metrics.json", "heads.json",
           "predictions.csv")


def main(runs_dir: str, out: str) -> None:
    from faceml.modelio import load_model, save_model

    runs, out_dir = Path(runs_dir), Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tarfile.open(out_dir / "runs.tgz", "w:gz") as tar:
        for d in sorted(p for p in runs.iterdir() if (p / "config.json").exists()):
            for name in RECORDS:
                if (d / name).exists():
                    tar.add(d / name, arcname=f"{d.name}/{name}")
            best = d / "best.keras" if (d / "best.keras").exists() else d / "last.keras"
            if best.exists():
                save_model(load_model(best, compile=False), out_dir / f"{d.name}.keras")
            cfg = json.loads((d / "config.json").read_text())
            status = json.loads((d / "status.json").read_text())
            metrics = json.loads((d / "metrics.json").read_text()) \
                if (d / "metrics.json").exists() else {}
            summary = {"run": d.name, "arch": cfg["arch"], "params": cfg.get("arch_params"),
                       "lr": cfg["lr"], "batch": cfg["batch_size"], "epochs": cfg["epochs"],
                       "state": status.get("state"), "reason": status.get("reason", ""),
                       "device": (status.get("device") or {}).get("device")}
            hist = json.loads((d / "history.json").read_text()) \
                if (d / "history.json").exists() else []
            secs = sorted(r["seconds"] for r in hist)
            summary["epochs_done"] = len(hist)
            summary["sec_per_epoch_median"] = round(secs[len(secs) // 2], 2) if secs else None
            for split in ("val", "test"):
                heads = (metrics.get(split) or {}).get("heads") or {}
                summary[split] = {h: round(v.get("accuracy") or v.get("mae") or 0, 4)
                                  for h, v in heads.items()}
            print(json.dumps(summary))


if __name__ == "__main__":
    main(*sys.argv[1:3])
