"""The report builder is pure: it imports only policies, numpy, scipy, msgspec and non-clock stdlib modules."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import bandit_service.core.reporting

PACKAGE_DIR = Path(bandit_service.core.reporting.__file__).parent
ALLOWED = {"bandit_service.core.reporting", "policies", "numpy", "scipy", "msgspec"}
# Constrained types only (msgspec Meta): the criteria's metric names; the always-valid looks' value and merge.
PURE_MODULES = {"bandit_service.core.fields", "bandit_service.core.looks"}
# In-memory formatting (`csv` into `io.StringIO`) and calendar arithmetic (`datetime`); no clock is read.
PURE_STDLIB = {"__future__", "collections", "csv", "datetime", "io", "math", "textwrap", "typing"}
CLOCK_CALLS = ("now(", "today(", "utcnow(", "time.time", "monotonic(")


def _type_checking_only(tree: ast.Module) -> set[ast.AST]:
    """The nodes under `if TYPE_CHECKING:`: annotations only, never imported at run time."""
    blocks = [n for n in tree.body if isinstance(n, ast.If) and ast.unparse(n.test) == "TYPE_CHECKING"]
    return {node for block in blocks for node in ast.walk(block)}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    tree = ast.parse(path.read_text(), filename=str(path))
    skip = _type_checking_only(tree)
    for node in ast.walk(tree):
        if node in skip:
            continue
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", sorted(PACKAGE_DIR.glob("*.py")), ids=lambda p: p.name)
def test_reporting_imports_no_io_clock_or_service_module(path: Path) -> None:
    for name in _imports(path):
        root = name.split(".")[0]
        allowed = (
            root in PURE_STDLIB
            or root in ALLOWED
            or name in PURE_MODULES
            or name.startswith("bandit_service.core.reporting")
        )
        assert allowed, f"{path.name} imports {name}"
    source = path.read_text()
    assert not [call for call in CLOCK_CALLS if call in source], f"{path.name} reads a clock"


def test_the_pure_modules_it_may_import_import_only_msgspec() -> None:
    for name in PURE_MODULES:
        path = Path(__import__(name, fromlist=["_"]).__file__ or "")
        assert {n.split(".")[0] for n in _imports(path)} <= PURE_STDLIB | {"msgspec"}, name
