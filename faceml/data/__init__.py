"""Dataset adapters behind one interface, found by name (like timm's model registry).

    from faceml import data
    adapter = data.get("utkface")
    scan = adapter.scan("../shared/data/utkface")

Register a new adapter by decorating its class with :func:`faceml.data.registry.register`
and importing its module here.
"""

from __future__ import annotations

from faceml import hosting
from faceml.data import celeba, fairface, folder, synthetic, utkface, utkface_csv  # noqa: F401
from faceml.data.base import (SPLITS, BadItem, DatasetAdapter, LabelSpec,  # noqa: F401
                              Progress, Scan)
from faceml.data.registry import get, names, register  # noqa: F401

hosting.use_datasets(get, names)  # the hosting policy reads the registry without importing it
