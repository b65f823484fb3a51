"""Sample size and power against statsmodels' closed forms and against simulated experiments."""

import math

import numpy as np
import pytest
from statsmodels.stats import proportion as smp
from statsmodels.stats.power import NormalIndPower

from policies.frequentist import welch_test_arrays, z_test_arrays
from policies.power import duration_days, power_means, power_proportions, sample_size_means, sample_size_proportions
from policies.stats import StatsArray

PROPORTION_CASES = [
    pytest.param(0.10, 0.02, 1.0, 0.05, 0.8, id="ten-percent"),
    pytest.param(0.03, -0.005, 1.0, 0.05, 0.9, id="negative-effect"),
    pytest.param(0.50, 0.05, 2.0, 0.01, 0.8, id="unbalanced"),
    pytest.param(0.20, 0.03, 0.5, 0.10, 0.95, id="small-treatment"),
]


@pytest.mark.parametrize(("baseline", "mde", "ratio", "alpha", "power"), PROPORTION_CASES)
def test_proportion_sample_size_matches_statsmodels(baseline, mde, ratio, alpha, power):
    size = sample_size_proportions(baseline, mde, alpha=alpha, power=power, ratio=ratio)
    # statsmodels' sample 1 is the treatment (p1 = p2 + diff) and nobs2 = ratio_sm * nobs1.
    n_treatment = smp.samplesize_proportions_2indep_onetail(mde, baseline, power, ratio=1 / ratio, alpha=alpha)
    assert size.control == math.ceil(n_treatment / ratio - 1e-9)
    assert size.treatment == math.ceil(n_treatment - 1e-9)
    assert size.total == size.control + size.treatment
    assert size.achieved_power >= power
    assert power_proportions(baseline, mde, size.control - 1, alpha=alpha, ratio=ratio) < power


@pytest.mark.parametrize(("baseline", "mde", "ratio", "alpha", "power"), PROPORTION_CASES)
def test_proportion_power_matches_statsmodels(baseline, mde, ratio, alpha, power):
    for n_control in (100, 1_234, 50_000):
        ours = power_proportions(baseline, mde, n_control, alpha=alpha, ratio=ratio)
        ref = smp.power_proportions_2indep(mde, baseline, ratio * n_control, ratio=1 / ratio, alpha=alpha).power
        assert ours == pytest.approx(ref, rel=1e-12)


@pytest.mark.parametrize(
    ("std", "mde", "ratio", "alpha", "power"), [(3.0, 0.5, 1.0, 0.05, 0.8), (1.0, -0.1, 3.0, 0.01, 0.9)]
)
def test_mean_sample_size_and_power_match_normal_ind_power(std, mde, ratio, alpha, power):
    size = sample_size_means(10.0, std, mde, alpha=alpha, power=power, ratio=ratio)
    effect = abs(mde) / std
    n_control = NormalIndPower().solve_power(effect, alpha=alpha, power=power, ratio=ratio)
    # statsmodels solves with both tails, the closed form uses one; they differ by < 1e-6 relative.
    assert size.control == math.ceil(n_control * (1 - 1e-6))
    assert size.achieved_power >= power
    for n in (10, 500, 20_000):
        ours = power_means(10.0, std, mde, n, alpha=alpha, ratio=ratio)
        assert ours == pytest.approx(NormalIndPower().power(effect, n, alpha, ratio=ratio), rel=1e-12)


def test_relative_mde_arms_and_duration():
    absolute = sample_size_proportions(0.10, 0.02)
    relative = sample_size_proportions(0.10, 0.2, relative=True, daily_traffic=1_000)
    assert relative.control == absolute.control and relative.difference == pytest.approx(0.02)
    assert relative.days == math.ceil(relative.total / 1_000)
    three = sample_size_proportions(0.10, 0.02, arms=3, daily_traffic=500)
    assert three.alpha == pytest.approx(0.025)
    assert three.control == sample_size_proportions(0.10, 0.02, alpha=0.025).control
    assert three.total == three.control + 2 * three.treatment
    assert three.days == math.ceil(three.total / 500)
    means = sample_size_means(200.0, 50.0, 0.05, relative=True)
    assert means.difference == pytest.approx(10.0)
    assert duration_days(0, 10) == 0 and duration_days(101, 10.0) == 11


def test_correction_none_keeps_alpha_per_comparison():
    for arms in (2, 4):
        none = sample_size_proportions(0.10, 0.02, arms=arms, correction="none")
        two = sample_size_proportions(0.10, 0.02)
        assert (none.control, none.treatment, none.alpha) == (two.control, two.treatment, 0.05)
        assert none.total == none.control + (arms - 1) * none.treatment and none.correction == "none"
        means = sample_size_means(10.0, 3.0, 0.5, arms=arms, correction="none")
        n_control = NormalIndPower().solve_power(0.5 / 3.0, alpha=0.05, power=0.8, ratio=1.0)
        assert means.control == math.ceil(n_control * (1 - 1e-6)) and means.alpha == 0.05


def test_holm_and_bonferroni_both_plan_at_the_bonferroni_level():
    holm = sample_size_means(10.0, 3.0, 0.5, arms=3, correction="holm")
    bonferroni = sample_size_means(10.0, 3.0, 0.5, arms=3)
    assert holm.alpha == bonferroni.alpha == pytest.approx(0.025)
    assert holm.control == bonferroni.control
    n_control = NormalIndPower().solve_power(0.5 / 3.0, alpha=0.025, power=0.8, ratio=1.0)
    assert holm.control == math.ceil(n_control * (1 - 1e-6))
    assert holm.correction == "bonferroni over 2 comparisons (conservative for holm)"
    assert bonferroni.correction == "bonferroni over 2 comparisons"
    assert sample_size_proportions(0.1, 0.02).correction == "bonferroni over 1 comparison"


def test_simulated_proportion_power_is_achieved(rng):
    size = sample_size_proportions(0.10, 0.02)
    runs = 4_000
    n = np.array([size.control, size.treatment])
    x = rng.binomial(n, [0.10, 0.12], size=(runs, 2))
    rejected = z_test_arrays(StatsArray.from_counts(x, np.broadcast_to(n, (runs, 2))), 0).p_value[:, 1] < 0.05
    se = np.sqrt(size.achieved_power * (1 - size.achieved_power) / runs)
    assert abs(rejected.mean() - size.achieved_power) < 4 * se


def test_simulated_mean_power_is_achieved(rng):
    size = sample_size_means(5.0, 2.0, 0.3)
    runs, n = 4_000, size.control
    # Exact sufficient statistics of n normal draws: sum ~ N(n mu, n s^2), SS ~ s^2 chi2(n - 1).
    mu, sd = np.array([5.0, 5.3]), 2.0
    total = rng.normal(n * mu, sd * np.sqrt(n), size=(runs, 2))
    total_sq = sd**2 * rng.chisquare(n - 1, size=(runs, 2)) + total**2 / n
    stats = StatsArray(np.full((runs, 2), float(n)), total, total_sq)
    rejected = welch_test_arrays(stats, 0).p_value[:, 1] < 0.05
    se = np.sqrt(size.achieved_power * (1 - size.achieved_power) / runs)
    assert abs(rejected.mean() - size.achieved_power) < 4 * se  # Welch t vs the normal: negligible here


BAD = [
    pytest.param(lambda: sample_size_proportions(0.0, 0.01), "baseline", id="baseline-zero"),
    pytest.param(lambda: sample_size_proportions(float("nan"), 0.01), "baseline", id="baseline-nan"),
    pytest.param(lambda: sample_size_proportions(0.95, 0.1), "mde", id="rate-above-one"),
    pytest.param(lambda: sample_size_proportions(0.1, 0.0), "mde", id="mde-zero"),
    pytest.param(lambda: sample_size_proportions(0.1, 0.01, alpha=1.5), "alpha", id="alpha"),
    pytest.param(lambda: sample_size_proportions(0.1, 0.01, power=1.0), "power", id="power"),
    pytest.param(lambda: sample_size_proportions(0.1, 0.01, ratio=-1.0), "ratio", id="ratio"),
    pytest.param(lambda: sample_size_proportions(0.1, 0.01, arms=1), "arms", id="arms"),
    pytest.param(lambda: sample_size_proportions(0.1, 0.01, daily_traffic=0), "daily_traffic", id="traffic"),
    pytest.param(lambda: sample_size_means(0.0, -1.0, 0.1), "std", id="std"),
    pytest.param(lambda: sample_size_means(0.0, 1.0, 0.1, treatment_std=0.0), "treatment_std", id="t-std"),
    pytest.param(lambda: power_means(0.0, 1.0, 0.1, 0), "n_control", id="n-zero"),
    pytest.param(lambda: power_proportions(0.1, 0.01, float("inf")), "n_control", id="n-inf"),
    pytest.param(lambda: duration_days(-1, 10), "total", id="total"),
    pytest.param(lambda: sample_size_proportions(0.1, 0.01, correction="sidak"), "correction", id="correction"),
    pytest.param(lambda: sample_size_means(0.0, 1.0, 0.1, correction="fdr"), "correction", id="correction-means"),
]


@pytest.mark.parametrize(("call", "message"), BAD)
def test_bad_input_is_refused(call, message):
    with pytest.raises(ValueError, match=message):
        call()
