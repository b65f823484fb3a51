"""Frequentist comparisons against statsmodels and scipy on the same inputs."""

import msgspec
import numpy as np
import pytest
from scipy import stats as sps
from statsmodels.stats import proportion as smp
from statsmodels.stats._delta_method import NonlinearDeltaCov
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

from policies.frequentist import welch_test, welch_test_arrays, z_test, z_test_arrays
from policies.stats import StatsArray

COUNT_CASES = [
    pytest.param([120, 150, 90], [1000, 1010, 980], 0, 0.95, id="three-arms"),
    pytest.param([3, 9], [40, 37], 1, 0.90, id="small-control-last"),
    pytest.param([4_812, 5_004, 4_950, 4_700], [100_000, 100_400, 99_000, 101_000], 2, 0.99, id="large"),
]


@pytest.mark.parametrize(("successes", "trials", "control", "level"), COUNT_CASES)
def test_z_test_matches_statsmodels(successes, trials, control, level):
    stats = StatsArray.from_counts(successes, trials)
    pooled = {c.arm: c for c in z_test(stats, control, level)}
    unpooled = {c.arm: c for c in z_test(stats, control, level, pooled=False)}
    xc, nc = successes[control], trials[control]
    for i in pooled:
        x, n = successes[i], trials[i]
        z, p = smp.proportions_ztest([x, xc], [n, nc])
        assert pooled[i].statistic == pytest.approx(z, rel=1e-9, abs=1e-12)
        assert pooled[i].p_value == pytest.approx(p, rel=1e-9, abs=1e-12)
        wald = smp.test_proportions_2indep(x, n, xc, nc, method="wald", compare="diff", correction=False)
        assert unpooled[i].statistic == pytest.approx(wald.statistic, rel=1e-9, abs=1e-12)
        assert unpooled[i].p_value == pytest.approx(wald.pvalue, rel=1e-9, abs=1e-12)
        lo, hi = smp.confint_proportions_2indep(x, n, xc, nc, method="wald", compare="diff", alpha=1 - level)
        for c in (pooled[i], unpooled[i]):
            assert c.difference_interval == pytest.approx((lo, hi), rel=1e-9, abs=1e-12)
            assert c.df is None and c.level == level and c.control == control


@pytest.mark.parametrize(("successes", "trials", "control", "level"), COUNT_CASES)
def test_relative_interval_matches_statsmodels_delta_method(successes, trials, control, level):
    stats = StatsArray.from_counts(successes, trials)
    p = np.asarray(successes) / np.asarray(trials)
    for c in z_test(stats, control, level):
        i = c.arm
        cov = np.diag([p[i] * (1 - p[i]) / trials[i], p[control] * (1 - p[control]) / trials[control]])
        delta = NonlinearDeltaCov(lambda th: np.atleast_1d(th[0] / th[1] - 1.0), np.array([p[i], p[control]]), cov)
        lo, hi = delta.conf_int(alpha=1 - level)[0]
        assert c.relative == pytest.approx(p[i] / p[control] - 1, rel=1e-12)
        assert c.relative_interval == pytest.approx((lo, hi), rel=1e-6)  # statsmodels differentiates numerically


def test_welch_matches_scipy_and_statsmodels(rng):
    samples = [rng.normal(1.0, 1.0, 40), rng.normal(1.3, 2.5, 75), rng.exponential(1.2, 60)]
    stats = StatsArray.from_rewards(samples)
    level = 0.9
    for c in welch_test(stats, 0, level):
        x, y = samples[c.arm], samples[0]
        ref = sps.ttest_ind(x, y, equal_var=False)
        assert c.statistic == pytest.approx(ref.statistic, rel=1e-9)
        assert c.p_value == pytest.approx(ref.pvalue, rel=1e-9)
        assert c.df == pytest.approx(ref.df, rel=1e-9)
        assert c.difference_interval == pytest.approx(tuple(ref.confidence_interval(level)), rel=1e-9)
        cm = CompareMeans(DescrStatsW(x), DescrStatsW(y))
        t, p, df = cm.ttest_ind(usevar="unequal")
        assert (c.statistic, c.p_value, c.df) == pytest.approx((t, p, df), rel=1e-9)
        assert c.difference_interval == pytest.approx(cm.tconfint_diff(alpha=1 - level, usevar="unequal"), rel=1e-9)
        cov = np.diag([x.var(ddof=1) / x.size, y.var(ddof=1) / y.size])
        delta = NonlinearDeltaCov(lambda th: np.atleast_1d(th[0] / th[1] - 1.0), np.array([x.mean(), y.mean()]), cov)
        lo, hi = delta.conf_int(alpha=1 - level, use_t=True, df=c.df)[0]
        assert c.relative_interval == pytest.approx((lo, hi), rel=1e-6)


def test_batched_arrays_equal_row_by_row(rng):
    trials = rng.integers(200, 2_000, size=(5, 3))
    successes = rng.binomial(trials, 0.2)
    batched = z_test_arrays(StatsArray.from_counts(successes, trials), control=1)
    for b in range(5):
        rows = z_test(StatsArray.from_counts(successes[b], trials[b]), control=1)
        for c in rows:
            assert batched.p_value[b, c.arm] == pytest.approx(c.p_value, rel=1e-12)
            assert batched.relative_upper[b, c.arm] == pytest.approx(c.relative_interval[1], rel=1e-12)
        assert np.isnan(batched.p_value[b, 1])


def test_relative_interval_covers_the_true_lift(rng):
    """Delta-method interval of the lift 0.12 / 0.10 - 1 covers it ~95% of the time."""
    runs, n, level = 4_000, 5_000, 0.95
    x = rng.binomial(n, [0.10, 0.12], size=(runs, 2))
    a = z_test_arrays(StatsArray.from_counts(x, np.full((runs, 2), n)), 0, level)
    covered = (a.relative_lower[:, 1] <= 0.2) & (a.relative_upper[:, 1] >= 0.2)
    se = np.sqrt(level * (1 - level) / runs)
    assert abs(covered.mean() - level) < 4 * se


def test_welch_type_one_error_is_alpha(rng):
    runs = 4_000
    y = rng.normal(0.0, [1.0, 3.0], size=(runs, 30, 2))
    stats = StatsArray(np.full((runs, 2), 30.0), y.sum(axis=1), (y**2).sum(axis=1))
    rate = (welch_test_arrays(stats, 0).p_value[:, 1] < 0.05).mean()
    assert abs(rate - 0.05) < 4 * np.sqrt(0.05 * 0.95 / runs)


def test_undefined_comparisons_are_nan_and_encode_as_null():
    stats = StatsArray.from_counts([0, 5, 0], [0, 10, 10])
    rows = z_test(stats, 0)
    assert all(np.isnan(c.p_value) for c in rows)
    assert b'"p_value":null' in msgspec.json.encode(rows)
    rows = welch_test(StatsArray.from_rewards([[1.0], [2.0, 3.0]]), 0)
    assert np.isnan(rows[0].p_value)


def test_identical_arms_give_p_value_one():
    (c,) = z_test(StatsArray.from_counts([30, 30], [100, 100]), 0)
    assert c.statistic == 0.0 and c.p_value == 1.0 and c.difference == 0.0


BAD = [
    pytest.param(lambda s: z_test(s, 3), "control", id="control-too-large"),
    pytest.param(lambda s: z_test(s, -1), "control", id="control-negative"),
    pytest.param(lambda s: z_test(s, 1.0), "control", id="control-float"),
    pytest.param(lambda s: z_test(s, True), "control", id="control-bool"),
    pytest.param(lambda s: z_test(s, 0, level=1.0), "level", id="level-one"),
    pytest.param(lambda s: z_test(s, 0, level=0.0), "level", id="level-zero"),
    pytest.param(lambda s: welch_test(s, 0, level=float("nan")), "level", id="level-nan"),
    pytest.param(lambda s: z_test(StatsArray([10.0, 10.0], [5.0, 2.5], [7.0, 2.5]), 0), "0/1", id="not-binary"),
    pytest.param(lambda s: z_test(StatsArray.from_counts([[1, 2]], [[5, 5]]), 0), "stats", id="batched-rows"),
    pytest.param(lambda s: StatsArray.from_counts([-1, 2], [5, 5]), "successes", id="negative-count"),
    pytest.param(lambda s: StatsArray.from_counts([1, 2, 3], [5, 5]), "mismatched", id="mismatched-lengths"),
    pytest.param(lambda s: StatsArray([1.0, float("nan")], [1.0, 1.0], [1.0, 1.0]), "n", id="nan"),
]


@pytest.mark.parametrize(("call", "message"), BAD)
def test_bad_input_is_refused(call, message):
    with pytest.raises(ValueError, match=message):
        call(StatsArray.from_counts([10, 12, 9], [100, 100, 100]))
