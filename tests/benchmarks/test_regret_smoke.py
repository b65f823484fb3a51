"""Smoke test of the regret benchmark: it runs on a tiny setting and prints its table (no timing asserts)."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.regret import ENVIRONMENTS, POLICIES, make_environment

REPO = Path(__file__).resolve().parents[2]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the benchmark the way a user does, in its own process."""
    return subprocess.run(
        [sys.executable, "-m", "benchmarks.regret", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    out = tmp_path_factory.mktemp("regret")
    args = ("--env", "all", "--horizon", "300", "--seeds", "3", "--checkpoints", "5", "--draws", "50")
    return _run(*args, "--peer", "off", "--no-progress", "--out", str(out)), out


def test_prints_a_table_for_every_environment_and_policy(tiny_run) -> None:
    proc, out = tiny_run
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("regret at T") == len(ENVIRONMENTS)
    for label, _ in ENVIRONMENTS.values():
        assert label in proc.stdout
    for name in POLICIES:
        assert proc.stdout.count(f"\n{name} ") == len(ENVIRONMENTS)
    assert "regret thompson_b1000 / thompson online" in proc.stdout
    assert proc.stdout.count(" median ") == proc.stdout.count(" p95 ") == len(ENVIRONMENTS)
    for name in ENVIRONMENTS:
        summary = json.loads((out / f"regret_{name}.json").read_text())
        for policy in summary["policies"]:
            assert policy["regret_median"] <= policy["regret_p95"]


def test_saves_the_plot(tiny_run) -> None:
    pytest.importorskip("matplotlib")
    _, out = tiny_run
    for name in ENVIRONMENTS:
        assert (out / f"regret_{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.skipif(importlib.util.find_spec("mabwiser") is None, reason="MABWiser (bench extra) not installed")
def test_runs_the_mabwiser_peer(tmp_path: Path) -> None:
    # With progress bars (tqdm, when installed) on stderr, as a user sees it.
    args = ("--env", "two_arms", "--horizon", "100", "--seeds", "2", "--policies", "thompson,epsilon_greedy,ucb1")
    proc = _run(*args, "--peer-horizon", "40", "--peer-seeds", "2", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "peer: MABWiser" in proc.stdout and "speed ratio" in proc.stdout


def test_the_bit_generator_is_a_choice_and_is_named_in_the_table(tmp_path: Path) -> None:
    args = ("--env", "two_arms", "--horizon", "100", "--seeds", "2", "--policies", "thompson", "--peer", "off")
    first = _run(*args, "--bit-generator", "pcg64", "--no-progress", "--out", str(tmp_path))
    again = _run(*args, "--bit-generator", "pcg64", "--no-progress", "--out", str(tmp_path))
    assert first.returncode == 0, first.stderr
    assert "pcg64 generator" in first.stdout
    # Same seed, same generator: the same regret (the speed column differs from run to run).
    regret = [line.split()[2] for line in first.stdout.splitlines() if line.startswith("thompson ")]
    assert regret == [line.split()[2] for line in again.stdout.splitlines() if line.startswith("thompson ")]
    refused = _run(*args, "--bit-generator", "mt", "--out", str(tmp_path))
    assert refused.returncode == 2 and "--bit-generator" in refused.stderr


def test_unknown_names_are_refused(tmp_path: Path) -> None:
    proc = _run("--env", "nowhere", "--out", str(tmp_path))
    assert proc.returncode == 2 and "--env: unknown environment 'nowhere'" in proc.stderr
    with pytest.raises(ValueError, match="env: unknown environment"):
        make_environment("nowhere", 100)
