"""Dataset adapters on tiny fixtures in the exact real formats (tests/fixtures_formats.py)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fixtures_formats import (CELEBA_ATTRIBUTES, celeba_split, celeba_value, face_image,
                              fairface_labels, make_celeba, make_fairface, make_folder,
                              make_utkface, make_utkface_csv, save_face, truncate, utk_codes,
                              utk_name)

import faceml.data as data
from faceml.data.base import DatasetAdapter, Scan
from faceml.data.celeba import CelebAAdapter
from faceml.data.fairface import FairFaceAdapter
from faceml.data.folder import FolderAdapter
from faceml.data.utkface import UTKFaceAdapter, parse_name
from faceml.data.utkface_csv import UTKFaceCSVAdapter
from faceml.errors import DataError

UTK_RACES = ("White", "Black", "Asian", "Indian", "Others")
ADAPTERS = [UTKFaceAdapter, UTKFaceCSVAdapter, FairFaceAdapter, CelebAAdapter, FolderAdapter]


def check_pixels(adapter: DatasetAdapter, scan: Scan, rows: pd.DataFrame | None = None,
                 size: int = 16, color: str = "rgb") -> np.ndarray:
    rows = scan.frame if rows is None else rows
    x, bad = adapter.read(scan, rows, size, color)
    assert bad == []
    assert x.dtype == np.uint8 and x.shape == (len(rows), size, size, 1 if color == "gray" else 3)
    assert (x.reshape(len(rows), -1).max(axis=1) > 0).all()
    return x


# -- common ----------------------------------------------------------------------------------------
def test_registered_under_their_names():
    for cls in ADAPTERS:
        assert data.registry._REGISTRY[cls.name] is cls
        a = cls()
        assert a.title and a.description and a.needs_path
    assert {c.name for c in ADAPTERS} == {"utkface", "utkface-csv", "fairface", "celeba",
                                          "folder"}
    assert UTKFaceAdapter.default_path == "utkface"


@pytest.mark.parametrize("cls", ADAPTERS, ids=lambda c: c.name)
def test_missing_path_is_a_data_error_naming_it(cls, tmp_path):
    p = tmp_path / "nowhere"
    with pytest.raises(DataError, match=r"path does not exist: .*nowhere"):
        cls().scan(p)
    assert cls().found(p) is False


@pytest.mark.parametrize("cls", [UTKFaceAdapter, FairFaceAdapter, CelebAAdapter, FolderAdapter],
                         ids=lambda c: c.name)
def test_file_instead_of_folder(cls, tmp_path):
    f = save_face(tmp_path / "one.jpg", 0)
    with pytest.raises(DataError, match=r"not a folder: .*one\.jpg"):
        cls().scan(f)


@pytest.mark.parametrize("cls", [UTKFaceAdapter, FolderAdapter], ids=lambda c: c.name)
def test_empty_folder_and_folder_of_non_images(cls, tmp_path):
    with pytest.raises(DataError, match=r"no images found in .*"):
        cls().scan(tmp_path)
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "data.csv").write_text("a,b\n")
    with pytest.raises(DataError, match=r"no images found in .*2 files, none of them images"):
        cls().scan(tmp_path)


def test_default_path_under_shared_data(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEML_SHARED_DATA", str(tmp_path))
    assert not UTKFaceAdapter().found()
    assert not FairFaceAdapter().found() and not CelebAAdapter().found()
    make_utkface(tmp_path / "utkface", 3)
    assert UTKFaceAdapter().found()
    assert len(UTKFaceAdapter().scan().frame) == 3
    make_utkface_csv(tmp_path, 3)
    assert UTKFaceCSVAdapter().found()
    assert len(UTKFaceCSVAdapter().scan().frame) == 3


# -- UTKFace ---------------------------------------------------------------------------------------
def test_utkface_labels_from_names(tmp_path):
    root = make_utkface(tmp_path / "utk", 10)
    a = UTKFaceAdapter()
    scan = a.scan(root)
    f = scan.frame
    assert scan.dataset == "utkface" and scan.bad == []
    assert list(f.columns) == ["source", "age", "gender", "race", "_path", "_size", "_mtime"]
    assert list(scan.label_frame().columns) == ["source", "age", "gender", "race"]
    assert f["age"].dtype == float
    assert f["source"].is_monotonic_increasing
    for i in range(10):
        age, gender, race = utk_codes(i)
        row = f.set_index("source").loc[utk_name(i)]
        assert (row["age"], row["gender"], row["race"]) == (age, ("Male", "Female")[gender],
                                                            UTK_RACES[race])
        assert Path(row["_path"]).is_absolute() and Path(row["_path"]).is_file()
    assert scan.labels["race"].classes == UTK_RACES
    assert scan.labels["age"].kind == "years" and scan.labels["gender"].kind == "binary"
    # pixels, in the order of the rows asked for
    rows = f.iloc[[3, 0]]
    x = check_pixels(a, scan, rows, size=32)
    i3 = next(i for i in range(10) if utk_name(i) == rows["source"].iloc[0])
    expected = np.asarray(face_image(i3, 32))
    assert np.abs(x[0].astype(int) - expected).mean() < 12  # JPEG round trip
    check_pixels(a, scan, rows, color="gray")


def test_utkface_malformed_names_reported_and_skipped(tmp_path):
    root = make_utkface(tmp_path, 5)
    malformed = {
        "39_1_20170116174525125.jpg.chip.jpg": "3 fields",
        "x_0_0_20170116174525125.jpg": "age 'x'",
        "30_2_0_20170116174525125.jpg": "gender must be 0 (male) or 1 (female), not 2",
        "30_0_7_20170116174525125.jpg": "race must be 0-4, not 7",
        "130_0_0_20170116174525125.jpg": "age 130 is outside 0-120",
        "30_-1_0_20170116174525125.jpg": "gender '-1'",
        "readme.txt": "not an image file",
    }
    for name in malformed:
        if name.endswith(".jpg"):
            save_face(root / name, 1)
        else:
            (root / name).write_text("x")
    (root / ".DS_Store").write_bytes(b"\0")
    scan = UTKFaceAdapter().scan(root)
    assert len(scan.frame) == 5
    assert not set(scan.frame["source"]) & set(malformed)
    reasons = {b.source: b.reason for b in scan.bad}
    assert set(reasons) == set(malformed)
    for name, part in malformed.items():
        assert part in reasons[name], (name, reasons[name])
    assert parse_name("25_0_3_20170116174525125.jpg.chip.jpg") == (25, 0, 3)


def test_utkface_only_malformed_names(tmp_path):
    save_face(tmp_path / "face.jpg", 0)
    save_face(tmp_path / "a_b_c_d.jpg", 1)
    with pytest.raises(DataError, match=r"none of the 2 images in .* is named "
                                        r"age_gender_race_datetime\.jpg"):
        UTKFaceAdapter().scan(tmp_path)


def test_utkface_folder_of_subfolders_hint(tmp_path):
    make_utkface(tmp_path / "UTKFace", 2)
    with pytest.raises(DataError, match=r"no images found in .*sub-folders: UTKFace"):
        UTKFaceAdapter().scan(tmp_path)


def test_truncated_jpeg_scans_and_is_reported_on_read(tmp_path):
    root = make_utkface(tmp_path, 6, size=64)
    broken = utk_name(2)
    truncate(root / broken, 0.3)
    (root / utk_name(4)).write_bytes(b"")  # zero bytes
    a = UTKFaceAdapter()
    scan = a.scan(root)  # no decoding while scanning
    assert len(scan.frame) == 6 and scan.bad == []
    x, bad = a.read(scan, scan.frame, 16, "rgb")
    assert {b.source for b in bad} == {broken, utk_name(4)}
    assert all("damaged or truncated" in b.reason or "not an image" in b.reason for b in bad)
    good = ~scan.frame["source"].isin([broken, utk_name(4)]).to_numpy()
    assert (x[good].reshape(good.sum(), -1).max(axis=1) > 0).all()
    assert x[~good].max() == 0


def test_fingerprint_follows_file_content(tmp_path):
    root = make_utkface(tmp_path, 3)
    a = UTKFaceAdapter()
    before = a.scan(root).fingerprint()
    assert a.scan(root).fingerprint() == before
    save_face(root / utk_name(1), 1, size=48)
    assert a.scan(root).fingerprint() != before


def test_real_utkface_folder(utkface_dir):
    a = UTKFaceAdapter()
    t = time.perf_counter()
    scan = a.scan(utkface_dir)
    elapsed = time.perf_counter() - t
    n_files = sum(1 for e in os.scandir(utkface_dir) if not e.name.startswith("."))
    print(f"\nreal UTKFace: {n_files} files, {len(scan.frame)} rows, {len(scan.bad)} malformed "
          f"({[b.source for b in scan.bad]}), scan {elapsed:.3f}s")
    assert 20_000 <= n_files <= 20_300
    assert len(scan.frame) + len(scan.bad) == n_files
    assert 1 <= len(scan.bad) <= 20
    assert all("fields" in b.reason or "not" in b.reason for b in scan.bad)
    assert set(scan.frame["gender"]) == {"Male", "Female"}
    assert set(scan.frame["race"]) == set(UTK_RACES)
    assert scan.frame["age"].between(1, 120).all()
    assert elapsed < 3.0  # well under a second normally; slack for a busy machine
    check_pixels(a, scan, scan.frame.iloc[:4], size=32)


# -- UTKFace CSV -----------------------------------------------------------------------------------
def test_utkface_csv_file_or_folder_and_pixels_exact(tmp_path):
    csv = make_utkface_csv(tmp_path / "kaggle", 12)
    assert csv.name == "age_gender.csv"
    a = UTKFaceCSVAdapter()
    assert a.found(csv) and a.found(csv.parent)
    s1, s2 = a.scan(csv), a.scan(csv.parent)
    pd.testing.assert_frame_equal(s1.frame, s2.frame)
    f = s1.frame
    assert len(f) == 12 and s1.bad == []
    assert list(s1.label_frame().columns) == ["source", "age", "gender", "race"]
    for i in range(12):
        age, gender, race = utk_codes(i)
        assert (f["age"][i], f["gender"][i], f["race"][i]) == (age, ("Male", "Female")[gender],
                                                               UTK_RACES[race])
    rows = f.iloc[[5, 2, 7]]
    x, bad = a.read(s1, rows, 48, "gray")
    assert bad == [] and x.shape == (3, 48, 48, 1)
    for k, i in enumerate((5, 2, 7)):  # lossless: the CSV's own 48x48 pixels
        np.testing.assert_array_equal(x[k, ..., 0], np.asarray(face_image(i, 48, "L")))
    rgb, _ = a.read(s1, rows, 48, "rgb")
    np.testing.assert_array_equal(rgb[..., 0], rgb[..., 2])
    np.testing.assert_array_equal(rgb[..., :1], x)
    check_pixels(a, s1, rows, size=24)


def test_utkface_csv_bad_rows_reported_and_skipped(tmp_path):
    csv = make_utkface_csv(tmp_path / "age_gender.csv", 6)
    df = pd.read_csv(csv, dtype=str)
    names = df["img_name"].tolist()
    df.loc[1, "pixels"] = " ".join(df.loc[1, "pixels"].split()[:-5])  # too short
    df.loc[2, "pixels"] = df.loc[2, "pixels"].replace(" ", " x ", 1)  # not a number
    df.loc[3, "gender"] = "2"
    df.loc[4, "pixels"] = "300 " + df.loc[4, "pixels"].split(" ", 1)[1]
    df.to_csv(csv, index=False)
    scan = UTKFaceCSVAdapter().scan(csv)
    assert list(scan.frame["source"]) == [names[0], names[5]]
    reasons = {b.source: b.reason for b in scan.bad}
    assert reasons[f"{names[1]} (line 3)"] == "2299 pixel values instead of 2304 (48×48)"
    assert "not a whole number" in reasons[f"{names[2]} (line 4)"]
    assert "gender must be 0 (male) or 1 (female)" in reasons[f"{names[3]} (line 5)"]
    assert "outside 0-255" in reasons[f"{names[4]} (line 6)"]


def test_utkface_csv_wrong_columns_and_files(tmp_path):
    a = UTKFaceCSVAdapter()
    csv = make_utkface_csv(tmp_path / "age_gender.csv", 2)
    df = pd.read_csv(csv).rename(columns={"pixels": "pixel", "ethnicity": "race"})
    wrong = tmp_path / "wrong" / "age_gender.csv"
    wrong.parent.mkdir()
    df.to_csv(wrong, index=False)
    with pytest.raises(DataError, match=r"age_gender\.csv lacks the column\(s\) ethnicity, "
                                        r"pixels"):
        a.scan(wrong)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"no age_gender\.csv in the folder .*empty"):
        a.scan(tmp_path / "empty")
    (tmp_path / "empty" / "age_gender.csv").write_text("")
    with pytest.raises(DataError, match=r"age_gender\.csv is empty"):
        a.scan(tmp_path / "empty")


def test_utkface_csv_read_after_cache_loss_and_after_change(tmp_path):
    import faceml.data.utkface_csv as mod

    csv = make_utkface_csv(tmp_path, 4)
    a = UTKFaceCSVAdapter()
    scan = a.scan(csv)
    first, _ = a.read(scan, scan.frame, 48, "gray")
    mod._cache.clear()
    again, _ = UTKFaceCSVAdapter().read(scan, scan.frame.iloc[::-1], 48, "gray")
    np.testing.assert_array_equal(again, first[::-1])
    empty, bad = a.read(scan, scan.frame.iloc[:0], 48, "rgb")
    assert empty.shape == (0, 48, 48, 3) and bad == []
    mod._cache.clear()
    with open(csv, "a") as f:
        f.write("")
    os.utime(csv, ns=(time.time_ns(), time.time_ns() + 10**9))
    with pytest.raises(DataError, match=r"changed since it was scanned"):
        a.read(scan, scan.frame, 48, "gray")


# -- FairFace --------------------------------------------------------------------------------------
def test_fairface_labels_and_official_split(tmp_path):
    root = make_fairface(tmp_path / "fairface", 9, n_val=4)
    a = FairFaceAdapter()
    assert a.found(root)
    scan = a.scan(root)
    f = scan.frame
    assert scan.bad == [] and len(f) == 13
    assert list(scan.label_frame().columns) == ["source", "age", "gender", "race", "split"]
    assert f["split"].value_counts().to_dict() == {"train": 9, "val": 4}
    assert f["source"].iloc[0] == "train/1.jpg" and f["source"].iloc[9] == "val/1.jpg"
    for k in range(13):
        assert tuple(f.loc[k, ["age", "gender", "race"]]) == fairface_labels(k)
    assert scan.labels["age"].kind == "categorical" and len(scan.labels["age"].classes) == 9
    assert len(scan.labels["race"].classes) == 7
    check_pixels(a, scan, f.iloc[[10, 0]])


def test_fairface_missing_images_and_unknown_labels(tmp_path):
    root = make_fairface(tmp_path, 6, n_val=2)
    (root / "train" / "2.jpg").unlink()
    csv = root / "fairface_label_train.csv"
    df = pd.read_csv(csv, dtype=str)
    df.loc[3, "race"] = "Asian"
    df.loc[4, "age"] = "70+"
    df.to_csv(csv, index=False)
    scan = FairFaceAdapter().scan(root)
    reasons = {b.source: b.reason for b in scan.bad}
    assert reasons == {"train/2.jpg": "image file is missing",
                       "train/4.jpg": "unknown race 'Asian'",
                       "train/5.jpg": "unknown age '70+'"}
    assert len(scan.frame) == 5
    assert not scan.frame["source"].isin(list(reasons)).any()


def test_fairface_val_only_and_errors(tmp_path):
    root = make_fairface(tmp_path / "ff", 3, n_val=2)
    (root / "fairface_label_train.csv").unlink()
    scan = FairFaceAdapter().scan(root)
    assert set(scan.frame["split"]) == {"val"} and len(scan.frame) == 2
    (root / "fairface_label_val.csv").write_text("file,age,sex\nval/1.jpg,3-9,Male\n")
    with pytest.raises(DataError, match=r"fairface_label_val\.csv lacks the column\(s\) gender, "
                                        r"race"):
        FairFaceAdapter().scan(root)
    (root / "fairface_label_val.csv").unlink()
    with pytest.raises(DataError, match=r"no fairface_label_train\.csv or "
                                        r"fairface_label_val\.csv in .*ff"):
        FairFaceAdapter().scan(root)
    assert not FairFaceAdapter().found(root)
    images_elsewhere = make_fairface(tmp_path / "ff2", 2, n_val=1)
    for p in (images_elsewhere / "train").iterdir():
        p.unlink()
    for p in (images_elsewhere / "val").iterdir():
        p.unlink()
    with pytest.raises(DataError, match=r"none of the 3 images listed in the CSVs is in"):
        FairFaceAdapter().scan(images_elsewhere)


# -- CelebA ----------------------------------------------------------------------------------------
def test_celeba_attributes_gender_and_split(tmp_path):
    root = make_celeba(tmp_path / "celeba", 10)
    a = CelebAAdapter()
    assert a.found(root)
    scan = a.scan(root)
    f = scan.frame
    assert scan.bad == [] and len(f) == 10
    assert "Male" not in f.columns and "Male" not in scan.labels
    assert len(scan.labels) == 40  # gender + 39 attributes
    assert set(scan.labels) == set(a.label_specs())
    assert scan.labels["Smiling"].classes == ("no", "yes")
    male, smiling, young = (CELEBA_ATTRIBUTES.index(n) for n in ("Male", "Smiling", "Young"))
    for i in range(10):
        assert f["source"][i] == f"{i + 1:06d}.jpg"
        assert f["gender"][i] == ("Male" if celeba_value(i, male) == 1 else "Female")
        assert f["Smiling"][i] == ("yes" if celeba_value(i, smiling) == 1 else "no")
        assert f["Young"][i] == ("yes" if celeba_value(i, young) == 1 else "no")
        assert f["split"][i] == ("train", "val", "test")[celeba_split(i)]
    assert set(f["gender"]) == {"Male", "Female"}
    check_pixels(a, scan, f.iloc[[4, 1]])


def test_celeba_bad_rows_missing_images_and_no_partition(tmp_path):
    root = make_celeba(tmp_path, 6)
    (root / "img_align_celeba" / "000003.jpg").unlink()
    lines = (root / "list_attr_celeba.txt").read_text().splitlines()
    lines[2 + 4] = lines[2 + 4].replace("-1", " 5", 1)
    (root / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
    scan = CelebAAdapter().scan(root)
    reasons = {b.source: b.reason for b in scan.bad}
    assert reasons["000003.jpg"] == "image file is missing"
    assert reasons["000005.jpg"].endswith("is 5, not -1 or 1")
    assert len(scan.frame) == 4
    (root / "list_eval_partition.txt").unlink()
    assert "split" not in CelebAAdapter().scan(root).frame.columns


def test_celeba_errors(tmp_path):
    root = make_celeba(tmp_path / "c", 2)
    (root / "list_attr_celeba.txt").rename(root / "attrs.txt")
    with pytest.raises(DataError, match=r"no list_attr_celeba\.txt in .*c"):
        CelebAAdapter().scan(root)
    (root / "attrs.txt").rename(root / "list_attr_celeba.txt")
    (root / "img_align_celeba").rename(root / "images")
    with pytest.raises(DataError, match=r"no img_align_celeba folder in"):
        CelebAAdapter().scan(root)
    (root / "images").rename(root / "img_align_celeba")
    (root / "list_attr_celeba.txt").write_text("2\nSmiling Young\n000001.jpg 1 -1\n")
    with pytest.raises(DataError, match=r"list_attr_celeba\.txt has no Male attribute"):
        CelebAAdapter().scan(root)


# -- class folders ---------------------------------------------------------------------------------
def test_folder_gender_names_any_case(tmp_path):
    root = make_folder(tmp_path, ("Men", "WOMEN"), n=2)
    scan = FolderAdapter().scan(root)
    assert list(scan.labels) == ["gender"]
    assert scan.labels["gender"].classes == ("Male", "Female")
    assert list(scan.label_frame().columns) == ["source", "gender"]
    assert scan.frame.set_index("source")["gender"].to_dict() == {
        "Men/Men_0.jpg": "Male", "Men/Men_1.jpg": "Male",
        "WOMEN/WOMEN_0.jpg": "Female", "WOMEN/WOMEN_1.jpg": "Female"}
    check_pixels(FolderAdapter(), scan, color="gray")


def test_folder_class_label_sorted_and_single_image_class(tmp_path):
    root = make_folder(tmp_path, ("smile", "neutral", "male"), n=2)
    for p in (root / "neutral").iterdir():
        if p.name != "neutral_0.jpg":
            p.unlink()
    (root / "smile" / "notes.txt").write_text("x")
    save_face(root / "smile" / "more" / "deep.png", 9)
    scan = FolderAdapter().scan(root)
    spec = scan.labels["class"]
    assert spec.classes == ("male", "neutral", "smile") and spec.kind == "categorical"
    counts = scan.frame["class"].value_counts().to_dict()
    assert counts == {"smile": 3, "male": 2, "neutral": 1}
    assert "smile/more/deep.png" in set(scan.frame["source"])
    assert [(b.source, b.reason) for b in scan.bad] == [("smile/notes.txt", "not an image file")]
    two = FolderAdapter().scan(make_folder(tmp_path / "two", ("cat", "dog"), n=1))
    assert two.labels["class"].kind == "binary" and len(two.frame) == 2


def test_folder_official_splits(tmp_path):
    root = make_folder(tmp_path / "a", n=2, with_splits=True)
    scan = FolderAdapter().scan(root)
    assert scan.frame["split"].value_counts().to_dict() == {"train": 4, "val": 4, "test": 4}
    assert set(scan.frame.loc[scan.frame["source"].str.startswith("validation/"), "split"]) \
        == {"val"}
    root = make_folder(tmp_path / "b", ("x", "y"), n=1, with_splits=True,
                       split_names=("Train", "valid", "test"))
    scan = FolderAdapter().scan(root)
    assert list(scan.labels) == ["class"]
    assert sorted(set(scan.frame["split"])) == ["test", "train", "val"]
    check_pixels(FolderAdapter(), scan)


def test_folder_errors(tmp_path):
    one = make_folder(tmp_path / "one", ("male",), n=2)
    with pytest.raises(DataError, match=r"at least two classes.*only the class folder 'male'"):
        FolderAdapter().scan(one)
    flat = tmp_path / "flat"
    save_face(flat / "a.jpg", 0)
    save_face(flat / "b.jpg", 1)
    with pytest.raises(DataError, match=r"has images but no class folders"):
        FolderAdapter().scan(flat)
    mixed = make_folder(tmp_path / "mixed", ("cat", "dog"), n=1, with_splits=True,
                        split_names=("train",))
    make_folder(mixed, ("owl",), n=1)
    with pytest.raises(DataError, match=r"mixes split folders \(train\) with other folders "
                                        r"\(owl\)"):
        FolderAdapter().scan(mixed)
    same = make_folder(tmp_path / "same", ("m", "men"), n=1)
    with pytest.raises(DataError, match=r"all mean Male"):
        FolderAdapter().scan(same)


def test_folder_truncated_image_among_good(tmp_path):
    root = make_folder(tmp_path, ("cats", "dogs"), n=3, size=64)
    truncate(root / "dogs" / "dogs_1.jpg", 0.4)
    a = FolderAdapter()
    scan = a.scan(root)
    assert len(scan.frame) == 6 and scan.bad == []
    x, bad = a.read(scan, scan.frame, 16, "rgb")
    assert [b.source for b in bad] == ["dogs/dogs_1.jpg"]
    assert "truncated" in bad[0].reason
    good = (scan.frame["source"] != "dogs/dogs_1.jpg").to_numpy()
    assert (x[good].reshape(5, -1).max(axis=1) > 0).all()
