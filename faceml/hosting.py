"""The hosting policy: what a visitor of a hosted copy may do, decided in one place.

A copy of FaceML Studio shared with a class is used by strangers. ``FACEML_HOSTED=1`` turns on
demo mode, and an optional operator file (``FACEML_HOSTING_CONFIG``, TOML) sets it up::

    [datasets]                    # the allow-list: dataset name = server path ("" = built in
    synthetic = ""                #  or the adapter's default location)
    utkface = "/srv/faces/utkface"

    [caps]
    epochs = 20                   # per run
    faces = 5000                  # faces a run (or the Data page) uses; more are sampled down
    params = 20000000             # model parameters, counted without building weights
    jobs_per_visitor = 1          # queued or running runs launched by one visitor
    queue = 8                     # queued or running runs on the server

    [training]
    nice = 10                     # training processes run at this niceness (0-19), so the
                                  #  visitors' pages come first on a small server

Without the file, the allow-list is the built-in ``synthetic`` plus every dataset found at its
default location. Every page, widget, CLI entry and :func:`faceml.training.jobs.submit` consults
:func:`current`; the library itself refuses a dataset or a path outside the allow-list, so a
page that forgot to hide one still cannot read the server's disk. Messages never echo a server
path (:meth:`HostingPolicy.redact`).

Visitors are identified by an opaque token of their session (``visitor``); a run records a
hash of its launcher's token (``owner`` in ``status.json``) and, when hosted, only that visitor
(or the server's own :data:`OPERATOR`, e.g. the CLI) may stop it.
"""

from __future__ import annotations

import hashlib
import os
import tomllib
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path

from faceml import paths
from faceml.errors import FaceMLError

HOSTED_ENV = "FACEML_HOSTED"
CONFIG_ENV = "FACEML_HOSTING_CONFIG"
OPERATOR = "operator"
"""The visitor token of the server's own tools (CLI, scripts): may stop any run."""

ACTIVE = ("queued", "running")


class _Datasets:
    """The dataset registry as the policy sees it: ``get(name)`` and ``names()``, handed over
    by :mod:`faceml.data` when it is imported (:func:`use_datasets`), so the policy, which the
    adapters consult, never imports them."""

    get = None
    names = None


_datasets = _Datasets()


def use_datasets(get, names) -> None:
    """Called once by :mod:`faceml.data`: how the policy finds dataset adapters."""
    _datasets.get, _datasets.names = get, names


def _data() -> _Datasets:
    if _datasets.get is None:  # a caller that reads datasets has imported faceml.data
        raise RuntimeError("faceml.data is not imported: the hosting policy has no datasets")
    return _datasets


class PolicyError(FaceMLError):
    """Something the hosted demo does not allow (one plain sentence, no server path)."""


@dataclass(frozen=True)
class Caps:
    epochs: int = 20
    faces: int = 5000
    params: int = 20_000_000
    jobs_per_visitor: int = 1
    queue: int = 8


def owner_tag(visitor: str) -> str:
    """What a run stores of its launcher: a hash, so the token itself is never written."""
    return hashlib.sha256(visitor.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class HostingPolicy:
    hosted: bool = False
    allow_list: dict[str, str | None] | None = None
    """Hosted: the operator's allowed dataset name -> server path (None = built in / default
    location); None: the built-in datasets and those found at their default location."""
    caps: Caps = field(default_factory=Caps)
    train_nice: int = 10
    """Hosted: the niceness training processes lower themselves to (0 = as the web server)."""

    @cached_property
    def datasets(self) -> dict[str, str | None]:
        """Hosted: allowed dataset name -> server path (the operator's list, or the defaults,
        read from the dataset registry when first asked for)."""
        if self.allow_list is not None or not self.hosted:
            return dict(self.allow_list or {})
        return _default_datasets()

    # -- what may be shown -------------------------------------------------------------------
    @property
    def typed_paths(self) -> bool:
        """Whether a visitor may type a path (never when hosted)."""
        return not self.hosted

    @property
    def sweeps(self) -> bool:
        return not self.hosted

    @property
    def train_again(self) -> bool:
        """Repeats of a finished configuration (hosted: no, the cached run is shown)."""
        return not self.hosted

    def dataset_names(self) -> list[str]:
        """The datasets a visitor may choose, in the registry's order."""
        data = _data()
        names = data.names()
        if not self.hosted:
            return names
        return [n for n in names if n in self.datasets and self._on_disk(n)]

    def _on_disk(self, name: str) -> bool:
        data = _data()
        try:
            return data.get(name).found(self.datasets.get(name))
        except OSError:
            return False

    # -- what the library enforces -----------------------------------------------------------
    def dataset_path(self, name: str, path: str | None) -> str | None:
        """The path to read ``name`` from: the one given (not hosted), or the operator's.

        Hosted, a dataset off the allow-list or any typed path is refused."""
        if not self.hosted:
            return path
        if name not in self.datasets:
            raise PolicyError(f"the dataset {name!r} is not offered on this server; choose one "
                              f"of {', '.join(self.dataset_names()) or 'none'}")
        server = self.datasets[name]
        if path not in (None, "") and not _same_path(path, server, name):
            raise PolicyError("paths cannot be chosen on this server: its datasets are read "
                              "from where the operator put them")
        return server

    def check_faces(self, n: int) -> int:
        """How many of ``n`` faces a hosted run or page may use."""
        return min(n, self.caps.faces) if self.hosted else n

    def check_train(self, cfg, store, visitor: str | None, count_params) -> None:
        """Refuse a run over the caps, before anything is built or queued. ``count_params()``
        gives the model's parameter count (without building weights); it is asked last."""
        if not self.hosted:
            return
        parts = [cfg.data.part(d) for d in cfg.data.datasets] if cfg.data.multi else [cfg.data]
        for part in parts:
            self.dataset_path(part.dataset, part.path)
        n = sum(int(v) for part in parts
                for v in [(part.dataset_options or {}).get("n")] if isinstance(v, int | float))
        n = n or None
        if isinstance(n, int | float) and n > self.caps.faces:
            raise PolicyError(f"this server trains on at most {self.caps.faces:,} faces; "
                              f"{int(n):,} were asked for")
        if int(cfg.epochs) > self.caps.epochs:
            raise PolicyError(f"this server trains at most {self.caps.epochs} epochs a run; "
                              f"{cfg.epochs} were asked for")
        if cfg.repeat and not self.train_again:
            raise PolicyError("training a configuration again is off on this server; its "
                              "cached run is shown instead")
        total = count_params()
        if total > self.caps.params:
            raise PolicyError(f"this model has {total:,} parameters; this server trains models "
                              f"of at most {self.caps.params:,}. Use fewer or narrower layers.")
        if visitor is None:
            raise PolicyError("a hosted run needs to know who launched it")
        active = [r for r in store.list() if _state(r) in ACTIVE]
        if visitor != OPERATOR:
            mine = [r for r in active if _owner(r) == owner_tag(visitor)]
            if len(mine) >= self.caps.jobs_per_visitor:
                raise PolicyError(f"you already have {len(mine)} run(s) queued or training (at "
                                  f"most {self.caps.jobs_per_visitor} a visitor): stop one or "
                                  "wait for it to finish")
        if len(active) >= self.caps.queue:
            raise PolicyError(f"the server's queue is full ({len(active)} runs queued or "
                              "training); try again in a few minutes")

    def may_stop(self, run, visitor: str | None) -> bool:
        """Not hosted: anyone. Hosted: the run's launcher, or the server's operator."""
        if not self.hosted or visitor == OPERATOR:
            return True
        return visitor is not None and _owner(run) == owner_tag(visitor)

    def check_stop(self, run, visitor: str | None) -> None:
        if not self.may_stop(run, visitor):
            raise PolicyError("this run was launched by another visitor: only they can stop it")

    def yield_to_visitors(self) -> int:
        """Hosted: lower this (training) process's CPU priority to ``train_nice``, so the
        visitors' uploads and pages are served first while runs train on the same machine.
        Never called by the web process. Returns the niceness now."""
        now = os.nice(0)
        if self.hosted and self.train_nice > now:
            now = os.nice(self.train_nice - now)
        return now

    # -- messages ----------------------------------------------------------------------------
    def redact(self, text: str) -> str:
        """``text`` with every server path it names replaced (hosted only)."""
        if not self.hosted:
            return text
        data = _data()
        places: dict[str, str] = {}
        for name, p in self.datasets.items():
            try:
                where = data.get(name).location(p)
            except FaceMLError:
                where = None
            for q in (p, where):
                if q:
                    places[str(q)] = f"<{name}>"
                    places[str(Path(q).resolve())] = f"<{name}>"
        for p, label in ((paths.runs_dir(), "<runs>"), (paths.cache_dir(), "<cache>"),
                         (paths.shared_data_dir(), "<data>"), (paths.PROJECT_ROOT, "<app>")):
            places[str(p)] = label
            if isinstance(p, Path):  # a URL store is redacted as it is written
                places[str(p.resolve())] = label
        for p in sorted(places, key=len, reverse=True):  # longest first: nested folders
            text = text.replace(p, places[p])
        return text


def _same_path(a: str, b: str | None, name: str) -> bool:
    data = _data()
    try:
        want = data.get(name).location(b)
        return want is not None and Path(a).expanduser().resolve() == Path(want).resolve()
    except (OSError, FaceMLError):
        return False


def _state(run) -> str | None:
    try:
        return run.status().get("state")
    except FaceMLError:
        return None


def _owner(run) -> str | None:
    try:
        return run.status().get("owner")
    except FaceMLError:
        return None


def _default_datasets() -> dict[str, str | None]:
    data = _data()
    out: dict[str, str | None] = {}
    for name in data.names():
        ad = data.get(name)
        if not ad.needs_path or ad.default_path is not None:
            out[name] = None
    return out


def _read_config(path: str) -> dict:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as e:
        raise FaceMLError(f"cannot read the hosting config {path}: {e.strerror or e}") from None
    except tomllib.TOMLDecodeError as e:
        raise FaceMLError(f"the hosting config {path} is not valid TOML: {e}") from None


def from_env(environ: dict | None = None) -> HostingPolicy:
    """The policy of this server: ``FACEML_HOSTED`` and the operator's config file."""
    env = os.environ if environ is None else environ
    hosted = env.get(HOSTED_ENV, "") not in ("", "0", "false", "False", "no")
    if not hosted:
        return HostingPolicy()
    cfg_path = env.get(CONFIG_ENV)
    cfg = _read_config(cfg_path) if cfg_path else {}
    datasets = None  # the defaults, resolved when first needed
    if "datasets" in cfg:
        datasets = {str(k): (str(v) if v else None) for k, v in cfg["datasets"].items()}
    caps = Caps()
    for k, v in (cfg.get("caps") or {}).items():
        if k not in Caps.__dataclass_fields__ or isinstance(v, bool) or not isinstance(v, int) \
                or v < 1:
            raise FaceMLError(f"hosting config: [caps] {k} = {v!r} is not a known cap with a "
                              f"whole number ≥ 1 (known: {', '.join(Caps.__dataclass_fields__)})")
        caps = replace(caps, **{k: v})
    nice = (cfg.get("training") or {}).get("nice", HostingPolicy.train_nice)
    if isinstance(nice, bool) or not isinstance(nice, int) or not 0 <= nice <= 19:
        raise FaceMLError(f"hosting config: [training] nice = {nice!r} is not a whole number "
                          "from 0 to 19")
    return HostingPolicy(hosted=True, allow_list=datasets, caps=caps, train_nice=nice)


_cache: dict = {}


def current() -> HostingPolicy:
    """The policy in force now (re-read when the environment or the config file changes)."""
    cfg_path = os.environ.get(CONFIG_ENV)
    try:
        stamp = os.stat(cfg_path).st_mtime_ns if cfg_path else None
    except OSError:
        stamp = "missing"
    key = (os.environ.get(HOSTED_ENV), cfg_path, stamp, str(paths.shared_data_dir()))
    if key not in _cache:
        _cache.clear()
        _cache[key] = from_env()
    return _cache[key]
