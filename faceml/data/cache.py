"""On-disk cache of prepared arrays, keyed by content.

The key is built by the caller from the dataset's file list with sizes and mtimes (see
:meth:`faceml.data.Scan.fingerprint`) and the options that change pixels (size, colour), so a
changed file gives a new key. Entries are written to a temporary folder and renamed into
place, so a crash never leaves half an entry behind.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pandas as pd

from faceml import paths
from faceml.io import atomic_dir

VERSION = 2  # bump when the meaning of cached pixels changes


def make_key(*parts) -> str:
    h = hashlib.sha256(json.dumps([VERSION, *parts], sort_keys=True, default=str).encode())
    return h.hexdigest()[:32]


def _array(col: pd.Series) -> np.ndarray:
    """A column as a pickle-free numpy array (text as fixed-width unicode)."""
    if pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
        return col.to_numpy()
    return col.astype(str).to_numpy(dtype=str)


def _column(a: np.ndarray):
    return a.astype(object) if a.dtype.kind == "U" else a


class MemoryLRU:
    """A small thread-safe in-memory LRU (pages of one Streamlit process share these)."""

    def __init__(self, size: int = 4):
        self.size, self.items, self.lock = size, OrderedDict(), threading.Lock()

    def get(self, key):
        with self.lock:
            if key in self.items:
                self.items.move_to_end(key)
                return self.items[key]
        return None

    def put(self, key, value) -> None:
        with self.lock:
            self.items[key] = value
            self.items.move_to_end(key)
            while len(self.items) > self.size:
                self.items.popitem(last=False)

    def clear(self) -> None:
        with self.lock:
            self.items.clear()


class ArrayCache:
    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else paths.cache_dir()

    def _dir(self, key: str) -> Path:
        return self.root / key

    def get(self, key: str) -> tuple[np.ndarray, pd.DataFrame, dict] | None:
        d = self._dir(key)
        try:
            # copy-on-write map: near-instant, pages of pixels are read when first touched
            x = np.load(d / "x.npy", mmap_mode="c", allow_pickle=False)
            with np.load(d / "frame.npz", allow_pickle=False) as z:
                meta = json.loads((d / "meta.json").read_text())
                frame = pd.DataFrame({c: _column(z[c]) for c in meta["columns"]})
        except (OSError, ValueError):
            return None
        if len(frame) != len(x):
            return None
        return x, frame, meta

    def put(self, key: str, x: np.ndarray, frame: pd.DataFrame, meta: dict) -> None:
        with atomic_dir(self._dir(key)) as tmp:
            np.save(tmp / "x.npy", x, allow_pickle=False)
            np.savez(tmp / "frame.npz", **{c: _array(frame[c]) for c in frame.columns})
            meta = {**meta, "columns": list(frame.columns)}
            (tmp / "meta.json").write_text(json.dumps(meta, default=str))

    def clear(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
