"""Where FaceML keeps its files; every location can be moved by an environment variable."""

from __future__ import annotations

import os
import re
from pathlib import Path

_CHECKOUT = Path(__file__).resolve().parent.parent
PROJECT_ROOT = _CHECKOUT if (_CHECKOUT / "streamlit_app.py").is_file() else Path.cwd()
"""The project checkout (an editable install, the README's way); for a copy installed with
``pip install .`` (the package alone, in site-packages), the directory it was started in."""


def runs_dir() -> Path | str:
    """The run store (``FACEML_RUNS_DIR``, default ``runs/`` in the project): a local folder,
    or an fsspec URL kept as text (``s3://bucket/runs``; see :mod:`faceml.storage`)."""
    where = os.environ.get("FACEML_RUNS_DIR", "")
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", where):
        return where
    return Path(where or PROJECT_ROOT / "runs")


def cache_dir() -> Path:
    """The prepared-array cache (``FACEML_CACHE_DIR``, default ``.cache/faceml`` in the project)."""
    return Path(os.environ.get("FACEML_CACHE_DIR", PROJECT_ROOT / ".cache" / "faceml"))


def shared_data_dir() -> Path:
    """The course data beside the project (``FACEML_SHARED_DATA``, default ``../shared/data``)."""
    return Path(os.environ.get("FACEML_SHARED_DATA", PROJECT_ROOT.parent / "shared" / "data"))


def models_dir() -> Path:
    """Bundled pretrained models (``FACEML_MODELS_DIR``, default ``models/`` in the project)."""
    return Path(os.environ.get("FACEML_MODELS_DIR", PROJECT_ROOT / "models"))
