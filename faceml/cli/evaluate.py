"""``python -m faceml evaluate (RUN_ID | --model FILE.keras) [--dataset D --path P] …``"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from faceml.cli.common import bar, parse_kv
from faceml.errors import FaceMLError


def add_arguments(s) -> None:
    s.description = ("Evaluate a run (its stored predictions, or its model on another split or "
                     "dataset) or a .keras model file. A model trained on several datasets "
                     "at once: each dataset's own numbers follow the combined ones (JSON: "
                     "by_dataset).")
    s.add_argument("run_id", nargs="?", default=None, help="a run id (see: python -m faceml runs)")
    s.add_argument("--model", default=None, metavar="FILE.keras", help="a FaceML model file")
    s.add_argument("--dataset", default=None, help="evaluate on this dataset (default: the "
                   "model's own); labels are mapped into the model's classes")
    s.add_argument("--path", default=None, help="the dataset's location")
    s.add_argument("--dataset-option", action="append", metavar="KEY=VALUE",
                   help="adapter option, e.g. n=2000 for synthetic")
    s.add_argument("--fraction", type=float, default=1.0, help="sample fraction of --dataset")
    s.add_argument("--data-seed", type=int, default=0, help="seed of --dataset's split")
    s.add_argument("--split", default="test", metavar="SPLIT", help="train | val | test | all")
    s.add_argument("--json", action="store_true", help="print the summary as one JSON line")
    s.add_argument("--predictions", default=None, metavar="OUT.csv",
                   help="write the predictions (file, HEAD_true, HEAD_pred, HEAD_prob_CLASS)")
    s.add_argument("--report", default=None, metavar="OUT.md|OUT.html",
                   help="write a Markdown or HTML report")


def _options(a):
    from faceml import data as datasets
    from faceml.data.prepare import PrepOptions

    if a.dataset is None:
        if a.path or a.dataset_option:
            raise FaceMLError("--path and --dataset-option need --dataset")
        return None
    datasets.get(a.dataset)  # unknown dataset: a DataError naming the known ones
    opts = PrepOptions(dataset=a.dataset, path=a.path,
                       dataset_options=parse_kv(a.dataset_option, "--dataset-option"),
                       fraction=a.fraction, seed=a.data_seed)
    opts.validate()
    return opts


def run(a) -> int:
    from faceml.evaluation import report
    from faceml.evaluation.evaluate import (STORED_SPLITS, check_split, evaluate_model, interpret,
                                            load_interpretation, stored_predictions)
    from faceml.runs import RunStore

    if bool(a.run_id) == bool(a.model):
        raise FaceMLError("give a run id or --model FILE.keras (one of them)")
    split = check_split(a.split)
    for out, kinds in ((a.report, (".md", ".html", ".htm")), (a.predictions, (".csv",))):
        if out and Path(out).suffix.lower() not in kinds:
            raise FaceMLError(f"{out}: the file name must end in {' or '.join(kinds)}")
    opts = _options(a)
    run = RunStore().get(a.run_id) if a.run_id else None
    config = run.config if run is not None else None
    if run is not None and opts is None and split in STORED_SPLITS \
            and run.status().get("state") not in ("running", "queued") \
            and stored_predictions(run) is not None:
        interp = load_interpretation(run, split)
        notes: list[str] = []
    else:
        cb, close = bar(f"evaluate on {opts.dataset if opts else 'its dataset'}",
                        not a.json)
        try:
            frame = evaluate_model(run if run is not None else a.model, opts, split,
                                   progress=cb)
        finally:
            close()
        interp = interpret(frame)
        notes = list(frame.attrs.get("notes", []))
    summary = interp.summary()
    parts = interp.by_dataset()  # a run on several datasets: each one's own numbers too
    if parts:
        summary["by_dataset"] = {d: p.summary() for d, p in parts.items()}
    if a.predictions:
        try:
            Path(a.predictions).write_text(report.predictions_csv(interp.frame_, interp.heads))
        except OSError as e:
            raise FaceMLError(f"cannot write {a.predictions}: {e.strerror or e}") from None
    if a.report:
        report.write_report(a.report, interp, config=config, notes=notes, run=run,
                            title=f"run {run.id}" if run is not None else Path(a.model).name)
    for n in notes:
        print(f"note: {n}", file=sys.stderr)
    if a.json:
        print(json.dumps(summary, default=str))
        return 0
    for part in (summary, *summary.get("by_dataset", {}).values()):
        print(f"{part['dataset']} · {part['split']} · {part['n']} faces")
        for head, vals in part["heads"].items():
            shown = "  ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} —"
                              for k, v in vals.items())
            print(f"  {head:<12} {shown}")
    return 0
