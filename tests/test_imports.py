"""The package's import structure: no cycles, a TensorFlow-free ground floor, measurement kept apart.

The import graph is read from the source (every ``import lpcnet...`` / ``from lpcnet...``
statement, also those inside functions), so a cycle is caught even where lazy imports
would hide it at run time.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "lpcnet"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(path: Path) -> set:
    """lpcnet modules that ``path`` imports (``from lpcnet import x`` counts as lpcnet.x if a module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            while name and name not in MODULES:
                name = name.rpartition(".")[0]
            if name and name != "lpcnet":
                found.add(name)
    return found


GRAPH = {name: _imports(path) - {name} for name, path in MODULES.items()}


def _cycle():
    """One import cycle as a list of modules, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for n in sorted(GRAPH.get(m, ())):
            if state.get(n) == 1:
                return stack[stack.index(n):] + [n]
            if n not in state and (found := visit(n)):
                return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(GRAPH):
        if m not in state and (found := visit(m)):
            return found
    return None


def test_no_import_cycle():
    assert len(GRAPH) > 25
    assert _cycle() is None, " -> ".join(_cycle())


def test_the_cycle_check_finds_a_cycle():
    GRAPH["lpcnet.formats"] = GRAPH["lpcnet.formats"] | {"lpcnet.config"}   # config imports formats
    try:
        assert _cycle() is not None
    finally:
        GRAPH["lpcnet.formats"] = GRAPH["lpcnet.formats"] - {"lpcnet.config"}


def test_only_the_bench_package_imports_it():
    outside = {m for m, deps in GRAPH.items() if not m.startswith("lpcnet.bench")
               and any(d.startswith("lpcnet.bench") for d in deps)}
    assert outside == set()


@pytest.mark.parametrize("ground", ["lpcnet.errors", "lpcnet.formats", "lpcnet.sparsity"])
def test_ground_floor_imports_nothing_above_it(ground):
    allowed = {"lpcnet.errors", "lpcnet.formats"}
    assert GRAPH[ground] <= allowed, GRAPH[ground]


def test_every_module_imports_alone_and_the_light_ones_without_tensorflow():
    """Each module imports in a fresh interpreter; stage entry points do not pull in TensorFlow."""
    light = ["lpcnet.cli", "lpcnet.config", "lpcnet.formats", "lpcnet.sparsity", "lpcnet.data",
             "lpcnet.features", "lpcnet.info", "lpcnet.bench", "lpcnet.bench.cli"]
    code = ("import importlib, sys\n"
            f"for m in {light!r}:\n"
            "    importlib.import_module(m)\n"
            "heavy = sorted(k for k in sys.modules if k.split('.')[0] in ('tensorflow', 'keras'))\n"
            "assert not heavy, heavy[:5]\n"
            f"for m in {sorted(m for m in MODULES if not m.endswith('__main__'))!r}:\n"
            "    importlib.import_module(m)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
