"""Dataset adapters behind one interface, found by name (like timm's model registry).

    from faceml import data
    adapter = data.get("utkface")
    scan = adapter.scan("../shared/data/utkface")

Register a new adapter by decorating its class with :func:`register`.
"""

from __future__ import annotations

import importlib

from faceml.data.base import (BadItem, DatasetAdapter, LabelSpec, Progress, Scan,  # noqa: F401
                              SPLITS)
from faceml.errors import DataError

_REGISTRY: dict[str, type[DatasetAdapter]] = {}


def register(cls: type[DatasetAdapter]) -> type[DatasetAdapter]:
    """Class decorator: make an adapter available by its ``name``."""
    if not cls.name:
        raise ValueError("an adapter needs a name")
    _REGISTRY[cls.name] = cls
    return cls


BUILTIN = ("synthetic", "utkface", "utkface_csv", "fairface", "celeba", "folder")


def _load_builtin() -> None:
    # Imported for their @register side effect.
    for mod in BUILTIN:
        importlib.import_module(f"faceml.data.{mod}")


def names() -> list[str]:
    """Built-in adapters first in a fixed order (synthetic, the default, first), then others."""
    _load_builtin()
    builtin = [n for n in ("synthetic", "utkface", "utkface-csv", "fairface", "celeba", "folder")
               if n in _REGISTRY]
    return builtin + sorted(n for n in _REGISTRY if n not in builtin)


def get(name: str) -> DatasetAdapter:
    """The adapter called ``name``; :class:`DataError` naming the known ones otherwise."""
    _load_builtin()
    try:
        return _REGISTRY[name]()
    except KeyError:
        raise DataError(f"unknown dataset {name!r}; known: {', '.join(_REGISTRY)}") from None
