"""Any image folder with one sub-folder per class, optionally inside split folders::

    root/male/*.jpg, root/female/*.jpg
    root/train/<class>/*.jpg, root/validation/<class>/*.jpg (or val/, valid/), root/test/<class>/…

The label is ``class`` with the sorted folder names as classes; when *every* class folder name is
a gender name (``male``/``men``/``M``, ``female``/``women``/``F``… see
:data:`faceml.data.mapping.GENDER_SYNONYMS`) it is ``gender`` with classes ``("Male", "Female")``.
Split folders give a ``split`` column (train/val/test). Images may sit in nested folders inside a
class folder; other files are reported in ``Scan.bad``; hidden files (``.DS_Store``) are ignored.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from faceml.data.registry import register
from faceml.data.base import BadItem, LabelSpec, Scan
from faceml.data.imageio import FileAdapter, is_image_name
from faceml.data.mapping import GENDERS, gender_of
from faceml.errors import DataError

SPLIT_FOLDERS = {"train": "train", "training": "train", "val": "val", "valid": "val",
                 "validation": "val", "test": "test", "testing": "test"}


def _entries(d: str) -> tuple[list[os.DirEntry], list[os.DirEntry]]:
    """(sub-folders, files) of ``d``, hidden ones left out, sorted by name."""
    dirs, files = [], []
    try:
        with os.scandir(d) as it:
            for e in it:
                if e.name.startswith("."):
                    continue
                (dirs if e.is_dir() else files).append(e)
    except PermissionError:
        raise DataError(f"folder: cannot read the folder {d} (permission denied)") from None
    return sorted(dirs, key=lambda e: e.name), sorted(files, key=lambda e: e.name)


@register
class FolderAdapter(FileAdapter):
    name = "folder"
    title = "Image folder (one sub-folder per class)"
    description = ("Your own images: root/<class>/*.jpg, optionally inside train/, val/ "
                   "(validation/, valid/) and test/ folders. Gender-named class folders "
                   "(male/female, men/women…) give the gender label.")
    needs_path = True
    default_path = None

    def label_specs(self) -> dict[str, LabelSpec]:
        return {}  # the classes are the folder names: known only after a scan

    def found(self, path: str | Path | None = None) -> bool:
        p = self.resolve_path(path)
        return p is not None and p.is_dir()

    def scan(self, path: str | Path | None = None, **options) -> Scan:
        root = self.require_dir(path).absolute()
        top_dirs, top_files = _entries(str(root))
        splits = [d for d in top_dirs if d.name.lower() in SPLIT_FOLDERS]
        others = [d for d in top_dirs if d.name.lower() not in SPLIT_FOLDERS]
        if splits and others:
            raise DataError(
                f"folder: {root} mixes split folders ({', '.join(d.name for d in splits)}) with "
                f"other folders ({', '.join(d.name for d in others[:5])}); put every class "
                "folder inside train/val/test, or use no split folders")

        records: list[tuple] = []
        bad: list[BadItem] = []
        n_other = 0

        def stray(files: list[os.DirEntry], rel: str) -> None:
            nonlocal n_other
            for f in files:
                src = f"{rel}{f.name}"
                if is_image_name(f.name):
                    bad.append(BadItem(src, "image not inside a class folder"))
                else:
                    n_other += 1
                    bad.append(BadItem(src, "not an image file"))

        def walk_class(d: os.DirEntry, rel: str, cls: str, split: str | None) -> int:
            nonlocal n_other
            count = 0
            stack = [(d.path, rel)]
            while stack:
                path, prefix = stack.pop()
                sub, files = _entries(path)
                for f in files:
                    src = f"{prefix}{f.name}"
                    if not is_image_name(f.name):
                        n_other += 1
                        bad.append(BadItem(src, "not an image file"))
                        continue
                    st = f.stat()
                    records.append((src, cls, split, f.path, st.st_size, st.st_mtime_ns))
                    count += 1
                stack.extend((s.path, f"{prefix}{s.name}/") for s in reversed(sub))
            return count

        class_dirs: list[tuple[os.DirEntry, str, str | None]] = []
        stray(top_files, "")
        if splits:
            for sd in splits:
                sub, files = _entries(sd.path)
                stray(files, f"{sd.name}/")
                class_dirs += [(c, f"{sd.name}/", SPLIT_FOLDERS[sd.name.lower()]) for c in sub]
        else:
            class_dirs = [(c, "", None) for c in top_dirs]
        for d, prefix, split in class_dirs:
            if walk_class(d, f"{prefix}{d.name}/", d.name, split) == 0:
                bad.append(BadItem(f"{prefix}{d.name}/", "empty class folder (no images)"))

        n_images = len(records) + sum(b.reason.startswith("image not") for b in bad)
        if n_images == 0:
            msg = f"folder: no images found in {root}"
            if n_other:
                msg += f" ({n_other} files, none of them images)"
            raise DataError(msg)
        classes = sorted({r[1] for r in records})
        if len(classes) < 2:
            if not classes:
                raise DataError(f"folder: {root} has images but no class folders; put one "
                                "sub-folder per class (e.g. male/, female/)")
            raise DataError(f"folder: a label needs at least two classes, but {root} has only "
                            f"the class folder {classes[0]!r}; add one sub-folder per class")

        genders = {c: gender_of(c) for c in classes}
        if all(genders.values()):
            if len(set(genders.values())) < 2:
                raise DataError(f"folder: the class folders {', '.join(classes)} in {root} all "
                                f"mean {genders[classes[0]]}; a label needs at least two "
                                "classes")
            label = LabelSpec("gender", "binary", GENDERS,
                              "from the class folder names (" + ", ".join(classes) + ")")
            mapping = genders
        else:
            kind = "binary" if len(classes) == 2 else "categorical"
            label = LabelSpec("class", kind, tuple(classes), "the class folder names")
            mapping = {c: c for c in classes}

        frame = pd.DataFrame.from_records(
            records, columns=["source", "_cls", "split", "_path", "_size", "_mtime"])
        frame.insert(1, label.name, frame.pop("_cls").map(mapping))
        if not splits:
            frame = frame.drop(columns="split")
        frame = frame.sort_values("source", kind="stable", ignore_index=True)
        bad.sort(key=lambda b: b.source)
        return Scan(self.name, str(root), frame, {label.name: label}, bad)

