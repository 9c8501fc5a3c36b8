"""Score candidate bundles on the **validation** split only, per dataset (never the test split).

    python -m scripts.val_candidates --split-of RUN_ID [--json] \
        LABEL=ITEM+ITEM[+mirror][+float16][+HEAD=N,N] …

Each ITEM is a finished run id (its best checkpoint; a run on some of the datasets only joins
as ``bundle --with RUN_ID`` does) or a bundled ``.keras`` file (all its members;
``FILE.keras#2`` takes its second member only); ``+mirror`` also averages each member's answer
on the mirrored face, as ``bundle --mirror`` does, and ``+float16`` stores the kernels at half
precision, as ``bundle --float16`` does; ``+gender=1,2`` answers gender by the first two members
only, as ``bundle --head-members gender=1,2`` does. Every candidate is scored on the
validation split of ``--split-of`` (a run whose split every member shares: checked as
``bundle --with`` checks it), read from that run's own folders, and saved to a scratch file to
report its size and, loaded back, its time a face (``bundle``'s measure: one face a call).
Prints a Markdown table (or one JSON line per candidate) with each dataset's validation numbers,
so a bundle can be chosen on validation before any test split is scored, and whether to
bundle it with ``--calibrate-age`` (the map's cross-fitted MAE, and the MAE with it of the
datasets left out of its fit). Each member is
predicted once for the whole grid (:class:`Members`): a candidate is scored from its members'
answers, averaged as its ensemble averages them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path


def _is_file(item: str) -> bool:
    from faceml.serving.bundle import member_file

    return member_file(item)[0].endswith(".keras")


def _members(item: str, store, run):
    """``(models, file members, plain runs)`` of one ITEM: a run on the split run's data is a
    plain member, a run on other data (fewer datasets) is checked as a file member is."""
    from faceml.serving.bundle import file_members, run_member

    if not _is_file(item):
        other = store.get(item)
        if other.config["data"] == run.config["data"]:
            return [other.load_model("best")], [], [other]
        found = [run_member(other)]
    else:
        found = file_members(item)
    return [fm.model for fm in found], found, []


class Members:
    """Each member's answers on the validation faces, predicted once for every candidate that
    has it.

    A candidate's ensemble answers the mean of its members' answers (each member's on the face
    and, with ``+mirror``, on its mirror: every member has as many views, so the mean of the
    members' means is the ensemble's mean). So a candidate is scored from its members' cached
    answers, and a grid of candidates predicts each (member, float16, mirror) once instead of
    once a candidate. The answers come from copies loaded here once: a Keras model called in
    one ensemble can't be saved in another, so the ensemble a candidate ships (saved and timed)
    is built from its own copies."""

    def __init__(self, store, run):
        self.store, self.run = store, run
        self._models: dict[tuple, object] = {}
        self._answers: dict[tuple, dict] = {}
        self.predicted = 0  # members predicted so far (the rest came from the cache)

    def model(self, item: str, i: int, float16: bool):
        """ITEM's ``i``-th model (its float16 copy with ``float16``), loaded once."""
        from faceml.modeling.ensemble import half_kernels

        if (item, i, False) not in self._models:
            for j, m in enumerate(_members(item, self.store, self.run)[0]):
                self._models[item, j, False] = m
        if (item, i, float16) not in self._models:
            self._models[item, i, float16] = half_kernels(self._models[item, i, False])
        return self._models[item, i, float16]

    def predict(self, keys: list[tuple], mirror: bool, head_members: dict | None = None):
        """A ``predict`` for :func:`~faceml.serving.bundle.rescore`: the mean of the members'
        answers on ``x`` (each on the face and, with ``mirror``, its mirror); ``keys``:
        ``(item, i, float16)`` of each member; ``head_members``: ``{head: [1, 2]}``, a head
        averaged over those members only (as ``build_ensemble`` does)."""
        import numpy as np

        from faceml.modeling.ensemble import build_ensemble
        from faceml.modeling.modelio import predict_arrays

        def answer(_model, x, batch_size):
            faces = (x.shape, x.dtype.str, hashlib.blake2b(np.ascontiguousarray(x)).hexdigest())
            outs = []
            for key in keys:
                k = (key, mirror, faces)
                if k not in self._answers:
                    one = build_ensemble([self.model(*key)], mirror=mirror, name="one_member")
                    self._answers[k] = predict_arrays(one, x, batch_size)
                    self.predicted += 1
                outs.append(self._answers[k])
            chosen = head_members or {}
            return {h: np.mean([o[h] for i, o in enumerate(outs, 1) if i in chosen.get(h, [i])],
                               axis=0, dtype=np.float64).astype(outs[0][h].dtype)
                    for h in outs[0]}
        return answer


def candidate(spec: str, run, members: Members):
    """``(label, model, predict)`` of one ``LABEL=ITEM+ITEM[+mirror][+float16][+HEAD=N,N]``: its
    ensemble (to save and time) and the ``predict`` that scores it from its members' cached
    answers. ``HEAD=N,N`` answers that head by those members only, as ``bundle
    --head-members`` does."""
    from faceml.modeling.ensemble import build_ensemble, half_kernels, parse_head_members
    from faceml.serving.bundle import check_file_members, check_members

    label, _, body = spec.partition("=")
    parts = body.split("+")
    flags = {"mirror", "float16"} & set(parts)
    head_members = parse_head_members(";".join(p for p in parts if "=" in p))
    items = [i for i in parts if i and i not in flags and "=" not in i]
    models, files, runs, keys = [], [], [], []
    for item in items:
        m, f, r = _members(item, members.store, run)
        keys += [(item, i, "float16" in flags) for i in range(len(m))]
        models += m
        files += f
        runs += r
    if not models:
        raise SystemExit(f"{spec!r}: no member")
    # the same checks as bundle: runs share the split run's data and heads, files its split
    check_members([run, *(r for r in runs if r.id != run.id)])
    check_file_members([run], files)
    if "float16" in flags:
        models = [half_kernels(m) for m in models]
    model = build_ensemble(models, mirror="mirror" in flags, name="candidate",
                           head_members=head_members)
    return label, model, members.predict(keys, "mirror" in flags, head_members)


def score(model, run, predict=None):
    """``({dataset: summary}, frame)`` on ``run``'s validation split (``Interpretation.by_dataset``,
    as ``evaluate --json`` prints it, and the predictions frame); ``predict`` as
    :func:`~faceml.serving.bundle.rescore`'s."""
    from faceml.evaluation.evaluate import interpret
    from faceml.serving.bundle import rescore

    frame = rescore(model, run, "val", predict=predict)
    return {d: part.summary() for d, part in interpret(frame).by_dataset().items()}, frame


def age_map(frame) -> dict | None:
    """The candidate as ``bundle --calibrate-age`` would ship it, on validation: the map fitted on
    the exact ages, their MAE without it and cross-fitted with it, and every other dataset's MAE
    with it (not in the fit: an honest check); None when there are too few exact ages."""
    from faceml.errors import FaceMLError
    from faceml.serving.calibration import fit_age_map, mapped_mae

    try:
        m = fit_age_map(frame)
    except FaceMLError:
        return None
    return {"scale": round(m.scale, 4), "offset": round(m.offset, 3), "n": m.n,
            "fitted_on": list(m.datasets), "mae_before": m.mae_before, "mae_cv": m.mae_cv,
            "mae_other": {d: v for d, v in mapped_mae(frame, m).items()
                          if d not in m.datasets}}


def shipped(model) -> tuple[float, float]:
    """``(MB, ms a face)`` of ``model`` as ``bundle`` would ship it: the size of its saved file,
    and the bundler's own speed measure (median wall time of one face) on that file loaded back
    with ``safe_mode=True``."""
    from faceml.modeling.modelio import load_model, save_model
    from faceml.serving.bundle import measure_speed

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "candidate.keras"
        save_model(model, path)
        return path.stat().st_size / 1e6, measure_speed(load_model(path))["median_ms"]


def _age_map_cell(m: dict | None) -> str:
    if m is None:
        return "–"
    fitted = ", ".join(m["fitted_on"]) or "its faces"
    return "; ".join([f"{fitted} {m['mae_cv']:.3f} (cross-fitted, {m['mae_before']:.3f} "
                      "without)", *(f"{d} {v:.3f}" for d, v in m["mae_other"].items())])


def main(argv=None) -> int:
    from faceml.runs import RunStore

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--split-of", required=True, metavar="RUN_ID")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("candidates", nargs="+", metavar="LABEL=ITEM+ITEM[+mirror]")
    a = ap.parse_args(argv)
    store = RunStore()
    run = store.get(a.split_of)
    rows, members = [], Members(store, run)
    for spec in a.candidates:
        label, model, predict = candidate(spec, run, members)
        by_dataset, frame = score(model, run, predict)
        mb, ms = shipped(model)
        row = {"candidate": label, "size_mb": round(mb, 2), "ms_per_face": round(ms, 2),
               "val": by_dataset, "age_map": age_map(frame)}
        rows.append(row)
        if a.json:
            print(json.dumps(row), flush=True)
    if not a.json:
        cols = [(d, h, m) for d, heads in rows[0]["val"].items()
                for h, ms in heads["heads"].items()
                for m in (("mae",) if "mae" in ms else ("accuracy",))]
        print("| candidate (validation split) | MB | ms a face | "
              + " | ".join(f"{d} {h} {'MAE' if m == 'mae' else 'acc.'}" for d, h, m in cols)
              + " | age MAE with --calibrate-age |")
        print("|---|---|---|" + "---|" * len(cols) + "---|")
        for r in rows:
            vals = [r["val"].get(d, {}).get("heads", {}).get(h, {}).get(m) for d, h, m in cols]
            print(f"| {r['candidate']} | {r['size_mb']:.1f} | {r['ms_per_face']:.1f} | "
                  + " | ".join("–" if v is None else f"{v:.3f}" for v in vals)
                  + f" | {_age_map_cell(r['age_map'])} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
