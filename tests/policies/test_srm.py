"""Sample-ratio mismatch: scipy's chi-square on the same counts, false alarms and real mismatches."""

import math

import msgspec
import numpy as np
import pytest
from scipy import stats as sps

from policies.srm import expected_counts, srm_by_period, srm_check

# Three weights periods of a bandit moving traffic from arm 0 to arm 2.
WEIGHTS = np.array([[1 / 3, 1 / 3, 1 / 3], [0.2, 0.3, 0.5], [0.05, 0.15, 0.8]])
TRAFFIC = np.array([3_000, 5_000, 12_000])


def test_matches_scipy_chisquare():
    observed = np.array([1_020, 980, 1_100])
    expected = np.array([0.3, 0.3, 0.4])
    result = srm_check(observed, expected)
    scaled = expected * observed.sum()
    ref = sps.chisquare(observed, scaled)
    assert result.statistic == pytest.approx(ref.statistic, rel=1e-12)
    assert result.p_value == pytest.approx(ref.pvalue, rel=1e-12)
    assert result.df == 2 and result.expected == pytest.approx(tuple(scaled))
    assert result.threshold == 0.001 and result.flagged == (ref.pvalue < 0.001)
    msgspec.json.encode(result)  # plain values only


def test_expected_counts_sum_periods_and_propensities(rng):
    assert expected_counts(WEIGHTS, TRAFFIC) == pytest.approx(TRAFFIC @ WEIGHTS)
    per_decision = np.repeat(WEIGHTS, [3, 5, 12], axis=0)  # one propensity vector per decision
    assert expected_counts(per_decision) == pytest.approx([3, 5, 12] @ WEIGHTS)


def _simulate(rng, runs, weights, traffic):
    """Arm counts summed over periods, each period a multinomial draw under its weights."""
    return sum(rng.multinomial(t, w, size=runs) for w, t in zip(weights, traffic, strict=True))


@pytest.mark.parametrize(
    ("weights", "traffic", "exact"),
    [
        pytest.param(np.array([[0.5, 0.5]]), np.array([2_000]), True, id="fixed-split"),
        pytest.param(WEIGHTS, TRAFFIC, False, id="changing-weights"),
    ],
)
def test_false_alarm_rate_is_at_most_alpha(rng, weights, traffic, exact):
    runs, alpha = 3_000, 0.05
    expected = expected_counts(weights, traffic)
    counts = _simulate(rng, runs, weights, traffic)
    rate = np.mean([srm_check(o, expected, threshold=alpha).flagged for o in counts])
    se = math.sqrt(alpha * (1 - alpha) / runs)
    assert rate < alpha + 4 * se
    if exact:  # a single multinomial: the test is calibrated, not only conservative
        assert rate > alpha - 4 * se
    strict = np.mean([srm_check(o, expected).flagged for o in counts])  # default threshold 0.001
    assert strict < 0.001 + 4 * math.sqrt(0.001 / runs)


def test_real_mismatch_is_flagged(rng):
    # A slow redirect loses 10% of arm 0's units: the counts no longer fit the allocation used.
    # (About 9 standard deviations at this traffic, so essentially every run is flagged.)
    expected = expected_counts(WEIGHTS, 4 * TRAFFIC)
    counts = _simulate(rng, 200, WEIGHTS, 4 * TRAFFIC).astype(float)
    counts[:, 0] = np.round(counts[:, 0] * 0.9)
    flagged = [srm_check(o, expected).flagged for o in counts]
    assert np.mean(flagged) > 0.97


def test_mismatch_hidden_by_pooling_periods_is_caught(rng):
    # Judged against a constant split equal to the first period's weights, a clean adaptive run
    # looks broken: the expected counts must follow the weights actually used.
    counts = _simulate(rng, 1, WEIGHTS, TRAFFIC)[0]
    assert not srm_check(counts, expected_counts(WEIGHTS, TRAFFIC)).flagged
    assert srm_check(counts, WEIGHTS[0]).flagged


def test_zero_expected_share():
    held = srm_check([500, 0, 510], [0.5, 0.0, 0.5])
    assert held.df == 1 and not held.flagged
    leaked = srm_check([500, 3, 510], [0.5, 0.0, 0.5])
    assert leaked.flagged and leaked.p_value == 0.0 and math.isinf(leaked.statistic)
    assert srm_check([0, 0], [0.5, 0.5]).p_value == 1.0


def test_by_period_matches_scipy_per_row_with_bonferroni():
    assigned = np.array([[1_020, 980, 1_000], [0, 0, 0], [1_400, 1_500, 2_100], [50, 150, 800]])
    weights = np.vstack([WEIGHTS[0], WEIGHTS[1], WEIGHTS[1], WEIGHTS[2]])
    results = srm_by_period(assigned, weights, threshold=0.01)
    assert len(results) == 4
    for row, share, result in zip(assigned, weights, results, strict=True):
        if row.sum() == 0:
            assert (result.statistic, result.p_value, result.flagged) == (0.0, 1.0, False)
            continue
        ref = sps.chisquare(row, share * row.sum())
        assert result.statistic == pytest.approx(ref.statistic, rel=1e-12)
        assert result.p_value == pytest.approx(ref.pvalue, rel=1e-12)
        assert result.threshold == pytest.approx(0.01 / 3)  # three periods had traffic
        assert result.flagged == (ref.pvalue < 0.01 / 3)
    # The last row is exactly its expected split; the third gives arm 0 1,400 units where 1,000 were due.
    assert [r.flagged for r in results] == [False, False, True, False]


def test_a_mismatch_in_one_period_that_pooling_hides(rng):
    # Arm 0 loses units in period 1 and arm 1 loses them in period 2: the pooled counts fit.
    weights = np.array([[0.5, 0.5], [0.5, 0.5]])
    assigned = np.array([[4_600, 5_400], [5_400, 4_600]])
    assert not srm_check(assigned.sum(axis=0), [0.5, 0.5]).flagged
    assert all(result.flagged for result in srm_by_period(assigned, weights))


def test_by_period_family_wise_false_alarms_stay_below_the_threshold(rng):
    runs, alpha = 1_000, 0.05
    counts = np.stack([rng.multinomial(t, w, size=runs) for w, t in zip(WEIGHTS, TRAFFIC, strict=True)], axis=1)
    any_flag = np.mean([any(r.flagged for r in srm_by_period(c, WEIGHTS, alpha)) for c in counts])
    assert any_flag < alpha + 4 * math.sqrt(alpha * (1 - alpha) / runs)


def test_short_periods_with_tiny_weights_do_not_false_alarm(rng):
    # 100 periods of 50 units at 0.998/0.002 (a bandit's loser): 0.1 units expected on the small arm.
    # The chi-square called one unit there p = 0.003 and flagged 37% of clean runs at a 0.1% threshold.
    runs, threshold = 100, 0.001
    weights = np.tile([0.998, 0.002], (100, 1))
    alarms = 0
    for _ in range(runs):
        small = rng.binomial(50, 0.002, size=100)
        alarms += any(r.flagged for r in srm_by_period(np.stack([50 - small, small], axis=1), weights, threshold))
    assert alarms <= 1  # expected at most 0.1 (threshold x runs)


def _doubled_tail(x: int, n: int, q: float) -> float:
    return min(1.0, 2 * min(sps.binom.cdf(x, n, q), sps.binom.sf(x - 1, n, q)))


def test_a_short_period_gets_an_exact_binomial_p_value():
    # 1 unit where 0.1 were due: the exact binomial test, not the chi-square's 0.003.
    [result] = srm_by_period([[49, 1]], [[0.998, 0.002]])
    assert result.p_value == pytest.approx(_doubled_tail(1, 50, 0.002), rel=1e-12)
    assert result.p_value >= sps.binomtest(1, 50, 0.002).pvalue  # never below scipy's exact test
    assert result.statistic == pytest.approx(sps.chisquare([49, 1], [49.9, 0.1]).statistic)
    # Three arms: Bonferroni over the arms' binomial tests.
    [three] = srm_by_period([[40, 8, 2]], [[0.9, 0.08, 0.02]])
    p = min(_doubled_tail(x, 50, q) for x, q in ((40, 0.9), (8, 0.08), (2, 0.02)))
    assert three.p_value == pytest.approx(min(1.0, 3 * p), rel=1e-12)


def test_a_real_mismatch_in_a_short_period_is_still_flagged():
    # 20 units at 0.9/0.1 (2 expected on the small arm), 12 of them on it: exact p about 1e-7.
    [result] = srm_by_period([[8, 12]], [[0.9, 0.1]])
    assert result.flagged and result.p_value == pytest.approx(_doubled_tail(12, 20, 0.1), rel=1e-12)
    assert result.p_value < 1e-6


BAD = [
    pytest.param(lambda: srm_check([10, -1], [0.5, 0.5]), "observed", id="negative-count"),
    pytest.param(lambda: srm_check([10, float("nan")], [0.5, 0.5]), "observed", id="nan-count"),
    pytest.param(lambda: srm_check([10, 10, 10], [0.5, 0.5]), "mismatched", id="lengths"),
    pytest.param(lambda: srm_check([10], [1.0]), "two arms", id="one-arm"),
    pytest.param(lambda: srm_check([10, 10], [0.0, 0.0]), "expected", id="no-expected"),
    pytest.param(lambda: srm_check([10, 10], [0.5, 0.5], threshold=0.0), "threshold", id="threshold"),
    pytest.param(lambda: expected_counts([[0.5, 0.6]]), "weights", id="weights-sum"),
    pytest.param(lambda: expected_counts([[0.5, 0.5]], [1, 2]), "traffic", id="traffic-length"),
    pytest.param(lambda: expected_counts([[0.5, 0.5]], [-1]), "traffic", id="traffic-negative"),
    pytest.param(lambda: expected_counts([0.5, 0.5]), "weights", id="weights-1d"),
    pytest.param(lambda: srm_by_period([[10, 10]], [[0.5, 0.5], [0.5, 0.5]]), "mismatched", id="period-shapes"),
    pytest.param(lambda: srm_by_period([[10, 10]], [[0.5, 0.6]]), "weights", id="period-weights"),
    pytest.param(lambda: srm_by_period([[10], [3]], [[1.0], [1.0]]), "two arms", id="period-one-arm"),
    pytest.param(lambda: srm_by_period([10, 10], [0.5, 0.5]), "assigned", id="period-1d"),
    pytest.param(lambda: srm_by_period([[10, 10]], [[0.5, 0.5]], threshold=1.0), "threshold", id="period-threshold"),
]


@pytest.mark.parametrize(("call", "message"), BAD)
def test_bad_input_is_refused(call, message):
    with pytest.raises(ValueError, match=message):
        call()
