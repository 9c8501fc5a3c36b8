"""Benchmark: the Evaluate page on a run with 5,000 stored test predictions (Streamlit AppTest).

    python -m bench.evaluate [--n 5000]

Builds a run directory in a temporary store with exactly the files training writes
(config.json, status.json, history.json, heads.json, predictions.csv made by
``faceml.evaluation.predictions.predictions_frame``, metrics.json) on the built-in synthetic
faces, so the galleries draw real images. Predictions come from a simulated classifier (noisy
one-hot logits; age = truth + noise): the page's work does not depend on how good they are.

Measured in this process, with AppTest:
  first_render_cold_s  first run of the page in a fresh process (imports included);
  first_render_s       first render of *this* run once the server process is warm (another
                       run was shown before; nothing of this run is cached);
  cell_click_s         rerun after a confusion-matrix cell is selected, once the run is loaded:
                       median over the first visit of every cell (its faces drawn then; AppTest
                       cannot click a Plotly chart, so the selection is set where the click
                       handler puts it, the cell's session-state keys, the exact code path that
                       follows a click); cell_click_max_s is the slowest of those;
  cell_click_repeat_s  median over second visits (faces already cached);
  cell_members_ms      faceml.evaluation.losses.cell_members alone on the 5,000 faces (median).
Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def make_run(store_root: Path, n: int, seed: int = 0, n_val: int = 500) -> str:
    """A finished run whose stored predictions hold ``n`` test and ``n_val`` val faces."""
    from faceml import data as datasets
    from faceml.data.heads import HeadSpec
    from faceml.evaluation.interpretation import Interpretation
    from faceml.evaluation.predictions import predictions_frame
    from faceml.data.prepare import PrepOptions
    from faceml.runs import RunStore
    from faceml.config import TrainConfig

    total = n + n_val
    cfg = TrainConfig(data=PrepOptions(dataset="synthetic", dataset_options={"n": total},
                                       size=32, color="rgb", seed=seed),
                      arch="small_cnn", heads=["eyewear", "expression", "age"], epochs=1)
    store = RunStore(store_root)
    run, _ = store.create(cfg.run_id(), cfg.canonical())
    scan = datasets.get("synthetic").scan(None, n=total)
    frame = scan.label_frame().reset_index(drop=True)
    heads = [HeadSpec("eyewear", "binary", ["none", "glasses"]),
             HeadSpec("expression", "multiclass", ["neutral", "smiling", "frowning"]),
             HeadSpec("age", "regression", target_mean=45.0, target_std=26.0)]
    rng = np.random.default_rng(seed)
    frames, metrics = [], {}
    for split, rows in (("test", np.arange(n)), ("val", np.arange(n, total))):
        sub = frame.iloc[rows].reset_index(drop=True)
        y_true, outputs = {}, {}
        for h in heads[:2]:
            idx = sub[h.name].map({c: i for i, c in enumerate(h.classes)}).to_numpy()
            logits = np.eye(len(h.classes))[idx] * 1.6 + rng.normal(0, 1.0, (len(sub),
                                                                             len(h.classes)))
            p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
            outputs[h.name] = p[:, 1:2] if h.kind == "binary" else p
            y_true[h.name] = idx
        age = sub["age"].to_numpy(dtype=float)
        y_true["age"] = age
        outputs["age"] = (age + rng.normal(0, 9, len(age))).clip(0, 100)[:, None]
        extra = sub[["age", "expression", "eyewear"]].assign(age_years=age)
        f = predictions_frame(sub["source"], heads, y_true, outputs, split, extra=extra)
        frames.append(f)
        metrics[split] = Interpretation.from_frame(f, heads, dataset="synthetic",
                                                   split=split).summary()
    import pandas as pd

    run.write_results(pd.concat(frames), metrics, heads)
    run.append_history({"epoch": 1, "loss": 1.0, "seconds": 1.0})
    run.set_status(state="done", finished=time.time())
    return run.id


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=5000)
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix=f"faceml-bench-eval-{os.getpid()}-"))
    os.environ["FACEML_RUNS_DIR"] = str(tmp / "runs")
    os.environ["FACEML_CACHE_DIR"] = str(tmp / "cache")
    warmup = make_run(tmp / "runs", 300, seed=1, n_val=100)
    big = make_run(tmp / "runs", a.n, seed=0)

    import logging

    from streamlit.testing.v1 import AppTest

    logging.getLogger("streamlit").setLevel(logging.ERROR)  # bare-mode chatter on stderr

    page = str(ROOT / "app_pages" / "evaluate.py")

    def session(run_id: str) -> AppTest:
        at = AppTest.from_file(page, default_timeout=120)
        at.query_params["run"] = run_id
        return at

    def timed(at: AppTest) -> float:
        t = time.perf_counter()
        at.run()
        dt = time.perf_counter() - t
        if at.exception:
            raise SystemExit(f"the page raised: {at.exception[0].value}")
        return dt

    cold = timed(session(warmup))  # a fresh process: imports, first scan, first figures
    at = session(big)
    first = timed(at)
    # the click: the chart's selection handler sets the cell's two session-state keys
    from faceml.runs import RunStore
    from ui.evaluate import cell_keys, ev

    interp = ev.load_interpretation(RunStore().get(big), "test")
    head = interp.heads[0]
    kt, kp = cell_keys(head)
    cells = [(t, p) for t in head.classes for p in head.classes]
    clicks = []
    for t, p in cells * 2:
        at.session_state[kt], at.session_state[kp] = t, p
        clicks.append(timed(at))
        shown = at.dataframe[[i for i, d in enumerate(at.dataframe)
                              if "file" in d.value.columns][0]].value
        want = interp.cell_members(head, t, p, threshold=0.5)["source"].head(len(shown))
        assert list(shown["file"]) == list(want), "the page showed other faces than the cell's"
    ms = []
    for _ in range(25):
        t0 = time.perf_counter()
        interp.cell_members(head, "glasses", "none")
        ms.append((time.perf_counter() - t0) * 1000)
    new, repeat = clicks[:len(cells)], clicks[len(cells):]
    print(json.dumps({
        "n": a.n, "first_render_cold_s": round(cold, 3), "first_render_s": round(first, 3),
        "cell_click_s": round(statistics.median(new), 3),
        "cell_click_max_s": round(max(new), 3),
        "cell_click_repeat_s": round(statistics.median(repeat), 3),
        "cell_members_ms": round(statistics.median(ms), 2),
        "head": head.name, "cells_clicked": len(clicks),
        "click_path": "session-state keys set by the plotly selection handler (AppTest cannot "
                      "click a plotly chart)",
    }))


if __name__ == "__main__":
    main()
    import shutil

    for d in Path(tempfile.gettempdir()).glob(f"faceml-bench-eval-{os.getpid()}-*"):
        shutil.rmtree(d, ignore_errors=True)
