"""Smoke tests of the HTTP load benchmark: tiny runs start both servers and check durability.

They need `wrk` and `hey` (`apt-get install wrk hey`); `.ci/run` installs them, so CI always runs
them. The PostgreSQL case also needs the test server (`postgres_url`: skipped locally without
TEST_POSTGRES_URL, a failure under CI).
"""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(
    shutil.which("wrk") is None or shutil.which("hey") is None, reason="needs wrk and hey: apt-get install wrk hey"
)


def _run(*options: str) -> subprocess.CompletedProcess[str]:
    """Run the benchmark the way a user does, in its own process."""
    return subprocess.run(
        [sys.executable, "-m", "benchmarks.http_load", *options],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_a_tiny_load_run_prints_its_table_and_loses_nothing():
    # Two rounds: the second restarts the service on the same database.
    proc = _run("--duration", "1", "--concurrency", "2", "--workers", "1", "--rounds", "2")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for endpoint in ("decisions", "rewards", "open loop"):
        assert endpoint in proc.stdout
    assert "lost: 0" in proc.stdout
    assert "writes per commit" in proc.stdout
    assert "medians of 2 rounds" in proc.stdout
    assert "throughput" in proc.stdout and "of the ceiling" in proc.stdout


def test_two_replicas_on_postgresql_print_their_figures_and_lose_nothing(postgres_url: str):
    # Two uvicorn processes on one fresh schema, each driven by its own wrk and hey; rewards go
    # through the replica that did not make the decision.
    options = ["--database", "postgresql", "--postgres-url", postgres_url, "--replicas", "2"]
    proc = _run(*options, "--duration", "1", "--concurrency", "2", "--workers", "1", "--rounds", "1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "postgresql, 2 replica(s) x 1 worker(s)" in proc.stdout
    assert "group commit, replica 1 " in proc.stdout and "group commit, replica 2 " in proc.stdout
    assert "lost: 0" in proc.stdout and "missing: 0 and 0" in proc.stdout
    row = next(line for line in proc.stdout.splitlines() if line.startswith("| postgresql | 2 x 1 |"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert float(cells[2]) > 0 and float(cells[4]) > 0  # decisions/s and rewards/s
    assert "writes per commit" in proc.stdout and cells[8] != "0.0 (0 / 0)"
    assert cells[-1] == "0"  # lost writes
