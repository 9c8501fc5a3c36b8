"""Bundle a finished run as a pretrained model in ``models/`` with its model card.

    python -m faceml bundle RUN_ID --name utkface-multitask

writes ``models/NAME.keras`` (weights and preprocessing, no optimizer state),
``models/NAME.predictions.csv`` (its validation answers, for the Predict page's age intervals
and rare-group warnings) and ``models/NAME.md`` — the card: data and split, preprocessing, the exact command that trained
it, metrics overall and per group on the test split, intended use, limits and ethics.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

from faceml import paths
from faceml.errors import FaceMLError

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def train_command(cfg: dict) -> str:
    """The ``python -m faceml train`` command line that reproduces a run's config."""
    d = cfg["data"]
    args = ["python", "-m", "faceml", "train", "--dataset", d["dataset"]]
    if d.get("path"):
        args += ["--path", str(d["path"])]
    for k, v in sorted((d.get("dataset_options") or {}).items()):
        args += ["--dataset-option", f"{k}={json.dumps(v)}"]
    args += ["--size", str(d["size"]), "--color", d["color"]]
    if d.get("fraction", 1.0) != 1.0:
        args += ["--fraction", str(d["fraction"])]
    if d.get("age", "years") != "years":
        args += ["--age", d["age"]]
        if d.get("age_edges"):
            args += ["--age-edges", ",".join(map(str, d["age_edges"]))]
    if d.get("seed", 0):
        args += ["--data-seed", str(d["seed"])]
    args += ["--arch", cfg["arch"]]
    for k, v in sorted((cfg.get("arch_params") or {}).items()):
        args += ["--param", f"{k}={json.dumps(v)}"]
    args += ["--heads", ",".join(cfg["heads"])]
    if cfg.get("head_weights"):
        args += ["--head-weights", ",".join(f"{k}={v:g}" for k, v in cfg["head_weights"].items())]
    if cfg.get("age_loss", "mae") != "mae":
        args += ["--age-loss", cfg["age_loss"]]
    if cfg.get("class_weights"):
        args += ["--class-weights"]
    args += ["--optimizer", cfg["optimizer"], "--lr", f"{cfg['lr']:g}",
             "--schedule", cfg["schedule"], "--batch-size", str(cfg["batch_size"]),
             "--epochs", str(cfg["epochs"])]
    if cfg.get("early_stopping"):
        args += ["--early-stopping", str(cfg["early_stopping"])]
    if cfg.get("augmentation"):
        args += ["--augment", ",".join(cfg["augmentation"])]
    args += ["--seed", str(cfg["seed"])]
    if cfg.get("mixed_precision"):
        args += ["--mixed-precision"]
    return " ".join(shlex.quote(a) for a in args)


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and v != v):  # None or NaN: not applicable
        return "—"
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)


def _md_table(df) -> str:
    cols = list(df.columns)
    lines = ["| " + " | ".join(map(str, cols)) + " |", "|" + "---|" * len(cols)]
    for _, r in df.iterrows():
        lines.append("| " + " | ".join(_fmt(r[c]) for c in cols) + " |")
    return "\n".join(lines)


ETHICS = """## Intended use
Teaching and self-study: seeing how a face-attribute classifier is trained and evaluated, and
where it fails. Predictions on your own photo are a curiosity, not a fact about you.

## Limits and ethics
- **Labels are annotations, not identities.** UTKFace's gender (two classes) and race (five
  coarse classes, "Others" lumping many groups) were assigned by annotators from appearance.
  People do not fit these boxes; the model cannot know anyone's gender identity or ethnicity.
- **Dataset bias.** UTKFace is dominated by White faces and by ages 20–40; its images come from
  the web with uneven lighting and pose. Errors are larger for under-represented groups: read
  the per-group table above, with its confidence intervals, before trusting any number.
- **Age** is predicted from appearance; the interval is wide and grows at the extremes.
- **Uses the model must not have:** decisions about people (hiring, admission, credit,
  policing, access to services), surveillance or tracking, inferring the ethnicity or gender of
  real people without their consent, or any use on children beyond this classroom.
- Photos uploaded to the app are processed in memory and never stored.
"""


def rescore_test(run, path: str):
    """The run's best model on its own test split, read from another copy of the same data.

    The run may have trained on a shrunk copy (``python -m faceml shrink``); its card's test
    numbers then come from the original images at ``path``. The split is seeded on names and
    labels, so it is the same faces: that is checked, not assumed.
    """
    from dataclasses import replace

    from faceml.evaluate import evaluate_model
    from faceml.preprocessing import PrepOptions

    opts = replace(PrepOptions.from_dict(run.config["data"]), path=str(path))
    frame = evaluate_model(run, opts, split="test")
    preds = run.predictions()
    own = set(preds.loc[preds["split"] == "test", "source"]) if preds is not None else set()
    if own != set(frame["source"]):
        raise FaceMLError(f"the test split read from {path} is not the run's own test split "
                          f"({len(set(frame['source']) ^ own)} faces differ): is it a copy of "
                          f"{run.config['data'].get('path')}?")
    frame["split"] = "test"
    return frame


def model_card(run, name: str, test_frame=None, test_path: str | None = None) -> str:
    """The card's Markdown for a finished run (``test_frame``: its test split re-scored from
    ``test_path`` by :func:`rescore_test`)."""
    from faceml.evaluate import run_heads
    from faceml.metrics import Interpretation, group_breakdown

    cfg = run.config
    st = run.status()
    hist = run.history()
    m = run.metrics()
    d = cfg["data"]
    own_test = m.get("test") or {}
    if test_frame is not None:
        m = {**m, "test": Interpretation(test_frame, run_heads(run), dataset=d["dataset"],
                                         split="test").summary()}
    lines = [f"# Model card: {name}", "",
             f"Trained by FaceML's own CLI (run `{run.id}`), {len(hist)} epochs on "
             f"{st.get('device', {}).get('device', '?')} ({st.get('device', {}).get('backend', '?')}),"
             f" about {hist['seconds'].mean():.0f} s per epoch." if len(hist) else "", "",
             "## Data and split",
             f"- Dataset: `{d['dataset']}`" + (f" from `{d['path']}`" if d.get("path") else ""),
             f"- Split: stratified and seeded (seed {d['seed']}), "
             f"{' / '.join(f'{v:.0%}' for v in d['split'])} train / val / test; "
             f"{st.get('n_train', '?')} training and {st.get('n_val', '?')} validation faces.",
             "- Malformed file names in the folder are reported and skipped.", "",
             "## Preprocessing (carried inside the model)",
             f"- Input: raw 0–255 pixels, {d['size']}×{d['size']} {d['color'].upper()}, face crop "
             "centre-cropped to a square and resized bilinearly (`faceml.data.imageio.to_pixels`).",
             "- Per-channel mean/std scaling fitted on the training split only "
             "(`FacePreprocessing` layer), so the `.keras` file takes raw pixels.", "",
             "## How it was made", "```bash",
             *([f"python -m faceml shrink --path {shlex.quote(test_path)} --size {d['size']} "
                f"--color {d['color']} --quality 90 --out {shlex.quote(str(d['path']))}"]
               if test_path else []),
             train_command(cfg),
             f"python -m faceml bundle {run.id} --name {name}"
             + (f" --test-path {shlex.quote(test_path)}" if test_path else ""), "```", "",
             f"Architecture `{cfg['arch']}`; heads {', '.join(cfg['heads'])}; optimizer "
             f"{cfg['optimizer']} at {cfg['lr']:g} ({cfg['schedule']}), batch {cfg['batch_size']}, "
             f"augmentation {', '.join(cfg.get('augmentation') or []) or 'none'}.", "",
             "## Metrics on the test split"]
    test = (m.get("test") or {})
    rows = []
    for head, vals in (test.get("heads") or {}).items():
        rows.append({"head": head, **vals})
    if rows:
        import pandas as pd

        lines += [f"Dataset `{test.get('dataset')}`, split `{test.get('split')}`, "
                  f"n = {test.get('n')}.", "", _md_table(pd.DataFrame(rows)), ""]
    if test_frame is not None:
        own = ", ".join(f"{h} {_fmt(v.get('accuracy') if v.get('accuracy') is not None else v.get('mae'))}"
                        for h, v in (own_test.get("heads") or {}).items())
        lines += [f"The model trained on a copy of the images already at {d['size']} px "
                  f"(JPEG quality 90, `{d['path']}`); these test numbers are from the original "
                  f"images in `{test_path}` (the same {test.get('n')} test faces). On the copy "
                  f"itself: {own}.", ""]
    preds = run.predictions() if test_frame is None else test_frame
    if preds is not None:
        test_preds = preds[preds["split"] == "test"]
        lines += ["## Per group (test split, 95 % intervals)", ""]
        for head in cfg["heads"]:
            others = [g for g in ("race", "gender") if g != head and
                      (f"group_{g}" in test_preds or f"{g}_true" in test_preds)]
            by = others + (["age_years"] if "group_age_years" in test_preds and head != "age"
                           else [])
            if not by:
                continue
            for col in by:
                gb = group_breakdown(test_preds, head, [col], seed=0)
                lines += [f"**{head} by {col.replace('_years', '')}**", "", _md_table(gb), ""]
    lines.append(ETHICS)
    return "\n".join(lines)


def bundle(run, name: str, out_dir: Path | None = None,
           test_path: str | None = None) -> tuple[Path, Path]:
    """Copy a finished run's best model (without optimizer state) and write its card
    (``test_path``: score the test split on the original images, see :func:`rescore_test`)."""
    from faceml.modelio import save_model

    if not NAME_RE.match(name):
        raise FaceMLError(f"model name must be lowercase letters, digits, '-' or '_': {name!r}")
    st = run.status()
    if st.get("state") != "done":
        raise FaceMLError(f"run {run.id} is {st.get('state')}; only finished runs are bundled")
    out = Path(out_dir) if out_dir is not None else paths.models_dir()
    out.mkdir(parents=True, exist_ok=True)
    test_frame = rescore_test(run, test_path) if test_path else None
    model = run.load_model("best")  # compile=False: weights and preprocessing only
    mpath = out / f"{name}.keras"
    save_model(model, mpath)
    card = out / f"{name}.md"
    card.write_text(model_card(run, name, test_frame, test_path))
    preds = run.predictions()
    if preds is not None:  # validation answers: the Predict page's age intervals and rare groups
        keep = ["split"] + [c for h in run.config["heads"] for c in (f"{h}_true", f"{h}_pred")]
        # only labels and answers: no file names, no other columns of the dataset
        preds.loc[preds["split"] == "val", keep].to_csv(out / f"{name}.predictions.csv",
                                                          index=False)
    return mpath, card


def add_cli(sub) -> None:
    s = sub.add_parser("bundle", help="copy a finished run into models/ with a model card")
    s.add_argument("run_id")
    s.add_argument("--name", required=True)
    s.add_argument("--out", default=None, help="folder (default: the project's models/)")
    s.add_argument("--test-path", default=None, metavar="FOLDER",
                   help="score the test split on these original images (the run trained on a "
                        "`shrink` copy of them)")
    s.set_defaults(fn=_cmd)


def _cmd(a) -> int:
    from faceml.runs import RunStore

    mpath, card = bundle(RunStore().get(a.run_id), a.name, a.out, a.test_path)
    size = mpath.stat().st_size / 1e6
    print(f"{mpath} ({size:.1f} MB)\n{card}")
    return 0
