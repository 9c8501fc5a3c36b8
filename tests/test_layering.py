"""Dependencies go one way: errors/paths/io/hosting ← data ← modeling ← runs ← evaluation ←
training ← serving ← cli, then ui ← faceml and app_pages ← ui. Every import counts: at module
level or inside a function, static or through ``importlib.import_module``/``__import__``; and
no two modules import each other, directly or round a loop."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ["base", "data", "modeling", "runs", "evaluation", "training", "serving", "cli",
          "ui", "app_pages"]
BASE = {"faceml", "faceml.errors", "faceml.paths", "faceml.io", "faceml.storage",
        "faceml.hosting", "faceml.markdown", "faceml.flags"}
RUNS = {"faceml.config", "faceml.runs"}
PACKAGES = {"faceml.data": "data", "faceml.modeling": "modeling",
            "faceml.evaluation": "evaluation", "faceml.training": "training",
            "faceml.serving": "serving", "faceml.cli": "cli", "faceml.__main__": "cli"}


def layer_of(module: str) -> str | None:
    if module in BASE:
        return "base"
    if module in RUNS:
        return "runs"
    for pkg, layer in PACKAGES.items():
        if module == pkg or module.startswith(pkg + "."):
            return layer
    top = module.split(".")[0]
    if top in ("ui", "app_pages"):
        return top
    return None


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    found = {}
    for folder in ("faceml", "ui", "app_pages"):
        for p in (ROOT / folder).rglob("*.py"):
            found[module_name(p)] = p
    return found


def imports(path: Path, known: dict[str, Path]) -> list[tuple[str, int]]:
    """The project modules ``path`` imports, with their lines."""
    me = module_name(path)
    pkg = me if path.name == "__init__.py" else me.rpartition(".")[0]
    out = []

    def add(name: str, line: int) -> None:
        while name and name not in known:
            name = name.rpartition(".")[0]
        if name and name != me:
            out.append((name, line))

    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for a in node.names:
                add(a.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = pkg.split(".")[:len(pkg.split(".")) - node.level + 1]
                base = ".".join(up + ([node.module] if node.module else []))
            for a in node.names:
                full = f"{base}.{a.name}"
                add(full if full in known else base, node.lineno)
        elif isinstance(node, ast.Call) and node.args:
            fn = node.func
            name = getattr(fn, "attr", None) or getattr(fn, "id", None)
            if name in ("import_module", "__import__"):
                arg = node.args[0]
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    add(arg.value, node.lineno)
                elif isinstance(arg, ast.JoinedStr) and arg.values and \
                        isinstance(arg.values[0], ast.Constant):
                    add(str(arg.values[0].value).rstrip("."), node.lineno)
    return out


def graph() -> dict[str, list[tuple[str, int]]]:
    known = modules()
    return {m: imports(p, known) for m, p in known.items()}


def test_every_module_has_a_layer():
    assert [m for m in modules() if layer_of(m) is None] == []


def test_no_module_imports_upward():
    up = []
    for me, deps in graph().items():
        mine = LAYERS.index(layer_of(me))
        for dep, line in deps:
            theirs = LAYERS.index(layer_of(dep))
            if theirs > mine:
                up.append(f"{me}:{line} imports {dep} ({layer_of(me)} -> {layer_of(dep)})")
    assert up == []


def test_no_import_cycles():
    g = {m: {d for d, _ in deps} for m, deps in graph().items()}
    index, low, stack, on, cycles, counter = {}, {}, [], set(), [], [0]

    def visit(v):  # Tarjan's strongly connected components
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in g[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in g:
        if v not in index:
            visit(v)
    assert cycles == []


@pytest.mark.parametrize("source, imported, layer", [
    ("from faceml.training import engine\n", "faceml.training.engine", "training"),
    ("def f():\n    from faceml.serving.predict import Predictor\n", "faceml.serving.predict",
     "serving"),
    ("import importlib\nimportlib.import_module('faceml.cli')\n", "faceml.cli", "cli"),
    ("import importlib\nm = 'x'\nimportlib.import_module(f'faceml.evaluation.{m}')\n",
     "faceml.evaluation", "evaluation"),
])
def test_the_check_sees_every_kind_of_import(tmp_path, source, imported, layer, monkeypatch):
    """The test would fail on an upward import of each kind (static, in a function, through
    importlib), so it is not a test that cannot fail."""
    fake = ROOT / "faceml" / "data" / "_layering_probe.py"
    known = {**modules(), "faceml.data._layering_probe": fake}
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: source
                        if self == fake else Path.read_bytes(self).decode())
    found = [m for m, _ in imports(fake, known)]
    assert imported in found and layer_of(imported) == layer
    assert LAYERS.index(layer) > LAYERS.index(layer_of("faceml.data._layering_probe"))
