"""Bundle a finished run (or the average of several) as a pretrained model in ``models/``.

    python -m faceml bundle RUN_ID --name my-model
    python -m faceml bundle RUN_A RUN_B --mirror --name utkface-multitask --test-path ORIGINALS

writes ``models/NAME.keras`` (weights and preprocessing, no optimizer state),
``models/NAME.predictions.csv`` (its validation answers, for the Predict page's age intervals
and rare-group warnings) and ``models/NAME.md`` — the card: data and split, preprocessing,
the exact command that trained
it, metrics overall and per group on the test split, intended use, limits and ethics.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from faceml import paths
from faceml.errors import FaceMLError
from faceml.flags import train_command  # the card's train line, generated from the flags
from faceml.markdown import MODEL_CARD_ETHICS, md_table

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def _card_table(df) -> str:
    return md_table(df, digits=3, thousands=False)  # the card's numbers: 3 decimals, plain ints


def rescore(model, run, split: str, path: str | None = None):
    """``model``'s predictions frame on ``run``'s own ``split``, read from ``path`` (another
    copy of the same data: the original of a ``python -m faceml shrink`` copy) or from the
    run's own data. The split is seeded on names and labels, so it is the same faces: that is
    checked against the run's stored predictions, not assumed."""
    from dataclasses import replace

    from faceml.evaluation.evaluate import evaluate_model
    from faceml.data.prepare import PrepOptions

    opts = PrepOptions.from_dict(run.config["data"])
    if path:
        opts = replace(opts, path=str(path))
    frame = evaluate_model(model, opts, split=split)
    preds = run.predictions()
    own = set(preds.loc[preds["split"] == split, "source"]) if preds is not None else set()
    if own != set(frame["source"]):
        raise FaceMLError(f"the {split} split read from {path or opts.path} is not run "
                          f"{run.id}'s own {split} split ({len(set(frame['source']) ^ own)} faces "
                          f"differ): is it a copy of {run.config['data'].get('path')}?")
    frame["split"] = split
    return frame


def _check_members(runs) -> None:
    for r in runs:
        st = r.status()
        if st.get("state") != "done":
            raise FaceMLError(f"run {r.id} is {st.get('state')}; only finished runs are bundled")
    first = runs[0].config
    for r in runs[1:]:  # the whole data config decides the split (stratify and options too)
        if r.config["data"] != first["data"] or r.config["heads"] != first["heads"]:
            raise FaceMLError(f"runs {runs[0].id} and {r.id} were trained on different data or "
                              "heads: an ensemble needs the same data, split and heads")


def _trained_line(run) -> str:
    st, hist, cfg = run.status(), run.history(), run.config
    dev = st.get("device", {})
    per = f", about {hist['seconds'].median():.1f} s per epoch" if len(hist) else ""
    return (f"- run `{run.id}`: `{cfg['arch']}`"
            + (f" ({', '.join(f'{k}={v}' for k, v in sorted(cfg['arch_params'].items()))})"
               if cfg.get("arch_params") else "")
            + f", {len(hist)} epochs on {dev.get('device', '?')} ({dev.get('backend', '?')}){per}; "
            f"optimizer {cfg['optimizer']} at {cfg['lr']:g} ({cfg['schedule']}), batch "
            f"{cfg['batch_size']}, augmentation "
            f"{', '.join(cfg.get('augmentation') or []) or 'none'}")


def model_card(runs: list, name: str, frames: dict | None = None, test_path: str | None = None,
               mirror: bool = False) -> str:
    """The card's Markdown. ``runs``: the bundled run(s), one or the members of an ensemble;
    ``frames``: ``{"val": …, "test": …}`` predictions of the bundled model made by
    :func:`rescore` (needed for an ensemble, a mirrored model or ``test_path``); otherwise the
    run's stored predictions are used."""
    from faceml.evaluation.evaluate import run_heads
    from faceml.evaluation.groups import group_breakdown
    from faceml.evaluation.interpretation import Interpretation

    run = runs[0]
    cfg = run.config
    st = run.status()
    d = cfg["data"]
    ids = " ".join(r.id for r in runs)
    if frames is not None:
        test = Interpretation.from_frame(frames["test"], run_heads(run), dataset=d["dataset"],
                                         split="test").summary()
        preds = frames["test"]
    else:
        test = run.metrics().get("test") or {}
        preds = run.predictions()
    kind = (f"the average of {len(runs)} models" if len(runs) > 1 else "one model") + (
        ", each also shown the mirrored face (test-time augmentation)" if mirror else "")
    lines = [f"# Model card: {name}", "",
             f"Trained by FaceML's own CLI; the bundled model is {kind}:",
             *[_trained_line(r) for r in runs], "",
             "## Data and split",
             f"- Dataset: `{d['dataset']}`" + (f" from `{d['path']}`" if d.get("path") else ""),
             f"- Split: stratified and seeded (seed {d['seed']}), "
             f"{' / '.join(f'{v:.0%}' for v in d['split'])} train / val / test; "
             f"{st.get('n_train', '?')} training and {st.get('n_val', '?')} validation faces.",
             "- Malformed file names in the folder are reported and skipped.",
             *(["- Members and test-time augmentation were chosen on the validation split; the "
                "test split was used once, for the numbers below."] if frames is not None else []),
             "",
             "## Preprocessing (carried inside the model)",
             f"- Input: raw 0–255 pixels, {d['size']}×{d['size']} {d['color'].upper()}, face crop "
             "centre-cropped to a square and resized bilinearly (`faceml.data.imageio.to_pixels`).",
             "- Per-channel mean/std scaling fitted on the training split only "
             "(`FacePreprocessing` layer), so the `.keras` file takes raw pixels.", "",
             "## How it was made", "```bash",
             *([f"python -m faceml shrink --path {shlex.quote(test_path)} --size {d['size']} "
                f"--color {d['color']} --quality 90 --out {shlex.quote(str(d['path']))}"]
               if test_path else []),
             *[train_command(r.config) for r in runs],
             f"python -m faceml bundle {ids} --name {name}" + (" --mirror" if mirror else "")
             + (f" --test-path {shlex.quote(test_path)}" if test_path else ""), "```", "",
             f"Heads {', '.join(cfg['heads'])}.", "",
             "## Metrics on the test split"]
    rows = [{"head": head, **vals} for head, vals in (test.get("heads") or {}).items()]
    if rows:
        import pandas as pd

        lines += [f"Dataset `{test.get('dataset')}`, split `{test.get('split')}`, "
                  f"n = {test.get('n')}.", "", _card_table(pd.DataFrame(rows)), ""]
    if test_path:
        lines += [f"The models trained on a copy of the images already at {d['size']} px "
                  f"(JPEG quality 90, `{d['path']}`); these numbers are from the original "
                  f"images in `{test_path}` (the same {test.get('n')} test faces).", ""]
    if preds is not None:
        test_preds = preds[preds["split"] == "test"]
        lines += ["## Per group (test split, 95 % intervals)", ""]
        for head in cfg["heads"]:
            others = [g for g in ("race", "gender") if g != head and
                      (f"group_{g}" in test_preds or f"{g}_true" in test_preds)]
            by = others + (["age_years"] if "group_age_years" in test_preds and head != "age"
                           else [])
            for col in by:
                gb = group_breakdown(test_preds, head, [col], seed=0)
                lines += [f"**{head} by {col.replace('_years', '')}**", "", _card_table(gb), ""]
    lines.append(MODEL_CARD_ETHICS)
    return "\n".join(lines)


def bundle(runs, name: str, out_dir: Path | None = None, test_path: str | None = None,
           mirror: bool = False) -> tuple[Path, Path]:
    """Write ``models/NAME.keras`` (no optimizer state), its card and its validation answers.

    ``runs``: a finished run, or several (their best models are averaged, see
    :mod:`faceml.modeling.ensemble`); ``mirror``: also average each model's answer on the mirrored
    face;
    ``test_path``: score on these original images (the runs trained on a ``shrink`` copy)."""
    from faceml.modeling.modelio import save_model

    runs = [runs] if not isinstance(runs, list | tuple) else list(runs)
    if not NAME_RE.match(name):
        raise FaceMLError(f"model name must be lowercase letters, digits, '-' or '_': {name!r}")
    if len({r.id for r in runs}) != len(runs):
        raise FaceMLError("each run can be in an ensemble once")
    _check_members(runs)
    out = Path(out_dir) if out_dir is not None else paths.models_dir()
    out.mkdir(parents=True, exist_ok=True)
    models = [r.load_model("best") for r in runs]  # compile=False: weights and preprocessing
    if len(runs) > 1 or mirror:
        from faceml.modeling.ensemble import build_ensemble

        model = build_ensemble(models, mirror=mirror, name=f"faceml_{name.replace('-', '_')}")
    else:
        model = models[0]
    frames = None
    if len(runs) > 1 or mirror or test_path:
        frames = {split: rescore(model, runs[0], split, test_path) for split in ("val", "test")}
    mpath = out / f"{name}.keras"
    save_model(model, mpath)
    card = out / f"{name}.md"
    card.write_text(model_card(runs, name, frames, test_path, mirror))
    preds = frames["val"] if frames is not None else runs[0].predictions()
    if preds is not None:  # validation answers: the Predict page's age intervals and rare groups
        keep = ["split"] + [c for h in runs[0].config["heads"] for c in (f"{h}_true", f"{h}_pred")]
        # only labels and answers: no file names, no other columns of the dataset
        preds.loc[preds["split"] == "val", keep].to_csv(out / f"{name}.predictions.csv",
                                                          index=False)
    return mpath, card

