"""The house rules of the import graph: every import points down a layer, and no module cycle exists.

Layers, top to bottom (README, "Development"):
  entry     app, asgi, runtime, cli/, client/, demo/, offline
  http      routes, wire schemas, views, problem mapping
  services  async use cases and write jobs over the ports      | storage  SQL and in-memory storage,
            (never the storage implementations)                |          clocks, ids (the adapters)
  ports     Storage, WriteTx, Clock, IdFactory
  core      pure values and rules; settings
  policies  pure numpy/scipy
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("bandit_service", "policies")

RANKS: dict[str, int] = {
    "policies": 0,
    "bandit_service.core": 1,
    "bandit_service.settings": 1,
    "bandit_service.ports": 2,
    "bandit_service.storage": 3,
    "bandit_service.clock": 3,
    "bandit_service.ids": 3,
    "bandit_service.services": 3,
    "bandit_service.http": 4,
    "bandit_service": 5,  # the entry modules at the top of the package
}
"""Rank of each layer, by the longest matching module prefix; an import may not point to a higher rank."""

SIBLINGS_APART = {("bandit_service.services", "bandit_service.storage")}
"""Same rank, and still no import either way: services see storage only through the ports."""


def layer(module: str) -> str:
    """The layer a module belongs to: its longest prefix in RANKS."""
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        prefix = ".".join(parts[:n])
        if prefix in RANKS:
            return prefix
    raise KeyError(f"{module}: no layer in RANKS; add its package to the table (and to the README's map)")


def modules() -> dict[str, Path]:
    """Every module of the two packages, by dotted name."""
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


MODULES = modules()


def imports(path: Path) -> Iterator[str]:
    """The project modules a file imports (anywhere in it, inside functions too)."""
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            # `from package import module` imports the module; `from module import name`, the module.
            names = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        for name in names:
            if name in MODULES and name.split(".")[0] in PACKAGES:
                yield name
                break


@functools.cache
def edges() -> dict[str, set[str]]:
    """The import graph over project modules."""
    return {module: set(imports(path)) - {module} for module, path in MODULES.items()}


def test_every_module_has_a_layer() -> None:
    for module in MODULES:
        layer(module)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_down(module: str) -> None:
    source = layer(module)
    for target in sorted(edges()[module]):
        dest = layer(target)
        assert RANKS[dest] <= RANKS[source], f"{module} ({source}) imports {target} ({dest}), a layer above it"
        pair = tuple(sorted((source, dest)))
        assert pair not in SIBLINGS_APART, f"{module} imports {target}: {source} and {dest} meet only at the ports"


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm: the components of the graph with more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle() -> None:
    assert strongly_connected(edges()) == []


def test_the_checks_bite() -> None:
    """The cycle finder and the layer table catch what they are for (a made-up graph and module)."""
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert RANKS[layer("bandit_service.storage.sql")] < RANKS[layer("bandit_service.http.routes")]
    assert layer("bandit_service.app") == "bandit_service"
    with pytest.raises(KeyError, match="no layer"):
        layer("elsewhere.module")
