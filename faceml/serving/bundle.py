"""Bundle a finished run (or the average of several) as a pretrained model in ``models/``.

    python -m faceml bundle RUN_ID --name my-model
    python -m faceml bundle RUN_A RUN_B --mirror --name utkface-multitask --test-path ORIGINALS

    python -m faceml bundle RUN_ID --name faceml-v2 --test-path utkface=ORIGINALS,fairface=F
    python -m faceml bundle RUN_ID --with models/utkface-multitask.keras --mirror --name faceml-v2

writes ``models/NAME.keras`` (weights and preprocessing, no optimizer state),
``models/NAME.predictions.csv`` (its validation answers, for the Predict page's age intervals
and rare-group warnings) and ``models/NAME.md`` — the card: data and split, preprocessing,
the exact command that trained
it, the file's size and CPU time per face, metrics overall and per group on the test split,
intended use, limits and ethics.

A run trained on several datasets at once (``data.dataset`` ``"utkface,fairface"``) gets a card
with a section per dataset: its own test split's numbers with 95 % intervals (each in the terms
its labels allow: FairFace's race in the merged 5 classes, its age against bin midpoints and as
the share of predictions inside the true bin) and a race × gender × age band table. Its
``--test-path`` is per dataset (``NAME=FOLDER,…``), and every dataset's val and test split read
there is checked to be the run's own, face by face. Its predictions CSV keeps each face's
``dataset`` and ``age_bin`` (the Predict page calibrates age intervals on exact ages only).

``--with FILE.keras`` adds the members of an already bundled model (an ensemble's members, or the
model itself) to the average. Each must have trained on the run's own split of every dataset it
saw (the split options its ``FacePreprocessing`` metadata records: seed, fractions, sample,
strata, held-out mode) and on no other dataset, so the run's val and test splits are held out
for every member; the card names the file and its members, and points to the file's own card
for the commands that made them. ``--with RUN_ID`` adds a finished run trained on some of the
datasets only (UTKFace alone, beside runs on UTKFace and FairFace), checked the same way; the
card gives its train command.

``--float16`` stores every member's convolution and dense kernels at half precision
(:func:`faceml.modeling.ensemble.half_kernels`): about half the file, so more members fit the
size limit; the model still computes in float32.
"""

from __future__ import annotations

import math
import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from faceml import paths
from faceml.errors import FaceMLError
from faceml.flags import parse_path, train_command  # the card's train line, from the flags
from faceml.markdown import md_table, model_card_ethics

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
SIZE_LIMIT_MB = 10.0
"""A bundled file's size limit (the repository ships it)."""
TIME_LIMIT_MS = 20.0
"""CPU time per face a bundled model should stay under (one face, batch 1, warm)."""
AGE_BANDS = (0, 20, 40, 60, math.inf)
"""The card's age bands (0-19, 20-39, 40-59, 60+): each FairFace bin lies inside one, so a band
is exact for binned ages too."""
SHRINK_QUALITY = 90  # the JPEG quality the card's shrink line names
SPLIT_FIELDS = ("seed", "split", "fraction", "stratify", "holdout")
"""The ``PrepOptions`` fields that decide which faces fall in which split (with the files)."""


@dataclass
class FileMember:
    """A member added with ``--with``: the file as given (``FILE.keras[#N]``) or a run id, the
    member model, its ``FacePreprocessing`` metadata, and the run (a run id's) or None."""

    path: str
    model: object
    meta: dict
    run: object = None


def run_member(run) -> FileMember:
    """A finished run as a ``--with`` member: its best checkpoint, which may have trained on
    fewer datasets than the bundle's runs (checked by :func:`check_file_members`)."""
    from faceml.modeling.layers import find_preprocessing

    _finished(run)
    model = run.load_model("best")
    return FileMember(run.id, model, dict(find_preprocessing(model).metadata or {}), run)


def member_file(path: str | Path) -> tuple[str, int | None]:
    """``"FILE.keras#2"`` → ``("FILE.keras", 2)``: a bundled file and one of its members by
    number (from 1); ``(path, None)`` for the whole file."""
    text = str(path)
    file, sep, number = text.rpartition("#")
    if sep and number.isdigit() and file.endswith(".keras"):
        return file, int(number)
    return text, None


def file_members(path: str | Path) -> list[FileMember]:
    """The FaceML models inside a bundled file, loaded with ``safe_mode=True``: an ensemble's
    members (so ``--mirror`` is not applied twice), else the model itself; ``FILE.keras#N``:
    its N-th member only (:func:`member_file`)."""
    import keras

    from faceml.modeling.layers import FacePreprocessing, find_preprocessing
    from faceml.modeling.modelio import load_model

    file, number = member_file(path)
    model = load_model(file)
    inner = []
    if not any(isinstance(layer, FacePreprocessing) for layer in model.layers):
        for layer in model.layers:
            if isinstance(layer, keras.Model):
                try:
                    find_preprocessing(layer)
                except LookupError:
                    continue
                inner.append(layer)
    found = inner or [model]
    if number is not None:
        if not 1 <= number <= len(found):
            raise FaceMLError(f"{Path(file).name} holds {len(found)} model(s): it has no "
                              f"member #{number}")
        found = [found[number - 1]]
    return [FileMember(str(path), m, dict(find_preprocessing(m).metadata or {})) for m in found]


def check_file_members(runs, members: list[FileMember]) -> None:
    """Each file member trained on the run's own split of each dataset it saw, and on nothing
    else: otherwise some of the run's val or test faces could be its training faces."""
    from faceml.data.prepare import PrepOptions

    run = runs[0]
    opts = PrepOptions.from_dict(run.config["data"])
    for fm in members:
        where = f"{Path(fm.path).name} ({fm.model.name})"
        if not fm.meta.get("data"):
            raise FaceMLError(f"{where} does not record the data it trained on, so its split "
                              "cannot be checked against the run's: bundle it on its own")
        theirs = PrepOptions.from_dict(fm.meta["data"])
        for d in theirs.datasets:
            if d not in opts.datasets:
                raise FaceMLError(f"{where} trained on {d}, which run {run.id} did not: the card "
                                  f"would have no held-out {d} faces to score it on")
            mine = opts.part(d) if opts.multi else opts
            other = theirs.part(d) if theirs.multi else theirs
            differ = [k for k in SPLIT_FIELDS if _split_value(mine, k) != _split_value(other, k)]
            if differ:
                raise FaceMLError(
                    f"{where} split {d} differently from run {run.id} ("
                    + ", ".join(f"{k} {_split_value(other, k)} vs {_split_value(mine, k)}"
                                for k in differ)
                    + "): the run's val and test faces could be its training faces")


def _split_value(opts, key: str):
    v = getattr(opts, key)
    return tuple(round(float(x), 6) for x in v) if key == "split" else v


def _card_table(df) -> str:
    return md_table(df, digits=3, thousands=False)  # the card's numbers: 3 decimals, plain ints


def parse_test_paths(run, given) -> str | dict | None:
    """``--test-path`` in the form ``run``'s data takes: one folder (a run on one dataset; its
    ``NAME=FOLDER`` form too) or ``{dataset: folder}`` (several; a dataset left out is read
    where it trained). Text is parsed as the ``--path`` flag is. FaceMLError, naming the run's
    datasets, for a name the run was not trained on."""
    from faceml.data.prepare import PrepOptions

    if isinstance(given, str):
        given = parse_path(given.strip(), "--test-path")
    if not given:
        return None
    names = PrepOptions.from_dict(run.config["data"]).datasets
    if isinstance(given, dict):
        stray = [d for d in given if d not in names]
        if stray:
            raise FaceMLError(f"--test-path names {stray[0]!r}, but run {run.id} was trained on "
                              f"{', '.join(names)}: give NAME=FOLDER for those")
        empty = [d for d, p in given.items() if not str(p or "").strip()]
        if empty:
            raise FaceMLError(f"--test-path gives {empty[0]!r} no folder (NAME=FOLDER)")
    elif len(names) > 1:
        raise FaceMLError(f"run {run.id} was trained on several datasets ({', '.join(names)}): "
                          f"give --test-path a folder per dataset, e.g. {names[0]}=FOLDER")
    else:
        given = {names[0]: given}
    for d, p in given.items():
        if not Path(str(p)).expanduser().is_dir():
            raise FaceMLError(f"--test-path {d}={p}: no such folder")
    return given[names[0]] if len(names) == 1 else {d: str(p) for d, p in given.items()}


def _where(opts, d: str) -> str:
    """Where dataset ``d`` of ``opts`` is read from, for a card or a message: its path as given,
    or its default location (relative to the project when it can be)."""
    from faceml import data as datasets

    p = opts.part(d).path if opts.multi else opts.path
    if p:
        return str(p)
    loc = datasets.get(d).location(None)
    if loc is None:
        return "(generated, no folder)"
    try:
        return os.path.relpath(loc, paths.PROJECT_ROOT)
    except ValueError:
        return str(loc)


def rescore(model, run, split: str, path: str | dict | None = None, predict=None):
    """``model``'s predictions frame on ``run``'s own ``split``, read from ``path`` (another
    copy of the same data: the original of a ``python -m faceml shrink`` copy; for a run on
    several datasets ``{dataset: folder}``) or from the run's own data. The split is seeded on
    names and labels, so it is the same faces: that is checked against the run's stored
    predictions (per dataset for several), not assumed. ``predict``: as
    :func:`~faceml.evaluation.evaluate.evaluate_model`'s."""
    from dataclasses import replace

    from faceml.evaluation.evaluate import evaluate_model
    from faceml.data.prepare import PrepOptions

    opts = PrepOptions.from_dict(run.config["data"])
    if opts.multi:
        return _rescore_several(model, run, opts, split, path or {}, predict)
    if path:
        opts = replace(opts, path=str(path))
    frame = evaluate_model(model, opts, split=split, predict=predict)
    preds = run.predictions()
    own = set(preds.loc[preds["split"] == split, "source"]) if preds is not None else set()
    if own != set(frame["source"]):
        raise FaceMLError(f"the {split} split read from {path or opts.path} is not run "
                          f"{run.id}'s own {split} split ({len(set(frame['source']) ^ own)} faces "
                          f"differ): is it a copy of {run.config['data'].get('path')}?")
    frame["split"] = split
    return frame


def _rescore_several(model, run, opts, split: str, given: dict, predict=None):
    from dataclasses import replace

    from faceml.evaluation.evaluate import evaluate_model
    from faceml.evaluation.predictions import dataset_rows

    if not isinstance(given, dict):
        raise FaceMLError(f"run {run.id} was trained on several datasets: give a folder per "
                          "dataset ({name: folder})")
    read = replace(opts, path={**(opts.path if isinstance(opts.path, dict) else {}), **given})
    frame = evaluate_model(model, read, split=split, predict=predict)
    preds = run.predictions()
    for d in opts.datasets:
        mine, theirs = (dataset_rows(f[f["split"] == split], d) if f is not None else None
                        for f in (frame, preds))
        got = set(mine["source"]) if mine is not None else set()
        own = set(theirs["source"]) if theirs is not None else set()
        if got != own:
            raise FaceMLError(f"the {split} split of {d} read from {_where(read, d)} is not run "
                              f"{run.id}'s own {split} split of {d} ({len(got ^ own)} faces "
                              f"differ): is it a copy of {_where(opts, d)}?")
    frame["split"] = split
    return frame


def _finished(run) -> None:
    state = run.status().get("state")
    if state != "done":
        raise FaceMLError(f"run {run.id} is {state}; only finished runs are bundled")


def check_members(runs) -> None:
    """Every run is finished, and all trained on the same data (so the same split) and heads."""
    for r in runs:
        _finished(r)
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


def measure_speed(model, warmup: int = 10, calls: int = 100) -> dict:
    """CPU time per face of ``model``: one face at a time (batch 1, ``predict_on_batch``, as
    the Predict page calls it), after ``warmup`` calls, on this machine's CPU (the backend's CPU
    device even where a GPU is present). ``median_ms``/``p90_ms``: wall time of a call;
    ``process_cpu_ms``: the process's CPU time per call (every thread); ``backend``, ``cores``,
    ``calls``, ``warmup``, ``input`` (what was fed: a fixed random face of the model's size)."""
    import contextlib
    import time

    import keras
    import numpy as np

    from faceml.modeling.layers import find_preprocessing

    pre = find_preprocessing(model)
    size, c = int(pre.image_size), 1 if pre.color == "gray" else 3
    x = np.random.default_rng(0).integers(0, 256, (1, size, size, c), dtype=np.uint8)
    backend = keras.backend.backend()
    cpu = contextlib.nullcontext()
    if backend == "tensorflow":
        import tensorflow as tf

        cpu = tf.device("/CPU:0")
    elif backend == "jax":
        import jax

        cpu = jax.default_device(jax.devices("cpu")[0])
    with cpu:
        for _ in range(warmup):
            model.predict_on_batch(x)
        wall = []
        c0 = time.process_time()
        for _ in range(calls):
            t0 = time.perf_counter()
            model.predict_on_batch(x)
            wall.append(time.perf_counter() - t0)
        proc = (time.process_time() - c0) / calls
    ms = np.asarray(wall) * 1000
    return {"median_ms": float(np.median(ms)), "p90_ms": float(np.percentile(ms, 90)),
            "process_cpu_ms": proc * 1000, "backend": backend, "cores": os.cpu_count(),
            "calls": calls, "warmup": warmup, "input": f"{size}×{size}×{c} uint8"}


def _size_and_speed(name: str, size_mb: float | None, speed: dict | None) -> list[str]:
    if size_mb is None and speed is None:
        return []
    lines = ["## Size and speed"]
    if size_mb is not None:
        ok = "within" if size_mb <= SIZE_LIMIT_MB else "**over**"
        lines.append(f"- File `{name}.keras`: {size_mb:.1f} MB ({ok} the {SIZE_LIMIT_MB:g} MB "
                     "limit).")
    if speed is not None:
        ok = "within" if speed["median_ms"] <= TIME_LIMIT_MS else "**over**"
        lines.append(
            f"- CPU time per face: {speed['median_ms']:.1f} ms median, {speed['p90_ms']:.1f} ms "
            f"at the 90th percentile ({ok} the {TIME_LIMIT_MS:g} ms limit). Measured by the "
            f"bundler on the saved file loaded back: one face at a time (batch 1, "
            f"`predict_on_batch`, as the Predict page calls it; a fixed random "
            f"{speed['input']} input), {speed['warmup']} warm-up calls, then the wall time of "
            f"{speed['calls']} calls on the CPU ({speed['cores']} cores, Keras backend "
            f"{speed['backend']}); the process used {speed['process_cpu_ms']:.1f} ms of CPU per "
            "call, all threads together. Detection and decoding the photo are not included.")
    return lines + [""]


def model_card(runs: list, name: str, frames: dict | None = None,
               test_path: str | dict | None = None, mirror: bool = False, *,
               size_mb: float | None = None, speed: dict | None = None,
               files: list[FileMember] = (), float16: bool = False, age_map=None,
               anchor=None, head_members: dict | None = None) -> str:
    """The card's Markdown. ``runs``: the bundled run(s), one or the members of an ensemble;
    ``frames``: ``{"val": …, "test": …}`` predictions of the bundled model made by
    :func:`rescore` (needed for an ensemble, a mirrored model or ``test_path``); otherwise the
    run's stored predictions are used. ``size_mb``/``speed`` (:func:`measure_speed`): the
    bundled file's; ``files``: members added with ``--with``; ``float16``: the kernels are stored
    at half precision; ``age_map``: the model's age calibration
    (:class:`~faceml.serving.calibration.AgeMap`); ``anchor``: the run whose split the bundle
    was scored on when it is not a member (``bundle --split-of``); ``head_members``: heads
    answered by some members only. A run on several datasets gets a section per dataset."""
    from faceml.data.prepare import PrepOptions
    from faceml.evaluation.evaluate import run_heads
    from faceml.evaluation.groups import group_breakdown
    from faceml.evaluation.interpretation import Interpretation

    run = anchor or runs[0]
    if PrepOptions.from_dict(run.config["data"]).multi:
        return _several_card(runs, name, frames, test_path or {}, mirror, size_mb, speed,
                             files, float16, age_map, anchor, head_members)
    cfg = run.config
    st = run.status()
    d = cfg["data"]
    if frames is not None:
        test = Interpretation.from_frame(frames["test"], run_heads(run), dataset=d["dataset"],
                                         split="test").summary()
        preds = frames["test"]
    else:
        test = run.metrics().get("test") or {}
        preds = run.predictions()
    lines = [*_header(runs, name, mirror, files=files, float16=float16,
                      datasets=[d["dataset"]], head_members=head_members),
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
             *_commands(runs, name, mirror, {d["dataset"]: test_path} if test_path else {},
                        files, float16, age_map is not None, anchor, head_members),
             *_age_map_lines(age_map),
             *_size_and_speed(name, size_mb, speed),
             "## Metrics on the test split"]
    rows = [{"head": head, **vals} for head, vals in (test.get("heads") or {}).items()]
    if rows:
        import pandas as pd

        lines += [f"Dataset `{test.get('dataset')}`, split `{test.get('split')}`, "
                  f"n = {test.get('n')}.", "", _card_table(pd.DataFrame(rows)), ""]
    if test_path:
        lines += [f"The models trained on a copy of the images already at {d['size']} px "
                  f"(JPEG quality {SHRINK_QUALITY}, `{d['path']}`); these numbers are from the "
                  f"original images in `{test_path}` (the same {test.get('n')} test faces).", ""]
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
    lines.append(model_card_ethics([d["dataset"]]))
    return "\n".join(lines)


def _header(runs, name: str, mirror: bool, what: str = "",
            files: list[FileMember] = (), float16: bool = False,
            datasets: list[str] = (), head_members: dict | None = None) -> list[str]:
    n = len(runs) + len(files)
    kind = (f"the average of {n} models" if n > 1 else "one model") + (
        ", each also shown the mirrored face (test-time augmentation)" if mirror else "") + (
        ", with its convolution and dense kernels stored at half precision (float16; it "
        "computes in float32)" if float16 else "")
    return [f"# Model card: {name}", "",
            f"Trained by FaceML's own CLI{what}; the bundled model is {kind}:",
            *[_trained_line(r) for r in runs], *[_file_line(fm, datasets) for fm in files],
            *[f"- The {h} answer averages members {', '.join(map(str, ns))} only, in the order "
              "above (`--head-members`); every other answer averages them all."
              for h, ns in (head_members or {}).items()], ""]


def _file_line(fm: FileMember, datasets: list[str] = ()) -> str:
    """A ``--with`` member's line; "only" when it saw fewer of the bundle's ``datasets``."""
    data = fm.meta.get("data") or {}
    seen = str(data.get("dataset", "?"))
    only = " only" if set(seen.split(",")) < set(datasets) else ""
    if fm.run is not None:
        return (_trained_line(fm.run) + f" (`--with`), trained on {seen}{only}: the run's own "
                "split of it, checked")
    card = Path(member_file(fm.path)[0]).with_suffix(".md").name
    split = " / ".join(f"{float(v):.0%}" for v in data.get("split") or ())
    return (f"- from `{fm.path}` (`--with`): run `{fm.meta.get('run_config', '?')}`, "
            f"`{fm.meta.get('arch', '?')}`, trained on {seen}{only} "
            f"(seed {data.get('seed', '?')}, {split} train / val / test: the run's own split "
            f"of it, checked); its commands are in `{card}`")


def _age_map_lines(age_map) -> list[str]:
    from faceml.serving.calibration import card_lines

    return card_lines(age_map) if age_map is not None else []


def _commands(runs, name: str, mirror: bool, tests: dict,
              files: list[FileMember] = (), float16: bool = False,
              calibrate_age: bool = False, anchor=None,
              head_members: dict | None = None) -> list[str]:
    """The card's ``How it was made``: a shrink line per dataset scored on its originals (where
    ``shrink`` makes such copies), the train line(s) generated from the flags, the bundle line."""
    from faceml.data.prepare import PrepOptions
    from faceml.data.shrink import SHRINKABLE

    cfg = (anchor or runs[0]).config
    opts = PrepOptions.from_dict(cfg["data"])
    ids = "".join(f" {r.id}" for r in runs)
    member_runs = [*runs, *(fm.run for fm in files if fm.run)]
    split_run = ([f"# run {anchor.id}: the split the bundle is scored on (not a member)",
                  train_command(anchor.config)]
                 if anchor is not None and anchor.id not in {r.id for r in member_runs} else [])
    shrinks = ["python -m faceml shrink"
               + (f" --dataset {d}" if d != "utkface" else "")
               + f" --path {shlex.quote(str(p))} --size {opts.size} --color {opts.color} "
               f"--quality {SHRINK_QUALITY} --out {shlex.quote(_where(opts, d))}"
               for d, p in tests.items() if d in SHRINKABLE]
    given = (",".join(f"{d}={p}" for d, p in tests.items()) if opts.multi
             else next(iter(tests.values()), None))
    return ["## How it was made", "```bash", *shrinks,
            *[train_command(r.config) for r in member_runs], *split_run,
            f"python -m faceml bundle{ids}"
            + (f" --split-of {anchor.id}" if anchor is not None else "")
            + "".join(f" --with {shlex.quote(f)}" for f in dict.fromkeys(fm.path for fm in files))
            + f" --name {name}" + (" --mirror" if mirror else "")
            + (" --float16" if float16 else "")
            + (" --calibrate-age" if calibrate_age else "")
            + (" --head-members " + shlex.quote(";".join(
                f"{h}={','.join(map(str, ns))}" for h, ns in head_members.items()))
               if head_members else "")
            + (f" --test-path {shlex.quote(given)}" if given else ""), "```", "",
            f"Heads {', '.join(cfg['heads'])}.", ""]


def _ci(v, lo, hi) -> str:
    """``0.927 (0.917–0.936)``; ``—`` for a missing number, the interval left out when NaN."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    if lo is None or hi is None or math.isnan(lo) or math.isnan(hi):
        return f"{v:.3f}"
    return f"{v:.3f} ({lo:.3f}–{hi:.3f})"


_METRIC_NAMES = {"accuracy": "accuracy", "balanced_accuracy": "balanced accuracy",
                 "auc": "ROC AUC", "mae": "MAE (years)", "inside_bin": "inside the true bin"}


def _coarsened(sub, head: str, d: str) -> str | None:
    """How ``d``'s own classes of ``head`` were mapped into the model's (``A → B, …``), from the
    faces themselves; None when the dataset's classes are the model's."""
    col = f"group_{head}_{d}"
    if col not in sub.columns or f"{head}_true" not in sub.columns:
        return None
    pairs = sorted({(str(a), str(b)) for a, b in zip(sub[col], sub[f"{head}_true"])
                    if isinstance(a, str) and isinstance(b, str) and a != b})
    return ", ".join(f"{a} → {b}" for a, b in pairs) or None


def _has_bins(sub) -> bool:
    return "group_age_bin" in sub.columns and sub["group_age_bin"].map(
        lambda v: isinstance(v, str) and v not in ("", "nan")).any()


def _dataset_metrics(sub, heads, d: str) -> list[str]:
    """One dataset's test numbers: the summary table (as ``python -m faceml evaluate`` prints
    it) and each head's headline numbers with 95 % intervals, said in its labels' terms."""
    import pandas as pd

    from faceml.evaluation.groups import overall_intervals
    from faceml.evaluation.interpretation import Interpretation

    summary = Interpretation.from_frame(sub, heads, dataset=d, split="test").summary()
    rows = [{"head": h, **v} for h, v in summary["heads"].items()]
    lines = [f"Split `test` of `{d}`, n = {summary['n']} faces.", "",
             _card_table(pd.DataFrame(rows)), "", "With 95 % intervals:", "",
             "| head | metric | value (95 % interval) | n | interval |", "|---|---|---|---|---|"]
    binned = _has_bins(sub)
    notes = []
    for h in heads:
        table = overall_intervals(sub, h, bins_column="age_bin" if h.name == "age" and binned
                                  else None, seed=0)
        merged = _coarsened(sub, h.name, d)
        for r in table.itertuples(index=False):
            label = _METRIC_NAMES.get(r.metric, r.metric)
            if merged and r.metric in ("accuracy", "balanced_accuracy", "auc"):
                label += f" ({len(h.classes)} merged classes)"
            if h.name == "age" and r.metric == "mae" and binned:
                label = "MAE against bin midpoints (years)"
            lines.append(f"| {h.name} | {label} | {_ci(r.value, r.ci_low, r.ci_high)} | {r.n} | "
                         f"{r.method} |")
        if merged:
            notes.append(f"{h.name.capitalize()} is scored in the model's {len(h.classes)} "
                         f"classes ({', '.join(h.classes)}): {d}'s annotated classes were "
                         f"merged into them by the declared table ({merged}); the per-group "
                         f"table below groups faces by {d}'s own classes.")
        if h.name == "age" and h.kind == "regression":
            notes.append(
                f"{d}'s ages are bins: a face's true age is its bin's midpoint (75 for "
                "\"more than 70\"; `faceml.data.ages.AGE_BIN_YEARS`), so the MAE includes the "
                "bins' width; \"inside the true bin\" is the share of predicted ages within "
                "[lo, hi + 1] years of the face's bin (the interval the age loss trained on)."
                if binned else f"Age MAE is in years against {d}'s exact annotated ages.")
    return lines + [""] + [f"- {n}" for n in notes] + [""]


def _group_table(sub, heads, d: str) -> list[str]:
    """Race × gender × age band of one dataset's test faces: each head's accuracy (Wilson) or
    age MAE (bootstrap) per group, with its 95 % interval."""
    from faceml.evaluation.groups import group_breakdown

    race = f"race_{d}" if f"group_race_{d}" in sub.columns else "race"
    by = [c for c in (race, "gender", "age")
          if f"group_{c}" in sub.columns or f"{c}_true" in sub.columns]
    if not by:
        return []
    cells: dict[tuple, dict] = {}
    for h in heads:
        gb = group_breakdown(sub, h, by, bins={"age": AGE_BANDS}, seed=0)
        metric = "mae" if h.kind == "regression" else "accuracy"
        for r in gb.to_dict("records"):
            key = tuple(str(r[c]) for c in by)
            cell = cells.setdefault(key, {"n": int(r["n"])})
            text = _ci(r[metric], r[f"{metric}_ci_low"], r[f"{metric}_ci_high"])
            if int(r["n"]) != cell["n"]:
                text += f" (n = {int(r['n'])})"
            cell[h.name] = text
    names = {h.name: (f"{h.name} MAE, years" if h.kind == "regression"
                      else f"{h.name} accuracy") for h in heads}
    if _has_bins(sub) and "age" in names:
        names["age"] = "age MAE vs bin midpoints"
    shown = [c.replace(f"_{d}", "") if c == race else ("age band" if c == "age" else c)
             for c in by]
    lines = ["| " + " | ".join([*shown, "n", *names.values()]) + " |",
             "|" + "|".join("---" for _ in range(len(by) + 1 + len(names))) + "|"]
    for key, cell in cells.items():
        lines.append("| " + " | ".join([*key, str(cell["n"]),
                                        *(cell.get(h, "—") for h in names)]) + " |")
    return lines


def _several_card(runs, name: str, frames, tests: dict, mirror: bool, size_mb, speed,
                  files: list[FileMember] = (), float16: bool = False, age_map=None,
                  anchor=None, head_members: dict | None = None) -> str:
    """The card of a run trained on several datasets at once: a section per dataset."""
    import pandas as pd

    from faceml.data.prepare import PrepOptions
    from faceml.evaluation.evaluate import run_heads
    from faceml.evaluation.predictions import dataset_rows, has_truth

    run = anchor or runs[0]
    cfg = run.config
    opts = PrepOptions.from_dict(cfg["data"])
    read = opts if not tests else PrepOptions.from_dict(
        {**cfg["data"], "path": {**(opts.path if isinstance(opts.path, dict) else {}), **tests}})
    preds = frames["test"] if frames is not None else run.predictions()
    heads = run_heads(run, preds)
    counts, notes = _faces_per_split(read, frames if frames is not None
                                     else {"val": preds, "test": preds})
    table = pd.DataFrame([{"dataset": d, "trained on": f"`{_where(opts, d)}`",
                           **({"scored on": f"`{_where(read, d)}`"} if tests else {}),
                           **counts[d]} for d in opts.datasets])
    split = " / ".join(f"{v:.0%}" for v in opts.split)
    lines = [*_header(runs, name, mirror, f" on {len(opts.datasets)} datasets at once "
                      f"({', '.join(opts.datasets)})", files, float16, opts.datasets,
                      head_members),
             "## Data and split",
             "One model learns from every dataset at once, in one label space "
             "(`faceml/data/multi.py`): a categorical label takes the one class set every "
             "dataset's classes map into through the declared tables (race: UTKFace's five), "
             "age is in years with a dataset's age bins as intervals (`IntervalLoss`: no loss "
             "inside the bin), and a face adds to the loss of its own dataset's labels only.",
             "",
             _card_table(table), "",
             f"- Split: each dataset on its own, stratified and seeded (seed {opts.seed}): "
             "its official held-out split where it has one, the rest carved out of its "
             f"training part ({split} train / val / test). The counts above are faces after "
             "malformed files were reported and skipped.",
             *[f"- Read in: {n}" for n in notes],
             "- Scaling statistics were fitted on the combined training split.",
             *(["- Members and test-time augmentation were chosen on the validation split; the "
                "test split was used once, for the numbers below."] if frames is not None else []),
             "",
             "## Preprocessing (carried inside the model)",
             f"- Input: raw 0–255 pixels, {opts.size}×{opts.size} {opts.color.upper()}. Every "
             "dataset's images were cut to the project's face box (the crop the Predict page's "
             "detector hands the model, measured per dataset) and resized bilinearly "
             "(`faceml.data.imageio.to_pixels`).",
             "- Per-channel mean/std scaling (`FacePreprocessing` layer), so the `.keras` file "
             "takes raw pixels.", "",
             *_commands(runs, name, mirror, tests, files, float16, age_map is not None, anchor,
                        head_members),
             *_age_map_lines(age_map),
             *_size_and_speed(name, size_mb, speed),
             "## Metrics on each dataset's own test split",
             "Every number is on one dataset's own test split, scored once. Source: "
             + ("the bundled model, on the images read from the folders named above."
                if frames is not None
                else f"the run's stored predictions (`python -m faceml evaluate {run.id} --json` "
                     "gives the same numbers under `by_dataset`)."),
             "Intervals: Wilson for a share, a seeded percentile bootstrap (1000 resamples) "
             "otherwise; small groups have wide intervals.", ""]
    if tests:
        lines += ["The model trained on the copies named above; these numbers are from the "
                  "folders it was scored on (the same test faces: checked face by face).", ""]
    test = preds[preds["split"] == "test"] if preds is not None else None
    for d in opts.datasets:
        sub = dataset_rows(test, d) if test is not None else None
        mine = [h for h in heads if sub is not None and has_truth(sub, h)]
        lines += [f"### {d}", ""]
        if not mine:
            lines += [f"No test faces of {d} with labels of the model's heads.", ""]
            continue
        lines += _dataset_metrics(sub, mine, d)
        lines += [f"#### Per group: race × gender × age band ({d}, test split, 95 % intervals)",
                  "", "Age bands " + ", ".join(_band_names()) + (
                      f" (each of {d}'s age bins lies inside one)" if _has_bins(sub) else "")
                  + ". Read a small group's number together with its interval.", "",
                  *_group_table(sub, mine, d), ""]
    lines.append(model_card_ethics(opts.datasets))
    return "\n".join(lines)


def _band_names() -> list[str]:
    from faceml.data.ages import edge_labels

    return edge_labels(AGE_BANDS)


def _faces_per_split(opts, frames: dict) -> tuple[dict[str, dict], list[str]]:
    """Faces per split of each dataset (val and test from the predictions, train from the data:
    its cached arrays; ``?`` when the data is not on disk) and what each adapter changed on the
    way in (``Prepared.notes``, named by dataset)."""
    from faceml.data.prepare import prepare
    from faceml.evaluation.predictions import dataset_rows

    out, notes = {}, []
    for d in opts.datasets:
        try:
            prep = prepare(opts.part(d))
            train = int((prep.frame["split"] == "train").sum())
            notes += [f"{d}: {n}" for n in prep.notes]
        except FaceMLError:
            train = "?"
        row = {"train": train}
        for split in ("val", "test"):
            f = frames.get(split)
            sub = dataset_rows(f[f["split"] == split], d) if f is not None else None
            row[split] = int(len(sub)) if sub is not None else 0
        out[d] = row
    return out, notes


def bundle(runs, name: str, out_dir: Path | None = None, test_path: str | dict | None = None,
           mirror: bool = False, *, measure: bool = True,
           with_files: list[str | Path] = (), with_runs: list = (),
           float16: bool = False, calibrate_age: bool = False,
           split_of=None, head_members: dict | None = None) -> tuple[Path, Path]:
    """Write ``models/NAME.keras`` (no optimizer state), its card and its validation answers.

    ``runs``: a finished run, or several (their best models are averaged, see
    :mod:`faceml.modeling.ensemble`); ``mirror``: also average each model's answer on the mirrored
    face;
    ``test_path``: score on these original images (the runs trained on a ``shrink`` copy): one
    folder, or ``{dataset: folder}`` / ``"NAME=FOLDER,…"`` for a run on several datasets
    (:func:`parse_test_paths`); ``measure``: time the saved model per face for the card;
    ``with_files``: bundled ``.keras`` files whose members join the average (checked to have
    trained on the run's own split, :func:`file_members`); ``with_runs``: finished runs on some
    of the datasets only, checked the same way (:func:`run_member`); ``float16``: kernels
    stored at half precision (:func:`faceml.modeling.ensemble.half_kernels`);
    ``calibrate_age``: the answered age is mapped by a line fitted on the validation split's
    exact ages (:mod:`faceml.serving.calibration`); ``split_of``: a finished run whose split the
    bundle is scored on without being a member (``runs`` may then be empty: a bundle of files'
    members, e.g. an earlier bundle's members calibrated); ``head_members``: ``{head: [1, 2]}``,
    a head answered by those members only (numbered as the card lists them: runs, then
    ``--with`` members; :func:`faceml.modeling.ensemble.build_ensemble`)."""
    from faceml.modeling.ensemble import build_ensemble, half_kernels
    from faceml.modeling.layers import find_preprocessing
    from faceml.modeling.modelio import load_model, save_model

    runs = [runs] if not isinstance(runs, list | tuple) else list(runs)
    if not runs and split_of is None:
        raise FaceMLError("nothing to bundle: give a run, or --with members and --split-of a "
                          "finished run to score them on")
    anchor = split_of if split_of is not None else runs[0]
    if not NAME_RE.match(name):
        raise FaceMLError(f"model name must be lowercase letters, digits, '-' or '_': {name!r}")
    if len({r.id for r in runs}) != len(runs):
        raise FaceMLError("each run can be in an ensemble once")
    check_members([anchor, *(r for r in runs if r.id != anchor.id)])
    files = [fm for f in with_files for fm in file_members(f)]
    files += [run_member(r) for r in with_runs]
    if ({r.id for r in runs} & {r.id for r in with_runs}
            or len({(Path(member_file(fm.path)[0]).resolve(), fm.model.name)
                    for fm in files}) < len(files)):
        raise FaceMLError("each run, file or member of a file can be in an ensemble once")
    check_file_members([anchor], files)
    if not runs and not files:
        raise FaceMLError(f"--split-of {anchor.id} names the split only: add the members with "
                          "--with")
    test_path = parse_test_paths(anchor, test_path)
    out = Path(out_dir) if out_dir is not None else paths.models_dir()
    out.mkdir(parents=True, exist_ok=True)
    # compile=False: weights and preprocessing
    models = [r.load_model("best") for r in runs] + [fm.model for fm in files]
    if float16:
        models = [half_kernels(m) for m in models]
    model = build_ensemble(models, mirror=mirror, name=f"faceml_{name.replace('-', '_')}",
                           calibrate_age=calibrate_age, head_members=head_members)
    meta = find_preprocessing(model).metadata or {}  # the first member's: what is evaluated
    heads = [h["name"] for h in meta.get("heads", [])]
    first = str((meta.get("data") or {}).get("dataset", "?"))
    if split_of is not None and first != str(anchor.config["data"].get("dataset")):
        raise FaceMLError(f"the first member trained on {first}, and run {anchor.id}'s split is "
                          f"of {anchor.config['data'].get('dataset')}: give a member trained on "
                          "the run's datasets first")
    if split_of is not None and heads != list(anchor.config["heads"]):
        raise FaceMLError(f"the members predict {', '.join(heads)}; run {anchor.id} predicts "
                          f"{', '.join(anchor.config['heads'])}: score them on a run with "
                          "their heads")
    age_map = None
    if calibrate_age:  # fitted on the validation answers of the model as built (the identity)
        from faceml.serving.calibration import fit_age_map, set_age_map

        age_map = fit_age_map(rescore(model, anchor, "val", test_path))
        set_age_map(model, age_map)
    frames = None  # the run's stored predictions serve only when this is its own checkpoint
    if model is not models[0] or float16 or test_path or split_of is not None:
        frames = {split: rescore(model, anchor, split, test_path) for split in ("val", "test")}
    mpath = out / f"{name}.keras"
    save_model(model, mpath)
    speed = measure_speed(load_model(mpath)) if measure else None  # what ships: safe_mode=True
    card = out / f"{name}.md"
    card.write_text(model_card(runs, name, frames, test_path, mirror,
                               size_mb=mpath.stat().st_size / 1e6, speed=speed, files=files,
                               float16=float16, age_map=age_map, anchor=split_of,
                               head_members=head_members))
    preds = frames["val"] if frames is not None else runs[0].predictions()
    if preds is not None:  # validation answers: the Predict page's age intervals and rare groups
        val = preds[preds["split"] == "val"]
        keep = ["split"] + [c for h in anchor.config["heads"] for c in (f"{h}_true", f"{h}_pred")]
        # only labels and answers: no file names, no other columns of the dataset; a run on
        # several datasets keeps each face's dataset and age bin (its true age is then a
        # midpoint, which the Predict page leaves out of its age intervals)
        val = val[keep].assign(**{c: val[f"group_{c}"] for c in ("dataset", "age_bin")
                                  if f"group_{c}" in val.columns})
        val.to_csv(out / f"{name}.predictions.csv", index=False)
    return mpath, card
