"""CelebA: ~200k aligned celebrity faces with 40 binary attributes and an official split.

Layout (as downloaded)::

    celeba/
      img_align_celeba/000001.jpg …
      list_attr_celeba.txt      line 1: count; line 2: the 40 attribute names;
                                then "000001.jpg -1  1  1 -1 …" (whitespace separated, -1/1)
      list_eval_partition.txt   "000001.jpg 0" (0 train, 1 val, 2 test)

The ``Male`` attribute becomes the ``gender`` label (1 → Male, -1 → Female); every other
attribute is a binary label named as in the file (``Smiling``, ``Eyeglasses``, ``Young``…) with
classes ``("no", "yes")``. The Kaggle re-upload (``list_attr_celeba.csv`` /
``list_eval_partition.csv`` and a doubled ``img_align_celeba/img_align_celeba`` folder) is read
too. Without a partition file there is no ``split`` column.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from faceml.data.registry import register
from faceml.data.imageio import FileAdapter
from faceml.data.base import BadItem, LabelSpec, Scan
from faceml.data.mapping import GENDERS
from faceml.errors import DataError

IMAGE_DIR = "img_align_celeba"
ATTR_FILE = "list_attr_celeba.txt"
PARTITION_FILE = "list_eval_partition.txt"
PARTITIONS = {"0": "train", "1": "val", "2": "test"}
YES_NO = ("no", "yes")
ATTRIBUTES = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs",
    "Big_Lips", "Big_Nose", "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair", "Bushy_Eyebrows",
    "Chubby", "Double_Chin", "Eyeglasses", "Goatee", "Gray_Hair", "Heavy_Makeup",
    "High_Cheekbones", "Male", "Mouth_Slightly_Open", "Mustache", "Narrow_Eyes", "No_Beard",
    "Oval_Face", "Pale_Skin", "Pointy_Nose", "Receding_Hairline", "Rosy_Cheeks", "Sideburns",
    "Smiling", "Straight_Hair", "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat",
    "Wearing_Lipstick", "Wearing_Necklace", "Wearing_Necktie", "Young")
"""The 40 attributes of the official release, in file order."""


def _specs(attributes) -> dict[str, LabelSpec]:
    specs = {"gender": LabelSpec("gender", "binary", GENDERS, "from the Male attribute")}
    for a in attributes:
        if a != "Male":
            specs[a] = LabelSpec(a, "binary", YES_NO, f"CelebA attribute {a}")
    return specs


def _fail(path: Path, e: Exception) -> DataError:
    if isinstance(e, pd.errors.EmptyDataError):
        return DataError(f"celeba: {path} is empty")
    if isinstance(e, OSError):
        return DataError(f"celeba: cannot read {path} ({e.strerror or e})")
    return DataError(f"celeba: {path} is not in the CelebA format ({str(e).strip()})")


def _read_attributes(path: Path) -> pd.DataFrame:
    """Attribute table indexed by file name, values as numbers (NaN where not a number)."""
    try:
        if path.suffix == ".csv":
            df = pd.read_csv(path, index_col=0, dtype={0: str})
        else:  # count line, names line (one field fewer than the rows: the index), rows
            df = pd.read_csv(path, sep=r"\s+", skiprows=1)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError,
            OSError) as e:
        raise _fail(path, e) from None
    df.index = df.index.astype(str)
    df.columns = [str(c).strip() for c in df.columns]
    if "Male" not in df.columns:
        raise DataError(f"celeba: {path.name} has no Male attribute (line 2 must list the "
                        f"attribute names; found {', '.join(df.columns[:5]) or 'none'})")
    return df.apply(pd.to_numeric, errors="coerce")


def _read_partition(path: Path) -> pd.Series:
    try:
        if path.suffix == ".csv":
            df = pd.read_csv(path, dtype=str)
            df = df.iloc[:, :2]
        else:
            df = pd.read_csv(path, sep=r"\s+", header=None, dtype=str)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError,
            OSError) as e:
        raise _fail(path, e) from None
    if df.shape[1] != 2:
        raise DataError(f"celeba: {path.name} must have two columns (file name, 0/1/2), "
                        f"not {df.shape[1]}")
    return pd.Series(df.iloc[:, 1].str.strip().to_numpy(), index=df.iloc[:, 0].str.strip())


def _first(root: Path, *names: str) -> Path | None:
    return next((root / n for n in names if (root / n).is_file()), None)


@register
class CelebAAdapter(FileAdapter):
    name = "celeba"
    title = "CelebA"
    description = ("~200k aligned celebrity faces with 40 binary attributes (gender from Male, "
                   "Smiling, Eyeglasses, Young…); official train/val/test split.")
    needs_path = True
    default_path = "celeba"

    def label_specs(self) -> dict[str, LabelSpec]:
        return _specs(ATTRIBUTES)

    def found(self, path: str | Path | None = None) -> bool:
        p = self.resolve_path(path)
        return p is not None and _first(p, ATTR_FILE, "list_attr_celeba.csv") is not None

    def scan(self, path: str | Path | None = None, **options) -> Scan:
        root = self.require_dir(path).absolute()
        attr_path = _first(root, ATTR_FILE, "list_attr_celeba.csv")
        if attr_path is None:
            raise DataError(f"celeba: no {ATTR_FILE} in {root}")
        img_dir = root / IMAGE_DIR
        if (img_dir / IMAGE_DIR).is_dir():  # Kaggle's doubled folder
            img_dir = img_dir / IMAGE_DIR
        if not img_dir.is_dir():
            raise DataError(f"celeba: no {IMAGE_DIR} folder in {root}")
        attrs = _read_attributes(attr_path)
        if attrs.empty:
            raise DataError(f"celeba: {attr_path} lists no images")
        files = attrs.index.to_numpy()

        reason = pd.Series("", index=range(len(attrs)), dtype=object)
        values = attrs.to_numpy(dtype=float)
        invalid = ~np.isin(values, (-1, 0, 1))
        for i in np.flatnonzero(invalid.any(axis=1)):
            j = int(np.argmax(invalid[i]))
            v = attrs.iloc[i, j]
            shown = "not a number" if pd.isna(v) else f"{v:g}"
            reason[i] = f"attribute {attrs.columns[j]} is {shown}, not -1 or 1"
        dup = attrs.index.duplicated(keep="first")
        reason[dup & (reason == "").to_numpy()] = "listed more than once"

        split = None
        part_path = _first(root, PARTITION_FILE, "list_eval_partition.csv")
        if part_path is not None:
            part = _read_partition(part_path)
            part = part[~part.index.duplicated(keep="first")]
            codes = pd.Series(files).map(part)
            split = codes.map(PARTITIONS)
            no_split = (split.isna() & (reason == "")).to_numpy()
            reason[no_split] = np.where(codes[no_split].isna(),
                                        f"not listed in {part_path.name}",
                                        "partition " + codes[no_split].astype(str)
                                        + " is not 0, 1 or 2")

        found: dict[str, tuple[str, int, int]] = {}
        with os.scandir(img_dir) as it:
            for e in it:
                if e.is_file():
                    st = e.stat()
                    found[e.name] = (e.path, st.st_size, st.st_mtime_ns)
        info = pd.Series(files).map(found)
        reason[(info.isna() & (reason == "")).to_numpy()] = "image file is missing"

        bad_mask = (reason != "").to_numpy()
        bad = [BadItem(f, r) for f, r in zip(files[bad_mask], reason[bad_mask])]
        ok = ~bad_mask
        if not ok.any():
            raise DataError(f"celeba: none of the {len(files)} images listed in "
                            f"{attr_path.name} is usable (e.g. {bad[0].source}: "
                            f"{bad[0].reason})")
        stats = info[ok].tolist()
        cols: dict[str, object] = {"source": files[ok]}
        male = values[ok, attrs.columns.get_loc("Male")]
        cols["gender"] = np.where(male == 1, GENDERS[0], GENDERS[1])
        for j, a in enumerate(attrs.columns):
            if a != "Male":
                cols[a] = np.where(values[ok, j] == 1, YES_NO[1], YES_NO[0])
        if split is not None:
            cols["split"] = split[ok].to_numpy()
        cols["_path"] = [s[0] for s in stats]
        cols["_size"] = np.array([s[1] for s in stats], dtype=np.int64)
        cols["_mtime"] = np.array([s[2] for s in stats], dtype=np.int64)
        frame = pd.DataFrame(cols)
        return Scan(self.name, str(root), frame, _specs(attrs.columns), bad)

