"""Smoke test of the HTTP load benchmark: a tiny run starts both servers and checks durability.

It needs `wrk` and `hey` (`apt-get install wrk hey`); `.ci/run` installs them, so CI always runs it.
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


def test_a_tiny_load_run_prints_its_table_and_loses_nothing():
    # Two rounds: the second restarts the service on the same database.
    options = ["--duration", "1", "--concurrency", "2", "--workers", "1", "--rounds", "2"]
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.http_load", *options],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for endpoint in ("decisions", "rewards", "open loop"):
        assert endpoint in proc.stdout
    assert "lost: 0" in proc.stdout
    assert "writes per commit" in proc.stdout
    assert "medians of 2 rounds" in proc.stdout
    assert "throughput" in proc.stdout and "of the ceiling" in proc.stdout
