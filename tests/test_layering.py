"""genlab's modules form layers: no import cycle and no import from a layer above, read from the imports.

A cycle hides in function-local imports and shows only in some import order, so the graph is read
from every import statement of every module (wherever it sits in the file), and each module is also
imported alone in a fresh interpreter."""

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "genlab"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:  # noqa: C901 - one walk over the syntax tree
    """The genlab modules ``name`` imports, anywhere in its file (``from . import x`` names module ``x``)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            submodules = {f"{base}.{a.name}" for a in node.names} & known
            found |= submodules
            if len(submodules) < len(node.names):  # a name defined in ``base`` itself
                found.add(base)
    return {m for m in found if m in known and m != name}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` as a list of modules (the first repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        path.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                return path[path.index(n) :] + [n]
            if n not in state and (cycle := visit(n)):
                return cycle
        path.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (cycle := visit(m)):
            return cycle
    return None


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_genlab_module_imports_another_that_imports_it_back():
    mods = modules()
    # the package root re-exports from the modules below it; none of them may import from the root
    graph = {m: imports_of(m, p, set(mods)) - {"genlab"} for m, p in mods.items()}
    assert not [m for m, p in mods.items() if m != "genlab" and "genlab" in imports_of(m, p, set(mods))]
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


# docs/development.md, "Layers, imports and errors": each top-level module or package, by layer
LAYERS = {
    1: {"errors", "version", "names", "settings", "paths", "storage", "schema", "config", "device", "distributions",
        "public"},
    2: {"models", "data", "metrics"},
    3: {"runs"},
    4: {"display", "plots", "explore", "export", "hub", "recipes", "catalog", "cli", "cli_lab", "cli_logs", "__main__"},
}  # fmt: skip


def layer_of(module: str) -> int:
    top = module.split(".")[1]
    found = [n for n, members in LAYERS.items() if top in members]
    assert found, f"{module} is in no layer: add it to LAYERS and to docs/development.md"
    return found[0]


def test_no_module_imports_from_a_layer_above_its_own():
    mods = modules()
    upward = [
        f"{m} (layer {layer_of(m)}) imports {n} (layer {layer_of(n)})"
        for m, p in mods.items()
        if m != "genlab"
        for n in imports_of(m, p, set(mods)) - {"genlab"}
        if layer_of(n) > layer_of(m)
    ]
    assert not upward, upward


# One interpreter loads the heavy third-party packages once (torch alone takes seconds), then forks a child per
# genlab module; each child starts with no genlab module loaded and imports its module alone. A cycle inside
# genlab breaks the same way as in a fresh interpreter: what is preloaded is never genlab.
IMPORT_EACH_ALONE = """
import importlib, os, sys, traceback
import numpy, PIL.Image, torch, torchvision  # noqa: F401  (not genlab)
assert not [m for m in sys.modules if m == "genlab" or m.startswith("genlab.")]
failed = 0
for name in sys.argv[1:]:
    pid = os.fork()
    if pid == 0:
        try:
            importlib.import_module(name)
        except BaseException:
            print(name, traceback.format_exc()[-300:], file=sys.stderr)
            os._exit(1)
        os._exit(0)
    failed += os.waitpid(pid, 0)[1] != 0
sys.exit(1 if failed else 0)
"""


@pytest.mark.slow
def test_every_module_imports_alone_in_a_fresh_interpreter():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # the top of the layers first: the order a cycle would break in (genlab.__main__ runs the CLI: not a library)
    names = sorted(set(modules()) - {"genlab.__main__"}, reverse=True)
    r = subprocess.run(
        [sys.executable, "-c", IMPORT_EACH_ALONE, *names], env=env, capture_output=True, text=True, timeout=600
    )
    assert r.returncode == 0, r.stderr[-3000:]
