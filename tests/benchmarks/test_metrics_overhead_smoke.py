"""Smoke test of the metrics-overhead benchmark: a tiny run starts the service with metrics off and on and
prints the ratio (no timing asserts: the figure is the benchmark's to print, not the test's to judge).

Needs `wrk` (`apt-get install wrk`); `.ci/run` installs it, so CI always runs it.
"""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(shutil.which("wrk") is None, reason="needs wrk: apt-get install wrk")


def test_a_tiny_run_prints_both_variants_and_their_ratio():
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.metrics_overhead", "--duration", "1", "--rounds", "1", "--concurrency", "2"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for variant in ("off", "on"):
        assert re.search(rf"^round  1 {variant} +\d+ decisions/s +\d+ us CPU/decision", proc.stdout, re.MULTILINE)
        row = re.search(rf"^{variant} +(\d+) +(\d+) +[\d.]+ +[\d.]+ +([\d.]+) +([\d.]+)$", proc.stdout, re.MULTILINE)
        assert row is not None, proc.stdout
        assert int(row.group(1)) > 0 and int(row.group(2)) > 0  # decisions/s, CPU microseconds per decision
        if variant == "off":
            assert (row.group(3), row.group(4)) == ("1.000", "1.000")  # the baseline over itself
    summary = r"on / off: throughput \d\.\d{3} \([+-]\d+\.\d% cost\), CPU per decision \d\.\d{3} \([+-]\d+\.\d% cost\)"
    assert re.search(summary, proc.stdout), proc.stdout
    assert re.search(r"in process: .* cost \d+\.\d us per request = \d+\.\d% of a decision's", proc.stdout)


def test_variants_without_the_baseline_are_refused():
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.metrics_overhead", "--variants", "on,json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2 and "--variants: needs off" in proc.stderr
