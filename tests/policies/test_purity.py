"""`policies` is a pure library: no service, web, database or scheduler imports, no global RNG, no clock."""

import ast
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import policies

FORBIDDEN_IMPORTS = ("bandit_service", "litestar", "sqlmodel", "sqlalchemy", "apscheduler", "httpx")
PACKAGE_DIR = Path(policies.__file__).parent
MODULES = sorted(f"policies.{m.name}" for m in pkgutil.iter_modules([str(PACKAGE_DIR)]))
SOURCES = sorted(PACKAGE_DIR.glob("**/*.py"))

# numpy.random names that construct an explicit generator; every other call uses global state.
EXPLICIT_RNG = {"default_rng", "Generator", "SeedSequence", "PCG64", "PCG64DXSM", "Philox", "SFC64", "BitGenerator"}
CLOCK_MODULES = {"time", "datetime", "random", "uuid", "secrets"}


def test_importing_every_module_leaves_the_service_stack_out() -> None:
    code = (
        "import importlib, json, sys\n"
        f"for name in {MODULES!r}:\n"
        "    importlib.import_module(name)\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN_IMPORTS!r})))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=PACKAGE_DIR.parent
    )
    assert json.loads(out.stdout) == []


def _imported_roots(tree: ast.AST) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_no_forbidden_or_clock_imports(path: Path) -> None:
    roots = _imported_roots(ast.parse(path.read_text(), filename=str(path)))
    assert not roots & set(FORBIDDEN_IMPORTS), "policies must not import the service stack"
    assert not roots & CLOCK_MODULES, "policies must not read the clock or use global random state"


def _global_rng_uses(tree: ast.AST) -> list[str]:
    """Attribute chains like np.random.<fn> / numpy.random.<fn> other than explicit generators."""
    aliases = {"np", "numpy"}
    random_aliases = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            aliases |= {a.asname or a.name for a in node.names if a.name == "numpy"}
            random_aliases |= {a.asname or "numpy" for a in node.names if a.name == "numpy.random"}
        elif isinstance(node, ast.ImportFrom) and node.module == "numpy.random":
            bad = [a.name for a in node.names if a.name not in EXPLICIT_RNG]
            if bad:
                return [f"from numpy.random import {', '.join(bad)}"]
        elif isinstance(node, ast.ImportFrom) and node.module == "numpy":
            random_aliases |= {a.asname or a.name for a in node.names if a.name == "random"}
    uses = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute) or node.attr in EXPLICIT_RNG:
            continue
        base = node.value
        via_numpy = (
            isinstance(base, ast.Attribute)
            and base.attr == "random"
            and isinstance(base.value, ast.Name)
            and base.value.id in aliases
        )
        via_alias = isinstance(base, ast.Name) and base.id in random_aliases
        if via_numpy or via_alias:
            uses.append(ast.unparse(node))
    return uses


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_no_global_numpy_random_state(path: Path) -> None:
    assert _global_rng_uses(ast.parse(path.read_text(), filename=str(path))) == []


@pytest.mark.parametrize(
    ("source", "found"),
    [
        ("import numpy as np\nnp.random.seed(1)", ["np.random.seed"]),
        ("import numpy\nx = numpy.random.rand(3)", ["numpy.random.rand"]),
        ("from numpy import random as npr\nnpr.normal()", ["npr.normal"]),
        ("from numpy.random import shuffle", ["from numpy.random import shuffle"]),
        ("import numpy as np\nrng = np.random.default_rng(1)\nrng.normal()", []),
        ("import numpy as np\ndef f(rng: np.random.Generator) -> None: ...", []),
    ],
)
def test_the_global_rng_scan_finds_what_it_should(source: str, found: list[str]) -> None:
    assert _global_rng_uses(ast.parse(source)) == found


def test_the_scan_sees_every_module() -> None:
    names = {p.stem for p in SOURCES}
    assert {"stats", "allocation", "fixed", "epsilon_greedy", "thompson", "posterior", "policy"} <= names
    assert len(MODULES) >= 8
