"""Sample-ratio mismatch in the report: flagged for a real mismatch, quiet (at its alpha) for a clean run."""

from __future__ import annotations

import math

import numpy as np
from scipy import stats as sps

from bandit_service.core.reporting import build_report
from policies.srm import srm_check
from tests.service.reporting.factory import bernoulli_input

# Weights of a bandit that moved traffic towards B over three periods.
WEIGHTS = np.array([[0.5, 0.5], [0.35, 0.65], [0.2, 0.8]])
TRAFFIC = np.array([4_000, 4_000, 4_000])


def _run(rng: np.random.Generator, true_weights: np.ndarray, threshold: float = 0.001) -> bool:
    assigned = np.stack([rng.multinomial(n, w) for n, w in zip(TRAFFIC, true_weights, strict=True)])
    inp = bernoulli_input(assigned // 10, assigned, WEIGHTS, srm_threshold=threshold, draws=1)
    return build_report(inp).health.srm.flagged


def test_a_mismatch_is_flagged_and_blocks_shipping(rng: np.random.Generator) -> None:
    # B loses 10% of its units (say, a client that crashes before logging).
    assigned = np.stack([rng.multinomial(n, w) for n, w in zip(3 * TRAFFIC, WEIGHTS, strict=True)])
    assigned[:, 1] = np.round(assigned[:, 1] * 0.9)
    success = np.stack([assigned[:, 0] // 10, assigned[:, 1] // 5])  # B far better: 20% against 10%
    report = build_report(bernoulli_input(success.T, assigned, WEIGHTS))
    assert report.health.srm.flagged
    assert report.health.srm.p_value < 1e-6
    assert report.primary.comparisons[0].p_value_adjusted < 1e-10
    assert report.recommendation.action == "keep_running"
    assert "sample ratio mismatch" in report.recommendation.reason


def test_a_clean_adaptive_run_is_not_flagged_though_the_current_weights_would_be(rng: np.random.Generator) -> None:
    assigned = np.stack([rng.multinomial(n, w) for n, w in zip(TRAFFIC, WEIGHTS, strict=True)])
    report = build_report(bernoulli_input(assigned // 10, assigned, WEIGHTS))
    assert not report.health.srm.flagged
    # The naive check against today's weights would call this healthy run broken.
    assert srm_check(assigned.sum(axis=0), WEIGHTS[-1]).flagged


def test_false_alarm_rate_over_many_seeds_is_near_alpha() -> None:
    """Over 1,000 clean runs the flag rate matches its theoretical value, itself at most alpha.

    With weights that change, the counts are a sum of multinomials whose variance is below the
    pooled multinomial's, so X^2 ~ c chi2(1) with c = sum_p n_p w_p (1 - w_p) / (N wbar (1 - wbar))
    (k = 2) and the test is slightly conservative: P(flag) = P(chi2(1) > q / c).
    """
    alpha, seeds = 0.05, 1_000
    wa = WEIGHTS[:, 0]
    wbar = TRAFFIC @ wa / TRAFFIC.sum()
    c = float(np.sum(TRAFFIC * wa * (1 - wa)) / (TRAFFIC.sum() * wbar * (1 - wbar)))
    expected_rate = float(sps.chi2.sf(sps.chi2.isf(alpha, 1) / c, 1))
    assert 0.03 < expected_rate <= alpha
    flags = [_run(np.random.default_rng(seed), WEIGHTS, alpha) for seed in range(seeds)]
    rate = float(np.mean(flags))
    se = math.sqrt(expected_rate * (1 - expected_rate) / seeds)
    assert abs(rate - expected_rate) < 4 * se
    assert rate < alpha + 4 * math.sqrt(alpha * (1 - alpha) / seeds)


def test_false_alarm_rate_with_fixed_weights_is_alpha() -> None:
    alpha, seeds = 0.05, 600
    fixed = np.tile([0.3, 0.7], (3, 1))

    def run(seed: int) -> bool:
        rng = np.random.default_rng(seed)
        assigned = np.stack([rng.multinomial(n, w) for n, w in zip(TRAFFIC, fixed, strict=True)])
        inp = bernoulli_input(assigned // 10, assigned, fixed, srm_threshold=alpha, draws=1)
        return build_report(inp).health.srm.flagged

    rate = float(np.mean([run(seed) for seed in range(10_000, 10_000 + seeds)]))
    assert abs(rate - alpha) < 4 * math.sqrt(alpha * (1 - alpha) / seeds)


def test_a_mismatch_in_one_period_that_cancels_in_the_pool_is_flagged_per_period() -> None:
    # 50/50 weights in both periods, but A got 600 of 1,000 in the first and B 600 of 1,000 in the second:
    # the pooled counts are a perfect 1,000 / 1,000, the periods are far off.
    assigned = np.array([[600, 400], [400, 600]])
    successes = np.array([[60, 80], [40, 120]])  # B far better
    report = build_report(bernoulli_input(successes, assigned, [[0.5, 0.5], [0.5, 0.5]]))
    assert not report.health.srm.flagged and report.health.srm.p_value == 1.0
    periods = report.health.srm_periods
    assert [p.flagged for p in periods] == [True, True] and report.health.srm_flagged
    for period, row in zip(periods, assigned, strict=True):
        oracle = sps.chisquare(row, [500, 500])
        assert math.isclose(period.statistic, oracle.statistic) and math.isclose(period.p_value, oracle.pvalue)
    assert report.recommendation.action == "keep_running"
    assert "sample ratio mismatch" in report.recommendation.reason


def test_the_per_period_check_splits_its_threshold_over_the_periods() -> None:
    # chi-square p = 5.7e-4 in one period: flagged alone (threshold 0.001), not among three periods (0.001 / 3).
    assigned = np.array([[500, 500], [1_000, 1_000], [2_000 + 109, 2_000 - 109]])
    p = sps.chisquare(assigned[-1]).pvalue
    assert 0.001 / 3 < p < 0.001
    report = build_report(bernoulli_input(assigned // 10, assigned, [[0.5, 0.5]] * 3))
    assert [x.flagged for x in report.health.srm_periods] == [False, False, False]
    alone = build_report(bernoulli_input(assigned[-1:] // 10, assigned[-1:], [[0.5, 0.5]]))
    assert alone.health.srm.flagged
