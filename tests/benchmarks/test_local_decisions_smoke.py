"""Smoke test of the local-decisions benchmark: a quick run starts the service, prints every figure and the ratios.

No timing asserts: the figures are the benchmark's to print, not the test's to judge.
"""

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_a_quick_run_prints_local_client_and_remote_figures_and_their_ratios():
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.local_decisions", "--quick"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    for target in ("experiment", "feature"):
        for mix in ("sticky hit", "new unit", "no unit"):
            row = re.search(rf"^local +{target} +{mix} +([\d,]+)/s +[\d.]+ us per decision$", out, re.MULTILINE)
            assert row is not None and int(row.group(1).replace(",", "")) > 0, out
    client = re.search(r"^client experiment +sticky hit +([\d,]+)/s .* \(2,000 logs acknowledged in", out, re.MULTILINE)
    assert client is not None and int(client.group(1).replace(",", "")) > 0, out
    for mix in ("sticky hit", "new unit"):
        row = re.search(
            rf"^remote experiment +{mix} +([\d,]+)/s +\d+ us per decision +([\d,]+) per server core-second, 0 errors$",
            out,
            re.MULTILINE,
        )
        assert row is not None and int(row.group(1).replace(",", "")) > 0, out
        ratio = rf"^ratio {mix}: local / remote = [\d,]+x per core \([\d,]+x the remote throughput\)$"
        assert re.search(ratio, out, re.MULTILINE), out
