"""README's "Reading a report" shows what `docs/reading_a_report.py` prints, line for line."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
ELIDED = "[... the same tables for "


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("reading_a_report", ROOT / "docs" / "reading_a_report.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _readme_block() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Reading a report") :]
    match = re.search(r"```text\n(.*?)```", section, re.DOTALL)
    assert match is not None
    return match.group(1).rstrip("\n").split("\n")


def test_the_readme_report_is_the_scripts_output(tmp_path: Path) -> None:
    printed = _script().run(np.random.default_rng(14), tmp_path / "report.db").rstrip("\n").split("\n")
    shown = _readme_block()
    elided = [i for i, line in enumerate(shown) if line.startswith(ELIDED)]
    assert len(elided) == 1
    cut = elided[0]
    head, tail = shown[:cut], shown[cut + 2 :]  # the marker and its blank line stand for whole sections
    assert printed[: len(head)] == head
    assert printed[-len(tail) :] == tail
    skipped = printed[len(head) : len(printed) - len(tail)]
    names = re.findall(r"^== (\w+) \(", "\n".join(skipped), re.MULTILINE)
    assert names == ["error", "escalated", "latency_ms"]
    assert shown[cut] == f"{ELIDED}error, escalated and latency_ms ...]"
    # What the README's prose says of the run.
    text = "\n".join(printed)
    assert "concise     0.01304" in text and "-0.1655" in text and "Simpson's paradox" in text
    assert "escalated: few events" in text
