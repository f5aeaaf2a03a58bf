"""The house's layering, read from the source (issue 28 item 4): imports flow
``bench, aec -> jobs -> cluster -> aecore``, aecore has no Ray, and no two modules import each
other — lazy imports inside functions included (a circle hidden in a function is still one);
imports only a type checker runs (``if TYPE_CHECKING:``) are left out."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("aec", "aecore", "cluster", "jobs", "bench")
#: what each floor may not import
BELOW = {"aecore": ("cluster", "jobs", "aec", "bench", "ray"), "cluster": ("jobs", "aec", "bench"),
         "jobs": ("aec", "bench")}


@functools.cache
def _modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _imports(path: Path, known: dict[str, Path]) -> set[str]:
    """Every module ``path`` imports (project submodules resolved), at any depth of the file."""
    tree = ast.parse(path.read_text())
    typing_only = {id(n) for node in ast.walk(tree)
                   if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test) for n in ast.walk(node)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in known else node.module
                      for a in node.names}
    return found


@functools.cache
def _graph() -> dict[str, set[str]]:
    known = _modules()
    return {name: _imports(path, known) for name, path in known.items()}


def test_no_floor_imports_one_above_it():
    wrong = sorted(f"{name} imports {target}" for name, targets in _graph().items() for target in targets
                   if any(target == t or target.startswith(t + ".") for t in BELOW.get(name.split(".")[0], ())))
    assert wrong == [], wrong


def test_no_two_modules_import_each_other():
    known = _modules()
    graph = {name: {t for t in targets if t in known} - {name} for name, targets in _graph().items()}
    circles, index, low, stack, on = [], {}, {}, [], set()

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    assert len(graph) > 50 and circles == [], circles
