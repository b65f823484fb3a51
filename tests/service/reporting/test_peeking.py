"""Continuous monitoring: reading the report after every batch to 4x the horizon ships B at most alpha of the time.

The analyst of issue 14 read the report every 200 units and shipped on the first `ship`; with the
old rule (fixed-horizon p alone once the minimum sample size was reached) that shipped a null
arm 6.85% of the time at alpha = 5%. The report's rule now ships on the always-valid figures
only: the running minimum p-value and the running intersection of the confidence sequences.

Two steps keep this both faithful and fast. First, the report's own recommendation, look by
look with the looks carried as the service stores them, is checked to equal a vectorised form
of the rule (`_ship_path`: `policies.sequential.msprt_running`, the running minimum and
intersection, plus the floor) on every look of a sample of replicates, under the null and under
the alternative. Then the vectorised rule runs 20,000 replicates per scenario: false ships
under the null at most alpha (within simulation error), power under the alternative reported.
`python -m benchmarks.peeking` runs the full report builder on every look for the same figures.
"""

from __future__ import annotations

import numpy as np
import pytest

from bandit_service.core.looks import SequentialLook, merge_looks
from bandit_service.core.reporting import build_report
from bandit_service.services.reports import this_look
from benchmarks.peeking import ALPHA, BASELINE, MDE, horizon, two_arm_input
from policies.sequential import msprt_running
from policies.stats import StatsArray

PER_LOOK = 200  # per arm: the report is read every 400 units


def _paths(effect: float, replicates: int, looks: int, rng: np.random.Generator) -> np.ndarray:
    """Cumulative successes per look, shape (replicates, looks, 2)."""
    rates = np.array([BASELINE, BASELINE + effect])
    return rng.binomial(PER_LOOK, rates, size=(replicates, looks, 2)).cumsum(axis=1)


def _ship_path(successes: np.ndarray, planned: int) -> np.ndarray:
    """The ship rule on every look, vectorised: floor reached, running always-valid p < alpha, CS above 0."""
    looks = successes.shape[-2]
    n = PER_LOOK * np.arange(1, looks + 1, dtype=np.float64)[:, None] * np.ones(2)
    path = StatsArray.from_counts(successes, np.broadcast_to(n, successes.shape))
    run = msprt_running(path, 0, ALPHA)
    difference = run.difference[..., 1]
    return (n[:, 0] >= planned) & (run.p_value[..., 1] < ALPHA) & (difference > 0) & (run.lower[..., 1] >= 0)


@pytest.mark.parametrize("effect", [0.0, MDE], ids=["null", "alternative"])
def test_the_report_recommendation_is_the_vectorised_rule_on_every_look(effect: float) -> None:
    rng = np.random.default_rng(7 if effect else 3)
    planned = horizon()
    looks = int(np.ceil(2 * planned / PER_LOOK))
    successes = _paths(effect, 6, looks, rng)
    expected = _ship_path(successes, planned)
    for r in range(successes.shape[0]):
        stored: tuple[SequentialLook, ...] = ()
        for t in range(looks):
            report = build_report(two_arm_input(successes[r, t], PER_LOOK * (t + 1), planned, stored))
            stored = merge_looks(stored, this_look(report, float(t)))
            assert (report.recommendation.action == "ship") == expected[r, t], (r, t, report.recommendation.reason)
    if effect:
        assert expected[:, -1].any()  # the comparison covered shipping looks too


def test_continuous_monitoring_ships_a_null_arm_at_most_alpha_and_reports_power(
    capsys: pytest.CaptureFixture[str],
) -> None:
    planned = horizon()
    looks = int(np.ceil(4 * planned / PER_LOOK))
    replicates = 20_000
    rng = np.random.default_rng(20261201)
    false_ships = _ship_path(_paths(0.0, replicates, looks, rng), planned).any(axis=1).mean()
    power = _ship_path(_paths(MDE, replicates, looks, rng), planned).any(axis=1).mean()
    error = 2 * np.sqrt(ALPHA * (1 - ALPHA) / replicates)
    with capsys.disabled():
        print(
            f"\ncontinuous monitoring, {looks} looks of {2 * PER_LOOK} units to 4x the horizon ({planned} per arm): "
            f"false ships {false_ships:.2%}, power at the MDE {power:.1%}"
        )
    assert false_ships <= ALPHA + error
    assert power > 0.5  # the always-valid rule still finds a real effect of the planned size by 4x the horizon
