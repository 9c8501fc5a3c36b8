"""One interface for every dataset.

An adapter knows how to *scan* a dataset (find its faces and their labels, without decoding
pixels) and how to *read* the pixels of a selection of those faces at a given size and colour.
Scanning is cheap and returns a :class:`Scan`: a pandas frame with one row per face (``source``
is the face's id, e.g. its file name relative to the dataset root; one column per label; an
optional ``split`` column where the dataset has an official split) plus a report of the items
that had to be skipped.

Labels are described by :class:`LabelSpec`. Categorical labels are stored in the frame as class
*names* (strings from ``spec.classes``); ``age`` in years is stored as a float.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd

from faceml.errors import DataError

Progress = Callable[[int, int], None]
"""``progress(done, total)``: called from long loads; pages turn it into a bar."""

SPLITS = ("train", "val", "test")
NATIVE_BOX = (1.0, 0.0)
"""A :attr:`DatasetAdapter.face_box` that leaves an image as it is."""


@dataclass(frozen=True)
class LabelSpec:
    """A label a dataset has.

    kind: ``"binary"`` or ``"categorical"`` (``classes`` names them, in model output order) or
    ``"years"`` (a number; age regression or age bins).
    """

    name: str
    kind: str
    classes: tuple[str, ...] = ()
    description: str = ""

    def __post_init__(self) -> None:
        if self.kind not in ("binary", "categorical", "years"):
            raise ValueError(f"unknown label kind {self.kind!r}")
        if self.kind == "binary" and len(self.classes) != 2:
            raise ValueError("a binary label has exactly two classes")
        if self.kind == "categorical" and len(self.classes) < 2:
            raise ValueError("a categorical label has at least two classes")

    @property
    def is_categorical(self) -> bool:
        return self.kind in ("binary", "categorical")

    def to_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind, "classes": list(self.classes),
                "description": self.description}

    @classmethod
    def from_dict(cls, d: dict) -> LabelSpec:
        return cls(d["name"], d["kind"], tuple(d.get("classes", ())), d.get("description", ""))


@dataclass
class BadItem:
    """Something skipped while scanning or reading, and why."""

    source: str
    reason: str


@dataclass
class Scan:
    """What an adapter found: one row per usable face, and what it skipped."""

    dataset: str
    path: str | None
    frame: pd.DataFrame
    labels: dict[str, LabelSpec]
    bad: list[BadItem] = field(default_factory=list)
    options: dict = field(default_factory=dict)
    """Adapter options (e.g. synthetic ``n``/``seed``) needed again by ``read``."""
    notes: list[str] = field(default_factory=list)
    """What the adapter changed on the way in, one sentence each (e.g. labels a spreadsheet
    had turned into dates, read back); shown with the skipped items by the CLI and the Data
    page."""

    def fingerprint(self, rows: pd.DataFrame | None = None) -> str:
        """A content key for ``rows`` (default: all): sources, plus file size and mtime where
        known."""
        rows = self.frame if rows is None else rows
        h = hashlib.sha256()
        h.update(json.dumps([self.dataset, self.path, self.options], sort_keys=True,
                            default=str).encode())
        cols = [c for c in ("source", "_size", "_mtime") if c in rows.columns]
        h.update(pd.util.hash_pandas_object(rows[cols], index=False).values.tobytes())
        return h.hexdigest()[:24]

    def label_frame(self) -> pd.DataFrame:
        """The public columns: source, labels, and split when present (no ``_private`` ones)."""
        return self.frame[[c for c in self.frame.columns if not c.startswith("_")]]


OUTSIDE_FOLDER = "its path leads outside the dataset folder"
"""Why an item whose listed path (in a label file) points out of its dataset folder is skipped."""


class DatasetAdapter:
    """Base class of every dataset adapter. Subclasses set the class attributes and implement
    :meth:`scan` and :meth:`read`; :func:`faceml.data.register` makes them known by name."""

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""
    description: ClassVar[str] = ""
    needs_path: ClassVar[bool] = True
    default_path: ClassVar[str | None] = None
    """Relative to :func:`faceml.paths.shared_data_dir` when not absolute."""
    face_box: ClassVar[tuple[float, float]] = NATIVE_BOX
    """``(side, down)``: the project's face box in this dataset's images, a centred square of
    ``side`` times the image's shorter side, moved ``down`` times that side below the centre.
    The face box is the crop the Predict page's detector hands a model
    (:mod:`faceml.serving.detect`, which reproduces a UTKFace chip); images are cut to it when
    ``PrepOptions.framing`` is ``"face"`` (several datasets at once), so every dataset and every
    detected face is framed alike. Measured per dataset with that detector (see each adapter)."""

    def label_files(self, root: str | Path) -> list[Path]:
        """The files beside the images that hold their labels (copied along by ``shrink``);
        none when the labels are in the file names."""
        return []

    def label_specs(self) -> dict[str, LabelSpec]:
        """The labels this dataset has (before scanning); may be ``{}`` where labels are only
        known after a scan (a class-per-folder set names its classes by its folders)."""
        raise NotImplementedError

    def resolve_path(self, path: str | Path | None) -> Path | None:
        """The path to use: the one given, else the default under the shared data folder.

        On a hosted server only the operator's allow-list is read: any other dataset or a
        typed path raises :class:`faceml.hosting.PolicyError`, whoever asks."""
        from faceml import hosting

        return self.location(hosting.current().dataset_path(self.name, path))

    def location(self, path: str | Path | None) -> Path | None:
        """Where ``path`` (or, for None, the default location) is; no policy applied."""
        from faceml.paths import shared_data_dir

        if path not in (None, ""):
            return Path(path).expanduser()
        if self.default_path is None:
            return None
        p = Path(self.default_path)
        return p if p.is_absolute() else shared_data_dir() / p

    def found(self, path: str | Path | None = None) -> bool:
        """Whether the dataset is on disk (cheap check, no full scan)."""
        if not self.needs_path:
            return True
        p = self.resolve_path(path)
        return p is not None and p.exists()

    def scan(self, path: str | Path | None = None, **options) -> Scan:
        raise NotImplementedError

    def read(self, scan: Scan, rows: pd.DataFrame, size: int, color: str,
             progress: Progress | None = None) -> tuple[np.ndarray, list[BadItem]]:
        """Pixels of ``rows`` (a subset of ``scan.frame``) as uint8 ``(n, size, size, c)``
        with c = 1 for ``"gray"`` and 3 for ``"rgb"``, in the order of ``rows``.

        Items that cannot be decoded are returned in the bad list; their slots are zero and
        the caller drops them (see :func:`faceml.data.prepare.load`); adapters of image files
        inherit it from :class:`faceml.data.imageio.FileAdapter`."""
        raise NotImplementedError

    # helpers for subclasses -------------------------------------------------------------
    def require_dir(self, path: str | Path | None) -> Path:
        p = self.resolve_path(path)
        if p is None:
            raise DataError(f"{self.name}: a path is needed")
        if not p.exists():
            raise DataError(f"{self.name}: path does not exist: {p}")
        if not p.is_dir():
            raise DataError(f"{self.name}: not a folder: {p}")
        return p


def check_color(color: str) -> int:
    """Channels for a colour mode; raises DataError on anything else."""
    if color == "gray":
        return 1
    if color == "rgb":
        return 3
    raise DataError(f"colour must be 'gray' or 'rgb', not {color!r}")


def read_label_csv(dataset: str, csv: Path, columns, **read_csv) -> pd.DataFrame:
    """A dataset's CSV file, with a clear :class:`DataError` when it is empty, unreadable or
    lacks one of ``columns`` (column names are stripped of spaces)."""
    try:
        df = pd.read_csv(csv, **read_csv)
    except pd.errors.EmptyDataError:
        raise DataError(f"{dataset}: {csv} is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as e:
        raise DataError(f"{dataset}: {csv} is not a readable CSV file ({e})") from None
    except OSError as e:
        raise DataError(f"{dataset}: cannot read {csv} ({e.strerror or e})") from None
    df.columns = [str(c).strip() for c in df.columns]
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataError(f"{dataset}: {csv.name} lacks the column(s) {', '.join(missing)} "
                        f"(expected {', '.join(columns)}; it has {', '.join(df.columns)})")
    return df


def empty_frame(label_names: Sequence[str]) -> pd.DataFrame:
    return pd.DataFrame({"source": pd.Series(dtype=str),
                         **{n: pd.Series(dtype=object) for n in label_names}})
