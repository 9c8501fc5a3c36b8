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


def main(runs_dir: str, out: str) -> None:
    from faceml.modeling.modelio import load_model, save_model
    from faceml.runs import RunDamaged, RunStore

    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tarfile.open(out_dir / "runs.tgz", "w:gz") as tar:
        for run in sorted(RunStore(runs_dir).list(), key=lambda r: r.id):
            for f in run.records():
                tar.add(f, arcname=f"{run.id}/{f.name}")
            which = run.saved_checkpoint("best")
            if which:
                save_model(load_model(run.checkpoint(which), compile=False),
                           out_dir / f"{run.id}.keras")
            try:
                cfg, status, metrics = run.config, run.status(), run.metrics()
                hist = run.history()
            except RunDamaged as e:
                print(json.dumps({"run": run.id, "damaged": str(e)}))
                continue
            summary = {"run": run.id, "arch": cfg["arch"], "params": cfg.get("arch_params"),
                       "lr": cfg["lr"], "batch": cfg["batch_size"], "epochs": cfg["epochs"],
                       "state": status.get("state"), "reason": status.get("reason", ""),
                       "device": (status.get("device") or {}).get("device")}
            secs = sorted(hist["seconds"]) if "seconds" in hist else []
            summary["epochs_done"] = len(hist)
            summary["sec_per_epoch_median"] = round(secs[len(secs) // 2], 2) if secs else None
            for split in ("val", "test"):
                heads = (metrics.get(split) or {}).get("heads") or {}
                summary[split] = {h: round(v.get("accuracy") or v.get("mae") or 0, 4)
                                  for h, v in heads.items()}
            print(json.dumps(summary))


if __name__ == "__main__":
    main(*sys.argv[1:3])
