"""``python -m faceml bundle RUN_ID… [--with FILE.keras[#N]] --name NAME``: a finished run (or the
average of several, and of a bundled file's members) into ``models/`` with its model card;
``bundle --split-of RUN_ID --with FILE.keras …``: files' members alone, scored on that run's
split."""

from __future__ import annotations


def add_arguments(s) -> None:
    s.add_argument("run_ids", nargs="*", metavar="RUN_ID",
                   help="one run, or several to average (an ensemble); none with --split-of")
    s.add_argument("--split-of", default=None, metavar="RUN_ID",
                   help="score the bundle on this finished run's split without making it a "
                        "member (the --with members of earlier bundles, e.g. calibrated)")
    s.add_argument("--mirror", action="store_true",
                   help="also average each model's answer on the mirrored face")
    s.add_argument("--with", dest="with_files", action="append", default=[],
                   metavar="FILE.keras[#N]|RUN_ID",
                   help="also average the members of this bundled model, or only its N-th "
                        "(FILE.keras#2), or a finished run on some of the datasets only; it "
                        "must have trained on the run's own split of each dataset it saw: "
                        "checked")
    s.add_argument("--float16", action="store_true",
                   help="store the kernels at half precision: about half the file (it still "
                        "computes in float32)")
    s.add_argument("--calibrate-age", action="store_true",
                   help="map the answered age by a line fitted on the validation split's exact "
                        "ages (median regression; the card gives its cross-fitted MAE)")
    s.add_argument("--head-members", default=None, metavar="HEAD=N,N[;HEAD=N…]",
                   help="answer a head by some members only, numbered as the card lists them "
                        "(the runs, then the --with members), e.g. gender=1,2")
    s.add_argument("--name", required=True)
    s.add_argument("--out", default=None, help="folder (default: the project's models/)")
    s.add_argument("--test-path", default=None, metavar="FOLDER|NAME=FOLDER,…",
                   help="score val and test on these original images (the run trained on a "
                        "`shrink` copy of them); a run on several datasets takes a folder per "
                        "dataset, e.g. utkface=ORIGINALS (one left out is read where it "
                        "trained)")


def run(a) -> int:
    from faceml.errors import FaceMLError
    from faceml.modeling.ensemble import parse_head_members
    from faceml.runs import RunStore, valid_run_id
    from faceml.serving.bundle import SIZE_LIMIT_MB, bundle, member_file

    store = RunStore()
    files = [f for f in a.with_files if member_file(f)[0].endswith(".keras")]
    for f in a.with_files:
        if f not in files and not valid_run_id(f):
            raise FaceMLError(f"--with takes a bundled FILE.keras (FILE.keras#N: one member) or "
                              f"a finished run's id: {f[:80]!r} is neither")
    mpath, card = bundle([store.get(r) for r in a.run_ids], a.name, a.out, a.test_path,
                         a.mirror, with_files=files, float16=a.float16,
                         calibrate_age=a.calibrate_age,
                         split_of=store.get(a.split_of) if a.split_of else None,
                         head_members=parse_head_members(a.head_members or ""),
                         with_runs=[store.get(r) for r in a.with_files if r not in files])
    size = mpath.stat().st_size / 1e6
    over = f" — over the {SIZE_LIMIT_MB:g} MB limit" if size > SIZE_LIMIT_MB else ""
    print(f"{mpath} ({size:.1f} MB{over})\n{card}")
    return 0
