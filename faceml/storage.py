"""Where the run store's files live: a local folder, or a folder at an fsspec URL.

A location is a local path (the default; plain :mod:`pathlib` and ``os.replace``, and fsspec
is never imported) or a URL such as ``file:///srv/runs``, ``s3://bucket/runs``,
``gs://bucket/runs`` or ``memory://runs``, opened with fsspec (``pip install .[scale]``).
Both are a :class:`Folder` with the same few operations, by file name; only
:mod:`faceml.runs` decides the names.

How a write stays whole:
- a local folder and ``file://``: written to a temporary name beside the file, then renamed
  into place (the rename is atomic);
- an object store (S3, GCS, memory): the complete bytes are sent in one PUT (one multipart
  upload for a big file), and an object store shows an object only once its upload is
  complete, so a reader sees the old object or the new one, never part of one. A commit of
  several files at once (a checkpoint and the epoch it belongs to) is made of such writes by
  :mod:`faceml.runs`, which writes a marker last (its docstring says how).

Storage options for a URL (an S3 endpoint, a profile, ``anon``…) come from
``FACEML_RUNS_STORAGE_OPTIONS`` (a JSON object, given to the fsspec driver); the drivers'
own settings (``AWS_ENDPOINT_URL``, ``AWS_PROFILE``, ``GOOGLE_APPLICATION_CREDENTIALS``…)
work as usual.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from faceml.errors import FaceMLError
from faceml.io import atomic_file, write_bytes_atomic

URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
OPTIONS_ENV = "FACEML_RUNS_STORAGE_OPTIONS"
SCALE_HINT = "pip install .[scale]"
PACKAGES = {"s3": "s3fs", "s3a": "s3fs", "gs": "gcsfs", "gcs": "gcsfs", "az": "adlfs",
            "abfs": "adlfs", "abfss": "adlfs"}
"""The driver package of the common schemes (fsspec's own message names the others)."""


class StorageError(FaceMLError):
    """The run store's location cannot be opened, read or written (said in one sentence)."""


def is_url(where) -> bool:
    """Whether ``where`` is a URL (``scheme://…``) rather than a local path."""
    return isinstance(where, str) and URL.match(where) is not None


def one_line(e: BaseException) -> str:
    text = str(e).strip()
    return (text.splitlines()[0] if text else type(e).__name__)[:300]


def storage_options() -> dict:
    raw = os.environ.get(OPTIONS_ENV, "").strip()
    if not raw:
        return {}
    try:
        opts = json.loads(raw)
    except ValueError as e:
        raise StorageError(f"{OPTIONS_ENV} is not JSON ({one_line(e)})") from None
    if not isinstance(opts, dict):
        raise StorageError(f"{OPTIONS_ENV} must be a JSON object of the driver's options")
    return opts


def _driver(url: str):
    """fsspec's filesystem class for the URL's scheme, or a StorageError naming what to
    install."""
    scheme = URL.match(url).group(1).lower()
    try:
        import fsspec
        from fsspec.registry import known_implementations, registry
    except ImportError:
        wanted = " ".join(["fsspec"] + ([PACKAGES[scheme]] if scheme in PACKAGES else []))
        raise StorageError(f"the run store {url} is a URL, which needs fsspec: {SCALE_HINT} "
                           f"(or pip install {wanted})") from None
    if scheme not in known_implementations and scheme not in registry:
        raise StorageError(f"the run store {url}: no fsspec driver knows the scheme "
                           f"{scheme}:// (use a local path, file://, s3://, gs://…)")
    try:
        return fsspec.get_filesystem_class(scheme)
    except ImportError as e:
        package = PACKAGES.get(scheme)
        said = known_implementations.get(scheme, {}).get("err") or one_line(e)
        if package:
            raise StorageError(f"the run store {url} needs the {scheme}:// driver: "
                               f"{SCALE_HINT} (or pip install {package}); fsspec says: "
                               f"{said}") from None
        raise StorageError(f"the run store {url} needs a driver for {scheme}://: {said}"
                           ) from None


class Folder:
    """A folder of files addressed by name; see :class:`LocalFolder`, :class:`URLFolder`."""

    remote = False
    location: str

    def __str__(self) -> str:
        return self.location


class LocalFolder(Folder):
    """A local folder: pathlib reads, atomic renames (the store's behaviour before URLs)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.location = str(self.path)

    def child(self, name: str) -> LocalFolder:
        return LocalFolder(self.path / name)

    def parent(self) -> LocalFolder:
        return LocalFolder(self.path.parent)

    @property
    def name(self) -> str:
        return self.path.name

    def local_path(self, name: str) -> Path:
        return self.path / name

    def read_bytes(self, name: str) -> bytes:
        return (self.path / name).read_bytes()

    def exists(self, name: str) -> bool:
        return (self.path / name).exists()

    def write_bytes(self, name: str, data: bytes) -> None:
        write_bytes_atomic(self.path / name, data)

    def put(self, local: str | Path, name: str) -> None:
        import shutil

        with atomic_file(self.path / name, suffix=Path(name).suffix) as tmp:
            shutil.copyfile(local, tmp)

    def remove(self, name: str) -> None:
        (self.path / name).unlink(missing_ok=True)

    def version(self, name: str) -> tuple | None:
        try:
            st = (self.path / name).stat()
        except FileNotFoundError:
            return None
        return (str(self.path / name), st.st_mtime_ns, st.st_size)

    def mkdir(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)

    def folders_with(self, name: str) -> list[tuple[str, float]]:
        """``(folder name, mtime of its file name)`` of the sub-folders holding ``name``
        (hidden ones skipped)."""
        if not self.path.exists():
            return []
        out = []
        for d in self.path.iterdir():
            if d.name.startswith(".") or not d.is_dir():
                continue
            try:
                out.append((d.name, (d / name).stat().st_mtime))
            except OSError:  # not a run, or removed meanwhile
                continue
        return out

    def names(self) -> list[str]:
        return sorted(p.name for p in self.path.iterdir()) if self.path.exists() else []

    def files(self) -> list[tuple[str, float]]:
        """``(name, mtime)`` of the files in it."""
        out = []
        for p in (self.path.iterdir() if self.path.exists() else ()):
            try:
                if p.is_file():
                    out.append((p.name, p.stat().st_mtime))
            except OSError:
                continue
        return out


class URLFolder(Folder):
    """A folder at an fsspec URL. Driver errors (no credentials, no such bucket, a refused
    connection) become a :class:`StorageError` with the driver's message in one line; a
    missing file stays ``FileNotFoundError``."""

    remote = True

    def __init__(self, url: str, fs=None, path: str | None = None):
        self.location = url.rstrip("/")
        if fs is None:
            cls = _driver(url)
            with self._errors():
                fs = cls(**{**storage_options()})
                path = cls._strip_protocol(url)
        self.fs = fs
        self.path = str(path).rstrip("/")
        # a local filesystem has an atomic rename; object stores have whole-object PUTs
        self.renames = "file" in (fs.protocol if isinstance(fs.protocol, tuple)
                                  else (fs.protocol,))

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except (FileNotFoundError, FaceMLError):
            raise
        except Exception as e:  # noqa: BLE001 - any driver's error, said in one line
            raise StorageError(f"the run store {self.location}: {one_line(e)}") from None

    def child(self, name: str) -> URLFolder:
        return URLFolder(f"{self.location}/{name}", self.fs, f"{self.path}/{name}")

    def parent(self) -> URLFolder:
        return URLFolder(self.location.rsplit("/", 1)[0], self.fs, self.path.rsplit("/", 1)[0])

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    def _p(self, name: str) -> str:
        return f"{self.path}/{name}"

    def read_bytes(self, name: str) -> bytes:
        with self._errors():
            return self.fs.cat_file(self._p(name))

    def exists(self, name: str) -> bool:
        with self._errors():
            self.fs.invalidate_cache(self.path)  # another machine may have written it
            return self.fs.exists(self._p(name))

    def _temp(self, name: str) -> str:
        return self._p(f".{name}.tmp-{uuid.uuid4().hex}")

    def write_bytes(self, name: str, data: bytes) -> None:
        with self._errors():
            if self.renames:
                self.fs.makedirs(self.path, exist_ok=True)
                tmp = self._temp(name)
                try:
                    self.fs.pipe_file(tmp, data)
                    self.fs.mv(tmp, self._p(name))
                finally:
                    if self.fs.exists(tmp):
                        self.fs.rm_file(tmp)
            else:
                self.fs.pipe_file(self._p(name), data)  # one PUT: whole or not at all

    def put(self, local: str | Path, name: str) -> None:
        with self._errors():
            if self.renames:
                self.fs.makedirs(self.path, exist_ok=True)
                tmp = self._temp(name)
                try:
                    self.fs.put_file(str(local), tmp)
                    self.fs.mv(tmp, self._p(name))
                finally:
                    if self.fs.exists(tmp):
                        self.fs.rm_file(tmp)
            else:
                self.fs.put_file(str(local), self._p(name))

    def get(self, name: str, dest: str | Path) -> None:
        """Download ``name`` to the local ``dest`` (atomically: whole or not at all)."""
        with self._errors(), atomic_file(dest, suffix=Path(name).suffix) as tmp:
            self.fs.get_file(self._p(name), tmp)

    def remove(self, name: str) -> None:
        with self._errors():
            try:
                self.fs.rm_file(self._p(name))
            except FileNotFoundError:
                pass
            self.fs.invalidate_cache(self.path)

    def version(self, name: str) -> tuple | None:
        with self._errors():
            self.fs.invalidate_cache(self.path)
            try:
                info = self.fs.info(self._p(name))
            except FileNotFoundError:
                return None
        stamp = info.get("ETag") or info.get("etag") or info.get("md5Hash") \
            or info.get("mtime") or info.get("LastModified") or info.get("created")
        return (f"{self.location}/{name}", str(stamp), int(info.get("size") or 0))

    def mkdir(self) -> None:
        with self._errors():
            self.fs.makedirs(self.path, exist_ok=True)

    def folders_with(self, name: str) -> list[tuple[str, float]]:
        """As :meth:`LocalFolder.folders_with`, from one listing of the store."""
        with self._errors():
            self.fs.invalidate_cache(self.path)
            try:
                found = self.fs.find(self.path, maxdepth=None if not self.renames else 2,
                                     detail=True)
            except FileNotFoundError:
                return []
        out = []
        cut = len(self.path) + 1
        for key, info in found.items():
            parts = key[cut:].split("/")
            if len(parts) == 2 and parts[1] == name and not parts[0].startswith("."):
                out.append((parts[0], _mtime(info)))
        return out

    def names(self) -> list[str]:
        with self._errors():
            self.fs.invalidate_cache(self.path)
            try:
                return sorted(p.rstrip("/").rsplit("/", 1)[-1] for p in self.fs.ls(self.path,
                                                                                  detail=False))
            except FileNotFoundError:
                return []

    def files(self) -> list[tuple[str, float]]:
        with self._errors():
            self.fs.invalidate_cache(self.path)
            try:
                found = self.fs.ls(self.path, detail=True)
            except FileNotFoundError:
                return []
        return [(i["name"].rstrip("/").rsplit("/", 1)[-1], _mtime(i)) for i in found
                if i.get("type") == "file"]


def _mtime(info: dict) -> float:
    for key in ("mtime", "LastModified", "updated", "created", "last_modified"):
        v = info.get(key)
        if v is None:
            continue
        if hasattr(v, "timestamp"):
            return float(v.timestamp())
        try:
            return float(v)
        except (TypeError, ValueError):
            continue
    return 0.0


def open_folder(where: str | Path) -> Folder:
    """The folder at a local path or an fsspec URL."""
    if is_url(where):
        return URLFolder(str(where))
    return LocalFolder(where)


def machine_folder(where: str | Path, base: Path) -> Path:
    """This machine's own local folder for a location: the location itself when it is local;
    for a URL, a folder under ``base`` named by the URL's hash (a worker's lock and log,
    downloaded checkpoints)."""
    if not is_url(where):
        return Path(where)
    digest = hashlib.sha256(str(where).rstrip("/").encode()).hexdigest()[:16]
    return base / "stores" / digest
