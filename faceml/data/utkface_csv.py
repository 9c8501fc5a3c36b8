"""UTKFace as the Kaggle ``age_gender.csv``: 23,705 faces as 48×48 gray pixels in a CSV.

Columns: ``age, ethnicity, gender, img_name, pixels`` where ``pixels`` is 2,304 space-separated
gray values (row-major 48×48). The codes are UTKFace's (gender 0 = male, ethnicity 0-4 = White,
Black, Asian, Indian, Others); ethnicity becomes the ``race`` label.

Pixels are parsed once at scan time (rows with a wrong pixel string are reported and skipped) and
kept in a small in-process cache keyed by the file's path, size and modification time; the frame
only holds ``_row``, the row's position in the CSV. ``read`` re-parses the file when the cache
was dropped, and refuses if the file changed since the scan.
"""

from __future__ import annotations

import os
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from faceml.data.registry import register
from faceml.data.base import (
    BadItem,
    DatasetAdapter,
    LabelSpec,
    Progress,
    Scan,
    check_color,
    read_label_csv,
)
from faceml.data.imageio import to_pixels
from faceml.data.mapping import GENDERS, UTKFACE_RACES
from faceml.data.utkface import MAX_AGE, utk_label_specs
from faceml.errors import DataError

CSV_NAME = "age_gender.csv"
COLUMNS = ("age", "ethnicity", "gender", "img_name", "pixels")
SIDE = 48
N_PIXELS = SIDE * SIDE
CHUNK = 1024

_lock = threading.Lock()
_cache: dict[tuple, np.ndarray] = {}  # (path, size, mtime_ns) -> (n_rows, 48, 48) uint8; 1 entry


def _parse_pixels(text) -> np.ndarray | str:
    """One pixel string → 2,304 uint8 values, or the reason it is unusable."""
    if not isinstance(text, str) or not text.strip():
        return "no pixel values"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            v = np.fromstring(text, dtype=np.int64, sep=" ")
        except (Warning, ValueError):
            return "pixels contain something that is not a whole number"
    if v.size != N_PIXELS:
        return f"{v.size} pixel values instead of {N_PIXELS} (48×48)"
    if v.min() < 0 or v.max() > 255:
        return "pixel values outside 0-255"
    return v.astype(np.uint8)


def _read_table(csv: Path) -> pd.DataFrame:
    return read_label_csv("utkface-csv", csv, COLUMNS, dtype={"img_name": str, "pixels": str})


def _parse_all(df: pd.DataFrame) -> tuple[np.ndarray, dict[int, str]]:
    """Pixels of every row (zeros where unusable) and the reasons for unusable rows."""
    pixels = np.zeros((len(df), SIDE, SIDE), dtype=np.uint8)
    reasons: dict[int, str] = {}
    for i, text in enumerate(df["pixels"].tolist()):
        v = _parse_pixels(text)
        if isinstance(v, str):
            reasons[i] = v
        else:
            pixels[i] = v.reshape(SIDE, SIDE)
    return pixels, reasons


def _key(csv: Path) -> tuple[str, int, int]:
    st = csv.stat()
    return (str(csv), st.st_size, st.st_mtime_ns)


@register
class UTKFaceCSVAdapter(DatasetAdapter):
    name = "utkface-csv"
    title = "UTKFace (Kaggle CSV, 48×48 gray)"
    description = ("The Kaggle age_gender.csv: ~23.7k UTKFace faces as 48×48 gray pixels with "
                   "age, gender and ethnicity (as race).")
    needs_path = True
    default_path = CSV_NAME

    def label_specs(self) -> dict[str, LabelSpec]:
        return utk_label_specs()

    def csv_path(self, path: str | Path | None) -> Path:
        """The CSV: the path itself, or ``age_gender.csv`` (else the only CSV) in a folder."""
        p = self.resolve_path(path)
        if p is None:
            raise DataError(f"{self.name}: a path is needed")
        if not p.exists():
            raise DataError(f"{self.name}: path does not exist: {p}")
        if p.is_dir():
            if (p / CSV_NAME).is_file():
                return (p / CSV_NAME).absolute()
            csvs = sorted(q for q in p.glob("*.csv") if q.is_file())
            if len(csvs) == 1:
                return csvs[0].absolute()
            raise DataError(f"{self.name}: no {CSV_NAME} in the folder {p}")
        return p.absolute()

    def found(self, path: str | Path | None = None) -> bool:
        p = self.resolve_path(path)
        if p is None:
            return False
        return p.is_file() or (p / CSV_NAME).is_file()

    def scan(self, path: str | Path | None = None, **options) -> Scan:
        csv = self.csv_path(path)
        key = _key(csv)
        df = _read_table(csv)
        if df.empty:
            raise DataError(f"{self.name}: no rows in {csv}")
        pixels, reasons = _parse_all(df)

        codes = {c: pd.to_numeric(df[c], errors="coerce") for c in ("age", "gender", "ethnicity")}
        age, gender, race = codes["age"], codes["gender"], codes["ethnicity"]
        checks = [
            (age.isna() | (age % 1 != 0), lambda i: f"age {df['age'].iloc[i]!r} is not a whole "
                                                    "number"),
            ((age < 0) | (age > MAX_AGE), lambda i: f"age {df['age'].iloc[i]} is outside "
                                                    f"0-{MAX_AGE}"),
            (~gender.isin([0, 1]), lambda i: f"gender must be 0 (male) or 1 (female), not "
                                             f"{df['gender'].iloc[i]!r}"),
            (~race.isin(range(len(UTKFACE_RACES))),
             lambda i: f"ethnicity must be 0-{len(UTKFACE_RACES) - 1}, not "
                       f"{df['ethnicity'].iloc[i]!r}"),
        ]
        for mask, reason in checks:
            for i in np.flatnonzero(mask.to_numpy()):
                reasons.setdefault(int(i), reason(int(i)))

        names = df["img_name"].fillna("").astype(str).str.strip()
        names = names.where(names != "", "row " + pd.Series(range(len(df))).astype(str))
        dup = names.duplicated(keep=False)
        if dup.any():
            names = names.where(~dup, names + "#" + pd.Series(range(len(df))).astype(str))
        bad = [BadItem(f"{names.iloc[i]} (line {i + 2})", reasons[i]) for i in sorted(reasons)]

        ok = np.ones(len(df), dtype=bool)
        ok[list(reasons)] = False
        if not ok.any():
            raise DataError(f"{self.name}: none of the {len(df)} rows of {csv} is usable "
                            f"(e.g. {bad[0].source}: {bad[0].reason})")
        idx = np.flatnonzero(ok)
        frame = pd.DataFrame({
            "source": names.to_numpy()[idx],
            "age": age.to_numpy(dtype=float)[idx],
            "gender": np.asarray(GENDERS, dtype=object)[gender.to_numpy()[idx].astype(int)],
            "race": np.asarray(UTKFACE_RACES, dtype=object)[race.to_numpy()[idx].astype(int)],
            "_row": idx,
            "_size": key[1],
            "_mtime": key[2],
        })
        for c in ("source", "gender", "race"):
            frame[c] = frame[c].astype(str)
        with _lock:
            _cache.clear()
            _cache[key] = pixels
        return Scan(self.name, str(csv), frame, self.label_specs(), bad)

    def _pixels(self, scan: Scan, rows: pd.DataFrame) -> np.ndarray:
        csv = Path(scan.path or "")
        want = (str(csv), int(rows["_size"].iloc[0]), int(rows["_mtime"].iloc[0]))
        with _lock:
            if want in _cache:
                return _cache[want]
        try:
            now = _key(csv)
        except OSError:
            raise DataError(f"{self.name}: {csv} is gone since it was scanned") from None
        if now != want:
            raise DataError(f"{self.name}: {csv} changed since it was scanned; scan it again")
        pixels, _ = _parse_all(_read_table(csv))
        with _lock:
            _cache.clear()
            _cache[want] = pixels
        return pixels

    def read(self, scan: Scan, rows: pd.DataFrame, size: int, color: str,
             progress: Progress | None = None) -> tuple[np.ndarray, list[BadItem]]:
        channels = check_color(color)
        n = len(rows)
        out = np.zeros((n, size, size, channels), dtype=np.uint8)
        if progress:
            progress(0, n)
        if n == 0:
            return out, []
        pixels = self._pixels(scan, rows)
        src = rows["_row"].to_numpy()

        def work(lo: int) -> int:
            hi = min(lo + CHUNK, n)
            for j in range(lo, hi):
                out[j] = to_pixels(Image.fromarray(pixels[src[j]], "L"), size, color)
            return hi - lo

        done = 0
        with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
            for k in pool.map(work, range(0, n, CHUNK)):
                done += k
                if progress:
                    progress(done, n)
        return out, []
