"""Tiny datasets written in the *exact* on-disk formats of the real ones, with Pillow-drawn faces.

Every ``make_*`` writes into the given folder (created if needed) and returns the dataset path
to hand to the adapter. Labels are a deterministic function of the item number ``i`` (see
``utk_codes``), so tests can check what the adapters parsed. Import from tests as
``from fixtures_formats import make_utkface`` (or ``tests.fixtures_formats``).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

UTK_RACES = ("White", "Black", "Asian", "Indian", "Others")
FAIRFACE_AGES = ("0-2", "3-9", "10-19", "20-29", "30-39", "40-49", "50-59", "60-69",
                 "more than 70")
FAIRFACE_RACES = ("White", "Black", "Latino_Hispanic", "East Asian", "Southeast Asian", "Indian",
                  "Middle Eastern")
CELEBA_ATTRIBUTES = (
    "5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose "
    "Black_Hair Blond_Hair Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee "
    "Gray_Hair Heavy_Makeup High_Cheekbones Male Mouth_Slightly_Open Mustache Narrow_Eyes "
    "No_Beard Oval_Face Pale_Skin Pointy_Nose Receding_Hairline Rosy_Cheeks Sideburns Smiling "
    "Straight_Hair Wavy_Hair Wearing_Earrings Wearing_Hat Wearing_Lipstick Wearing_Necklace "
    "Wearing_Necktie Young").split()


# -- images ---------------------------------------------------------------------------------------
def face_image(i: int, size: int = 32, mode: str = "RGB") -> Image.Image:
    """A small drawn 'face' whose colours depend on ``i``."""
    rng = np.random.default_rng(i)
    bg = tuple(int(x) for x in rng.integers(0, 256, 3))
    skin = tuple(int(x) for x in rng.integers(80, 256, 3))
    img = Image.new("RGB", (size, size), bg)
    d = ImageDraw.Draw(img)
    s = size
    d.ellipse([s * 0.2, s * 0.1, s * 0.8, s * 0.9], fill=skin)
    d.ellipse([s * 0.33, s * 0.35, s * 0.43, s * 0.45], fill=(20, 20, 20))
    d.ellipse([s * 0.57, s * 0.35, s * 0.67, s * 0.45], fill=(20, 20, 20))
    d.line([s * 0.38, s * 0.7, s * 0.62, s * 0.7], fill=(150, 30, 30), width=max(1, s // 16))
    return img.convert(mode)


def save_face(path: str | Path, i: int, size: int = 32) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    face_image(i, size).save(path, quality=90)
    return path


def truncate(path: str | Path, keep: float = 0.5) -> Path:
    """Cut an image file to ``keep`` of its bytes (a damaged download)."""
    path = Path(path)
    data = path.read_bytes()
    path.write_bytes(data[: max(1, int(len(data) * keep))])
    return path


# -- UTKFace --------------------------------------------------------------------------------------
def utk_codes(i: int) -> tuple[int, int, int]:
    """(age, gender, race) codes of item ``i``: every gender and race appears within 10 items."""
    return 1 + (i * 7) % 100, i % 2, i % 5


def utk_name(i: int) -> str:
    age, gender, race = utk_codes(i)
    return f"{age}_{gender}_{race}_2017011{i % 10}{i:09d}.jpg.chip.jpg"


def make_utkface(dir: str | Path, n: int = 10, size: int = 32) -> Path:
    """``dir/age_gender_race_datetime.jpg.chip.jpg`` for i in 0..n-1."""
    root = Path(dir)
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        save_face(root / utk_name(i), i, size)
    return root


def make_utkface_csv(path: str | Path, n: int = 10) -> Path:
    """The Kaggle ``age_gender.csv`` (age, ethnicity, gender, img_name, pixels as 48×48 gray).
    ``path`` is the CSV file, or a folder to write ``age_gender.csv`` into."""
    path = Path(path)
    if path.suffix.lower() != ".csv":
        path = path / "age_gender.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["age", "ethnicity", "gender", "img_name", "pixels"])
        for i in range(n):
            age, gender, race = utk_codes(i)
            px = np.asarray(face_image(i, 48, "L"), dtype=np.uint8).ravel()
            w.writerow([age, race, gender, f"2017011{i % 10}{i:09d}.jpg.chip.jpg",
                        " ".join(map(str, px))])
    return path


# -- FairFace -------------------------------------------------------------------------------------
def fairface_labels(i: int) -> tuple[str, str, str]:
    """(age bin, gender, race) of item ``i``."""
    return FAIRFACE_AGES[i % 9], ("Male", "Female")[i % 2], FAIRFACE_RACES[i % 7]


def make_fairface(dir: str | Path, n: int = 10, n_val: int | None = None,
                  size: int = 32) -> Path:
    """``train/1.jpg…``, ``val/1.jpg…`` and ``fairface_label_{train,val}.csv`` (columns file, age,
    gender, race, service_test). Train items are 0..n-1; val items continue the numbering."""
    root = Path(dir)
    n_val = max(2, n // 3) if n_val is None else n_val
    k = 0
    for split, count in (("train", n), ("val", n_val)):
        (root / split).mkdir(parents=True, exist_ok=True)
        with open(root / f"fairface_label_{split}.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["file", "age", "gender", "race", "service_test"])
            for j in range(1, count + 1):
                age, gender, race = fairface_labels(k)
                save_face(root / split / f"{j}.jpg", k, size)
                w.writerow([f"{split}/{j}.jpg", age, gender, race, str(k % 3 == 0)])
                k += 1
    return root


# -- CelebA ---------------------------------------------------------------------------------------
def celeba_value(i: int, attr: int) -> int:
    """The -1/1 value of attribute number ``attr`` for item ``i``."""
    return 1 if (i * 3 + attr) % 4 in (0, 1) else -1


def celeba_split(i: int) -> int:
    return (0, 0, 0, 1, 2)[i % 5]


def make_celeba(dir: str | Path, n: int = 10, size: int = 32) -> Path:
    """``img_align_celeba/000001.jpg…``, ``list_attr_celeba.txt`` (count, the 40 names, rows of
    -1/1 padded to width 2 as in the real file) and ``list_eval_partition.txt``."""
    root = Path(dir)
    (root / "img_align_celeba").mkdir(parents=True, exist_ok=True)
    lines = [f"{n}", " ".join(CELEBA_ATTRIBUTES) + " "]
    parts = []
    for i in range(n):
        name = f"{i + 1:06d}.jpg"
        save_face(root / "img_align_celeba" / name, i, size)
        vals = " ".join(f"{celeba_value(i, a):2d}" for a in range(len(CELEBA_ATTRIBUTES)))
        lines.append(f"{name} {vals}")
        parts.append(f"{name} {celeba_split(i)}")
    (root / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
    (root / "list_eval_partition.txt").write_text("\n".join(parts) + "\n")
    return root


# -- class folders --------------------------------------------------------------------------------
def make_folder(dir: str | Path, classes: Sequence[str] = ("male", "female"), n: int = 3,
                with_splits: bool = False, size: int = 32,
                split_names: Sequence[str] = ("train", "validation", "test")) -> Path:
    """``dir/<class>/<i>.jpg`` (n per class), or ``dir/<split>/<class>/<i>.jpg`` for each of
    ``split_names`` when ``with_splits``."""
    root = Path(dir)
    root.mkdir(parents=True, exist_ok=True)
    k = 0
    for split in (split_names if with_splits else ("",)):
        for c in classes:
            for j in range(n):
                save_face(root / split / c / f"{c}_{j}.jpg", k, size)
                k += 1
    return root
