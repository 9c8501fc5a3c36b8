"""The dataset registry: adapters found by name (like timm's model registry).

An adapter class registers itself with :func:`register`; :mod:`faceml.data` imports the
built-in adapters, so ``faceml.data.names()``/``get()`` know them all."""

from __future__ import annotations

from faceml.data.base import DatasetAdapter
from faceml.errors import DataError

_REGISTRY: dict[str, type[DatasetAdapter]] = {}
ORDER = ("synthetic", "utkface", "utkface-csv", "fairface", "celeba", "folder")
"""The built-in adapters, in the order pages list them (synthetic, the default, first)."""


def register(cls: type[DatasetAdapter]) -> type[DatasetAdapter]:
    """Class decorator: make an adapter available by its ``name``."""
    if not cls.name:
        raise ValueError("an adapter needs a name")
    _REGISTRY[cls.name] = cls
    return cls


def names() -> list[str]:
    """Built-in adapters first in a fixed order, then others (sorted)."""
    builtin = [n for n in ORDER if n in _REGISTRY]
    return builtin + sorted(n for n in _REGISTRY if n not in builtin)


def get(name: str) -> DatasetAdapter:
    """The adapter called ``name``; :class:`DataError` naming the known ones otherwise."""
    try:
        return _REGISTRY[name]()
    except KeyError:
        raise DataError(f"unknown dataset {name!r}; known: {', '.join(_REGISTRY)}") from None
