"""The Simpson's-paradox trap: rates drift over time while the bandit moves its weights."""

from __future__ import annotations

import numpy as np

from bandit_service.core.reporting import build_report
from tests.service.reporting.factory import bernoulli_input

# Period 1 is a good period for everyone and the bandit favours B; in period 2 rates fall and
# the weights swing to A. A is better in both periods, yet B's naive pooled rate is twice A's.
RATES = np.array([[0.20, 0.15], [0.05, 0.04]])
WEIGHTS = np.array([[0.1, 0.9], [0.9, 0.1]])
TRAFFIC = np.array([20_000, 20_000])


def test_corrected_estimate_is_close_to_the_truth_and_the_naive_one_is_not(rng: np.random.Generator) -> None:
    assigned = np.stack([rng.multinomial(n, w) for n, w in zip(TRAFFIC, WEIGHTS, strict=True)])
    successes = rng.binomial(assigned, RATES)
    report = build_report(bernoulli_input(successes, assigned, WEIGHTS))
    truth = TRAFFIC @ RATES / TRAFFIC.sum()  # what each arm would earn over all of the traffic
    for arm, true_mean in zip(report.primary.arms, truth, strict=True):
        assert abs(arm.mean - true_mean) < 4 * arm.std_error  # the headline is drift-corrected
        assert abs(arm.pooled_mean - true_mean) > 10 * arm.pooled_std_error
    b = report.primary.comparisons[0]
    true_difference = truth[1] - truth[0]
    assert b.pooled_difference > 0 > true_difference  # naive: B wins by a mile
    assert b.difference_interval[0] < true_difference < b.difference_interval[1]
    assert b.difference_interval[1] < 0  # corrected: B is worse


def test_the_trap_does_not_ship_the_arm_that_only_looks_better(rng: np.random.Generator) -> None:
    assigned = np.stack([rng.multinomial(n, w) for n, w in zip(TRAFFIC, WEIGHTS, strict=True)])
    successes = rng.binomial(assigned, RATES)
    report = build_report(bernoulli_input(successes, assigned, WEIGHTS, min_sample_size=1_000))
    b = report.primary.comparisons[0]
    assert b.pooled_difference > 0 and b.pooled_p_value < 1e-10  # the naive test is fooled
    assert b.difference < 0 and b.always_valid_p_adjusted < 0.05  # the headline says B is worse
    assert not report.health.srm_flagged
    assert report.recommendation.action == "stop_no_winner"
    assert "confidence sequence rules out the required improvement" in report.recommendation.reason
