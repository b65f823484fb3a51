"""Smoke test of the limits benchmark: a tiny run prints both tables with numbers (no timing asserts: the
figures are the benchmark's to print), and with the guards on the well-behaved client got every answer.

It starts two real `bandit-service serve` processes under an open-file limit (Linux only).
"""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.limits import main

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs Linux (/proc, RLIMIT_NOFILE)")

NUMBER = r"[\d,]+(?:\.\d+)?"
LATENCY = rf"(?:{NUMBER}|nan)"  # nan: no request answered (the guards off, under a real attack)


def _run(*options: str) -> subprocess.CompletedProcess[str]:
    """Run the benchmark the way a user does, in its own process."""
    return subprocess.run(
        [sys.executable, "-m", "benchmarks.limits", *options],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_a_tiny_run_prints_both_tables_and_the_guarded_server_answers_every_request():
    # 21 arms: just past both bounds (exact P(best) serves 20; 21 x 100,000 draws > 2,000,000), so it stays cheap.
    options = ("--arms", "21", "--draws", "100000", "--connections", "200", "--seconds", "2", "--client-timeout", "10")
    proc = _run(*options)
    assert proc.returncode == 0, proc.stdout + proc.stderr

    cpu_rows = re.findall(
        rf"^(monte carlo|exact) +(\d+) +({NUMBER}|-) +(422|accepted) +({NUMBER}) +(\d+) +({NUMBER})$",
        proc.stdout,
        re.MULTILINE,
    )
    verdicts = [(label, int(arms), draws, api) for label, arms, draws, api, *_ in cpu_rows]
    assert verdicts == [
        ("monte carlo", 21, "100,000", "422"),
        ("monte carlo", 21, "95,238", "accepted"),
        ("monte carlo", 2, "100,000", "accepted"),
        ("exact", 21, "-", "422"),
        ("exact", 20, "-", "accepted"),
    ], proc.stdout
    assert all(float(row[4]) > 0 for row in cpu_rows)  # CPU seconds
    assert cpu_rows[1][6] == "1.0" and cpu_rows[4][6] == "1.0"  # each bound over itself
    assert "21 arms x 100,000 draws costs" in proc.stdout

    # variant, requests, 2xx, 503, timeout, failed; p50 and max ms; log bytes, server CPU, attack open, closed
    slow_row = rf"^(off|on) +(\d+) +(\d+) +(\d+) +(\d+) +(\d+) +{LATENCY} +{LATENCY}" + rf"(?: +{NUMBER}){{4}}$"
    slow = {row[0]: [int(n) for n in row[1:]] for row in re.findall(slow_row, proc.stdout, re.MULTILINE)}
    assert set(slow) == {"off", "on"}, proc.stdout
    requests, ok, unavailable, timed_out, failed = slow["on"]
    assert requests > 0 and ok + unavailable == requests and timed_out == failed == 0, proc.stdout
    assert re.search(r"^on: (\d+) of \1 well-behaved requests answered", proc.stdout, re.MULTILINE)
    assert "[limits" in proc.stderr and "[limits" not in proc.stdout  # progress lines go to stderr


def test_a_configuration_inside_the_bound_is_refused(capsys: pytest.CaptureFixture[str]):
    # 50 x 40,000 is accepted by the API: nothing beyond the bound to show. In process: argparse stops first.
    with pytest.raises(SystemExit) as stopped:
        main(["--arms", "50", "--draws", "40000", "--skip-slow"])
    err = capsys.readouterr().err
    assert stopped.value.code == 2 and "--draws: at most 1,000,000" in err and "got 50 x 40,000" in err
