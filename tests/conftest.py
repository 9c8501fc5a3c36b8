"""Shared fixtures: every test gets its own run store and array cache, never the user's."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _isolated_store(tmp_path_factory, monkeypatch):
    base = tmp_path_factory.mktemp("store")
    monkeypatch.setenv("FACEML_RUNS_DIR", str(base / "runs"))
    monkeypatch.setenv("FACEML_CACHE_DIR", str(base / "cache"))
    yield


@pytest.fixture
def utkface_dir() -> Path:
    p = SHARED / "utkface"
    if not p.is_dir():
        pytest.skip("../shared/data/utkface is absent")
    return p


@pytest.fixture
def photos_dir() -> Path:
    p = SHARED / "photos"
    if not p.is_dir():
        pytest.skip("../shared/data/photos is absent")
    return p
