"""Atomic file writes: the one place a file is written beside its destination and renamed into
place, so a crash, a kill or a full disk never leaves a half-written file (the old one, if
any, stays as it was)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def temp_beside(dest: str | Path, suffix: str = "") -> str:
    """A new empty temporary file in ``dest``'s folder (hidden, named after it), readable by
    everyone like an ordinary file (``mkstemp`` makes it private)."""
    d = Path(dest)
    fd, tmp = tempfile.mkstemp(prefix=f".{d.name}.", suffix=suffix, dir=d.parent)
    os.close(fd)
    os.chmod(tmp, 0o644)
    return tmp


@contextmanager
def atomic_file(dest: str | Path, suffix: str = "") -> Iterator[str]:
    """``with atomic_file(dest) as tmp:`` write ``tmp``; on success it replaces ``dest``, on
    any failure it is removed and ``dest`` is untouched. ``suffix`` keeps a file type that a
    writer reads from the name (``.keras``)."""
    tmp = temp_beside(dest, suffix)
    try:
        yield tmp
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def atomic_dir(dest: str | Path) -> Iterator[Path]:
    """``with atomic_dir(dest) as tmp:`` fill the folder ``tmp``; on success it replaces the
    folder ``dest`` (an old one is removed first), on any failure it is removed."""
    d = Path(dest)
    d.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{d.name}.", dir=d.parent))
    try:
        yield tmp
        if d.exists():
            shutil.rmtree(d, ignore_errors=True)
        os.replace(tmp, d)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_text_atomic(path: str | Path, text: str) -> None:
    with atomic_file(path) as tmp, open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def write_json_atomic(path: str | Path, obj) -> None:
    write_text_atomic(path, json.dumps(obj, indent=1, default=str))


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    with atomic_file(path) as tmp, open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
