"""UTKFace: one folder of face crops whose *file names* are the labels.

A name is ``age_gender_race_datetime.jpg`` (the aligned crops are ``…jpg.chip.jpg``), e.g.
``100_0_0_20170112213500903.jpg.chip.jpg``: age in years, gender 0 = male / 1 = female, race
0 = White, 1 = Black, 2 = Asian, 3 = Indian, 4 = Others. A few files in the official release
lack a field; they are reported in ``Scan.bad`` and skipped.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from faceml.data.registry import register
from faceml.data.base import BadItem, LabelSpec, Scan
from faceml.data.imageio import FileAdapter, is_image_name
from faceml.data.mapping import GENDERS, UTKFACE_RACES
from faceml.errors import DataError

MAX_AGE = 120


def utk_label_specs(age_description: str = "age in years") -> dict[str, LabelSpec]:
    """The UTKFace labels (shared with the ``utkface-csv`` adapter)."""
    return {
        "age": LabelSpec("age", "years", description=age_description),
        "gender": LabelSpec("gender", "binary", GENDERS, "0 = Male, 1 = Female"),
        "race": LabelSpec("race", "categorical", UTKFACE_RACES,
                          "0 = White, 1 = Black, 2 = Asian, 3 = Indian, 4 = Others"),
    }


def check_codes(age, gender, race) -> str | None:
    """Why integer UTKFace codes are unusable, or None when they are fine."""
    if not 0 <= age <= MAX_AGE:
        return f"age {age} is outside 0-{MAX_AGE}"
    if gender not in (0, 1):
        return f"gender must be 0 (male) or 1 (female), not {gender}"
    if race not in range(len(UTKFACE_RACES)):
        return f"race must be 0-{len(UTKFACE_RACES) - 1}, not {race}"
    return None


def parse_name(name: str) -> tuple[int, int, int] | str:
    """``(age, gender, race)`` codes from a UTKFace file name, or the reason it is malformed."""
    parts = name.split("_")
    if len(parts) < 4:
        return (f"name is not age_gender_race_datetime.jpg ({len(parts)} fields separated "
                "by '_' instead of 4)")
    codes = []
    for field_name, text in zip(("age", "gender", "race"), parts[:3]):
        if not (text.isascii() and text.isdigit()):
            return f"{field_name} {text!r} in the name is not a whole number"
        codes.append(int(text))
    reason = check_codes(*codes)
    return reason if reason else (codes[0], codes[1], codes[2])


def no_images_message(adapter: str, root: Path, n_files: int, subdirs: list[str]) -> str:
    msg = f"{adapter}: no images found in {root}"
    if n_files:
        msg += f" ({n_files} files, none of them images)"
    elif subdirs:
        shown = ", ".join(sorted(subdirs)[:3])
        msg += f" (it only has sub-folders: {shown}; choose the folder that holds the images)"
    return msg


@register
class UTKFaceAdapter(FileAdapter):
    name = "utkface"
    title = "UTKFace"
    description = ("~20k aligned face crops (200×200) labelled by file name with age, gender "
                   "and race (5 groups).")
    needs_path = True
    default_path = "utkface"
    # The chip is the face box: the Predict page's detector crop is made to reproduce it
    # (measured on 300 random chips: crop side 1.03 of the chip, 10th-90th percentile
    # 0.94-1.14, centred), so the chips are used as they are.
    face_box = (1.0, 0.0)

    def label_specs(self) -> dict[str, LabelSpec]:
        return utk_label_specs()

    def found(self, path: str | Path | None = None) -> bool:
        p = self.resolve_path(path)
        return p is not None and p.is_dir()

    def scan(self, path: str | Path | None = None, **options) -> Scan:
        root = self.require_dir(path).absolute()
        records: list[tuple] = []
        bad: list[BadItem] = []
        n_files, n_images, subdirs = 0, 0, []
        try:
            with os.scandir(root) as it:
                for e in it:
                    name = e.name
                    if name.startswith("."):
                        continue
                    if e.is_dir():
                        subdirs.append(name)
                        continue
                    n_files += 1
                    if not is_image_name(name):
                        bad.append(BadItem(name, "not an image file"))
                        continue
                    n_images += 1
                    parsed = parse_name(name)
                    if isinstance(parsed, str):
                        bad.append(BadItem(name, parsed))
                        continue
                    st = e.stat()
                    records.append((name, float(parsed[0]), GENDERS[parsed[1]],
                                    UTKFACE_RACES[parsed[2]], e.path, st.st_size,
                                    st.st_mtime_ns))
        except PermissionError:
            raise DataError(f"{self.name}: cannot read the folder {root} (permission denied)"
                            ) from None
        if not n_images:
            raise DataError(no_images_message(self.name, root, n_files, subdirs))
        if not records:
            example = next(b for b in bad if is_image_name(b.source))
            raise DataError(f"{self.name}: none of the {n_images} images in {root} is named "
                            f"age_gender_race_datetime.jpg (e.g. {example.source}: "
                            f"{example.reason})")
        frame = pd.DataFrame.from_records(
            records, columns=["source", "age", "gender", "race", "_path", "_size", "_mtime"])
        frame = frame.sort_values("source", kind="stable", ignore_index=True)
        bad.sort(key=lambda b: b.source)
        return Scan(self.name, str(root), frame, self.label_specs(), bad)

