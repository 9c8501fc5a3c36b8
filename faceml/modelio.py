"""Loading and saving models: ``.keras`` only, ``safe_mode=True`` always, atomic writes."""

from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path

from faceml.errors import FaceMLError


def _register_custom_objects() -> None:
    # Importing these modules registers FaceML's serializable layers and losses.
    import faceml.layers  # noqa: F401

    for mod in ("faceml.architectures", "faceml.vae"):
        try:
            __import__(mod)
        except ImportError:
            pass


def load_model(path: str | Path, compile: bool = False):
    """Load a FaceML ``.keras`` model safely; a clear :class:`FaceMLError` for anything else.

    ``safe_mode=True`` refuses models that would run arbitrary code (``Lambda`` layers with
    pickled bytecode), so a crafted file cannot execute anything on load.
    """
    import keras

    _register_custom_objects()
    p = Path(path)
    if not p.is_file():
        raise FaceMLError(f"model file not found: {p}")
    if p.suffix != ".keras" or not zipfile.is_zipfile(p):
        raise FaceMLError(f"{p.name} is not a Keras model (.keras file)")
    try:
        return keras.saving.load_model(p, safe_mode=True, compile=compile)
    except ValueError as e:
        msg = str(e)
        if "safe_mode" in msg or "Lambda" in msg or "unsafe" in msg.lower():
            raise FaceMLError(f"{p.name} was refused: it contains code that would run on "
                              "loading (e.g. a Lambda layer); only safe models are loaded") from None
        raise FaceMLError(f"{p.name} could not be loaded as a model: {msg.splitlines()[0]}") from None
    except (OSError, KeyError, TypeError, zipfile.BadZipFile) as e:
        raise FaceMLError(f"{p.name} could not be loaded as a model: {e}") from None


def _write_atomic(dest: str | Path, write) -> None:
    """``write(tmp_path)`` to a temporary ``.keras`` beside ``dest``, then rename it into place,
    so a crash never leaves a half-written model."""
    d = Path(dest)
    fd, tmp = tempfile.mkstemp(prefix=f".{d.stem}-", suffix=".keras", dir=d.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a model file is meant to be shared
        os.replace(tmp, d)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_model(model, path: str | Path) -> None:
    """Save to ``path`` atomically."""
    _write_atomic(path, model.save)


def copy_atomic(src: str | Path, dest: str | Path) -> None:
    """Copy a model file atomically (the best checkpoint is a copy of the last one)."""
    import shutil

    _write_atomic(dest, lambda tmp: shutil.copyfile(src, tmp))
