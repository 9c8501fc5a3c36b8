"""FairFace: ~108k faces balanced over 7 race groups, with an official train/val split.

Layout (as downloaded)::

    fairface/
      fairface_label_train.csv   file,age,gender,race,service_test  (file = train/1.jpg)
      fairface_label_val.csv     (file = val/1.jpg)
      train/1.jpg …
      val/1.jpg …

``age`` is one of 9 bins (a categorical label; :mod:`faceml.data.mapping` gives each bin a
representative age in years). A label CSV saved by a spreadsheet has some bins as dates
(``03-Sep`` for 3-9, ``Oct-19`` for 10-19): they are read back
(:func:`faceml.data.ages.unmangle_bins`) and the scan's ``notes`` say how many; a value that is
no bin, even read as a date, is a skipped item naming the value. The official split is kept in
the ``split`` column (``train`` / ``val``); preprocessing carves its test split out of train
(or, with ``holdout="official"``, only a test fraction asked for). Either CSV alone is accepted
(e.g. a val-only download for evaluation).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from faceml.data.ages import unmangle_bins, unmangled_note
from faceml.data.registry import register
from faceml.data.imageio import FileAdapter
from faceml.data.base import OUTSIDE_FOLDER, BadItem, LabelSpec, Scan, read_label_csv
from faceml.data.mapping import FAIRFACE_AGE_BINS, FAIRFACE_RACES, GENDERS
from faceml.errors import DataError

CSV_NAMES = {"train": "fairface_label_train.csv", "val": "fairface_label_val.csv"}
COLUMNS = ("file", "age", "gender", "race")


def _read_labels(csv: Path) -> pd.DataFrame:
    return read_label_csv("fairface", csv, COLUMNS, dtype=str, keep_default_na=False)


def _stat_dirs(root: Path, files: pd.Series) -> dict[str, tuple[str, int, int]]:
    """``relative path -> (absolute path, size, mtime_ns)`` for the files in the folders that
    ``files`` point into (one scandir per folder instead of one stat per file)."""
    found: dict[str, tuple[str, int, int]] = {}
    parents = {f.rpartition("/")[0] for f in files.unique()}
    for parent in sorted(parents):
        d = root / parent if parent else root
        if not d.is_dir():
            continue
        prefix = f"{parent}/" if parent else ""
        with os.scandir(d) as it:
            for e in it:
                if e.is_file():
                    st = e.stat()
                    found[prefix + e.name] = (e.path, st.st_size, st.st_mtime_ns)
    return found


@register
class FairFaceAdapter(FileAdapter):
    name = "fairface"
    title = "FairFace"
    description = ("~108k faces balanced over 7 race groups, labelled with age bin (9), gender "
                   "and race; official train/val split.")
    needs_path = True
    default_path = "fairface"
    # The project's face box (the Predict page's detector crop) in a FairFace image: on 300
    # random images of the shared copy (112 px, padding 0.25), padded so the whole face shows,
    # the detector found 203, and its crop's side is 0.955 of the image (10th-90th percentile
    # 0.85-1.07), centred (0.50, 0.50). UTKFace chips measure 1.03 (0.94-1.14), their native
    # frame. So a FairFace image is cut to its centre 0.95 when datasets are framed alike.
    face_box = (0.95, 0.0)

    def label_specs(self) -> dict[str, LabelSpec]:
        return {
            "age": LabelSpec("age", "categorical", FAIRFACE_AGE_BINS, "age bin in years"),
            "gender": LabelSpec("gender", "binary", GENDERS),
            "race": LabelSpec("race", "categorical", FAIRFACE_RACES),
        }

    def label_files(self, root: str | Path) -> list[Path]:
        return [Path(root) / n for n in CSV_NAMES.values() if (Path(root) / n).is_file()]

    def found(self, path: str | Path | None = None) -> bool:
        p = self.resolve_path(path)
        return p is not None and any((p / n).is_file() for n in CSV_NAMES.values())

    def scan(self, path: str | Path | None = None, **options) -> Scan:
        root = self.require_dir(path).absolute()
        tables = []
        for split, csv_name in CSV_NAMES.items():
            csv = root / csv_name
            if csv.is_file():
                df = _read_labels(csv)
                df = df.assign(split=split)
                tables.append(df[[*COLUMNS, "split"]])
        if not tables:
            raise DataError(f"fairface: no {CSV_NAMES['train']} or {CSV_NAMES['val']} "
                            f"in {root}")
        df = pd.concat(tables, ignore_index=True)
        if df.empty:
            raise DataError(f"fairface: the label CSVs in {root} have no rows")
        for c in COLUMNS:
            df[c] = df[c].astype(str).str.strip()
        df["file"] = df["file"].str.replace("\\", "/", regex=False).str.removeprefix("./")

        specs = self.label_specs()
        df["age"], mapped = unmangle_bins(df["age"], specs["age"].classes)
        notes = [n for n in [unmangled_note(mapped)] if n]
        reason = pd.Series("", index=df.index, dtype=object)
        for label in ("age", "gender", "race"):
            unknown = ~df[label].isin(specs[label].classes)
            reason[unknown & (reason == "")] = (
                f"unknown {label} " + df.loc[unknown, label].map(repr))
        dup = df["file"].duplicated(keep="first")
        reason[dup & (reason == "")] = "listed more than once"
        outside = df["file"].map(lambda f: f.startswith("/") or ".." in f.split("/"))
        reason[outside & (reason == "")] = OUTSIDE_FOLDER

        files = _stat_dirs(root, df["file"][~outside])
        info = df["file"].map(files)
        missing = info.isna()
        reason[missing & (reason == "")] = "image file is missing"
        bad_mask = (reason != "").to_numpy()
        bad = [BadItem(f, r) for f, r in zip(df["file"][bad_mask], reason[bad_mask])]

        ok = df[~bad_mask]
        if ok.empty:
            if missing.all():
                raise DataError(f"fairface: none of the {len(df)} images listed in the CSVs "
                                f"is in {root} (e.g. {df['file'].iloc[0]})")
            raise DataError(f"fairface: no usable rows in the CSVs in {root} "
                            f"(e.g. {bad[0].source}: {bad[0].reason})")
        stats = info[~bad_mask]
        frame = pd.DataFrame({
            "source": ok["file"].to_numpy(),
            "age": ok["age"].to_numpy(),
            "gender": ok["gender"].to_numpy(),
            "race": ok["race"].to_numpy(),
            "split": ok["split"].to_numpy(),
            "_path": [s[0] for s in stats],
            "_size": np.array([s[1] for s in stats], dtype=np.int64),
            "_mtime": np.array([s[2] for s in stats], dtype=np.int64),
        })
        return Scan(self.name, str(root), frame, specs, bad, notes=notes)

