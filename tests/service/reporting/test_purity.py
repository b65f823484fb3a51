"""The report builder is pure: it imports only policies, numpy, scipy, msgspec and non-clock stdlib modules."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import bandit_service.core.reporting

PACKAGE_DIR = Path(bandit_service.core.reporting.__file__).parent
ALLOWED = {"bandit_service.core.reporting", "policies", "numpy", "scipy", "msgspec"}
PURE_MODULES = {"bandit_service.core.fields"}  # constrained types only (msgspec Meta): the criteria's metric names
PURE_STDLIB = {"__future__", "collections", "math", "textwrap", "typing"}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
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


def test_the_pure_modules_it_may_import_import_only_msgspec() -> None:
    for name in PURE_MODULES:
        path = Path(__import__(name, fromlist=["_"]).__file__ or "")
        assert _imports(path) <= {"__future__", "typing", "msgspec"}, name
