"""faceml is an installable package: ``pip install .`` gives a working ``faceml`` command, and
no file of the project edits ``sys.path`` to find it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ["faceml", "ui", "app_pages", "bench", "scripts", "tests", "streamlit_app.py"]


def test_pip_install_gives_a_working_faceml_command(tmp_path):
    """The package alone (not the checkout) installed into a folder: its ``faceml`` command
    lists the datasets and trains a tiny run, which lands in the directory it was started in."""
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--no-build-isolation", "--target", str(site), str(ROOT)],
                   check=True, capture_output=True, text=True)
    exe = site / "bin" / "faceml"
    assert exe.is_file()
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACEML_")}
    env.update({"PYTHONPATH": str(site), "TF_CPP_MIN_LOG_LEVEL": "3",
                "FACEML_SHARED_DATA": str(tmp_path / "no-data")})
    where = subprocess.run([sys.executable, "-c", "import faceml; print(faceml.__file__)"],
                           env=env, cwd=work, capture_output=True, text=True, check=True)
    assert Path(where.stdout.strip()).is_relative_to(site)  # the installed copy, not the checkout
    out = subprocess.run([str(exe), "datasets"], env=env, cwd=work, capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr
    assert "synthetic" in out.stdout
    out = subprocess.run([str(exe), "train", "--dataset", "synthetic", "--dataset-option",
                          "n=120", "--size", "16", "--color", "gray", "--arch", "small_cnn",
                          "--heads", "eyewear", "--epochs", "1", "--json"],
                         env=env, cwd=work, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    run_id = json.loads(out.stdout.strip().splitlines()[-1])["run_id"]
    assert (work / "runs" / run_id).is_dir()


def test_no_file_edits_sys_path():
    pattern = re.compile(r"sys\.path\.(insert|append|extend)|sys\.path\s*[+]?=")
    found = []
    for top in SOURCES:
        base = ROOT / top
        for f in [base] if base.is_file() else sorted(base.rglob("*.py")):
            for i, line in enumerate(f.read_text().splitlines(), 1):
                if pattern.search(line) and f != Path(__file__):
                    found.append(f"{f.relative_to(ROOT)}:{i}: {line.strip()}")
    assert not found, "\n".join(found)
