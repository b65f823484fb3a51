"""Bayesian comparisons against closed forms and numerical integration (scipy.integrate)."""

import math

import msgspec
import numpy as np
import pytest
from scipy import integrate, special
from scipy import stats as sps

from policies.bayesian import bayesian_comparison, expected_loss
from policies.posterior import (
    EXACT_MAX_ARMS,
    beta_posterior,
    normal_posterior,
    posterior,
    prob_best_beta_exact,
    stratified_posterior,
)
from policies.stats import StatsArray

DRAWS = 200_000
BETA_STATS = StatsArray.from_counts([100, 120, 90], [1_000, 1_000, 1_000])


def prob_b_beats_a(a_a, b_a, a_b, b_b):
    """Closed form for integer a_b (Miller, 2015, "Formulas for Bayesian A/B testing")."""
    i = np.arange(int(a_b))
    log_terms = (
        special.betaln(a_a + i, b_a + b_b) - np.log(b_b + i) - special.betaln(1 + i, b_b) - special.betaln(a_a, b_a)
    )
    return float(np.exp(log_terms).sum())


def test_beta_prob_beats_control_matches_closed_form(rng):
    result = bayesian_comparison(BETA_STATS, 0, "bernoulli", rng, draws=1_000)
    post = beta_posterior(BETA_STATS)
    for arm in result.arms[1:]:
        i = arm.arm
        expected = prob_b_beats_a(post.alpha[0], post.beta[0], post.alpha[i], post.beta[i])
        assert arm.prob_beats_control == pytest.approx(expected, abs=1e-9)
    assert result.arms[0].prob_beats_control is None and result.arms[0].lift_interval is None


def test_beta_expected_loss_and_prob_best_match_quadrature(rng):
    result = bayesian_comparison(BETA_STATS, 0, "bernoulli", rng, draws=DRAWS)
    post = beta_posterior(BETA_STATS)
    a, b = post.alpha, post.beta

    def one_minus_cdf_of_max(x):
        return 1.0 - np.prod(sps.beta.cdf(x, a, b))

    e_max, _ = integrate.quad(one_minus_cdf_of_max, 0.0, 1.0, points=list(post.mean), limit=200, epsabs=1e-12)
    samples = post.sample(np.random.default_rng(1), DRAWS)
    gap_sd = (samples.max(axis=1, keepdims=True) - samples).std(axis=0)
    for arm in result.arms:
        i = arm.arm
        assert arm.expected_loss == pytest.approx(e_max - post.mean[i], abs=4 * gap_sd[i] / math.sqrt(DRAWS))

        def density_times_others(x, i=i):
            others = [sps.beta.cdf(x, a[j], b[j]) for j in range(3) if j != i]
            return sps.beta.pdf(x, a[i], b[i]) * np.prod(others)

        p_best, _ = integrate.quad(density_times_others, 0.0, 1.0, points=list(post.mean), limit=200)
        assert arm.prob_best == pytest.approx(p_best, abs=1e-6)
    assert sum(arm.prob_best for arm in result.arms) == pytest.approx(1.0, abs=1e-9)


def test_lift_interval_tails_match_integrated_ratio_cdf(rng):
    level = 0.9
    result = bayesian_comparison(BETA_STATS, 0, "bernoulli", rng, level=level, draws=DRAWS)
    post = beta_posterior(BETA_STATS)
    a, b = post.alpha, post.beta
    tail = (1 - level) / 2
    tol = 4 * math.sqrt(tail * (1 - tail) / DRAWS)
    for arm in result.arms[1:]:
        i = arm.arm
        for bound, target in zip(arm.lift_interval, (tail, 1 - tail), strict=True):
            # P(theta_i / theta_0 - 1 <= L) = integral f_0(x) F_i((1 + L) x) dx
            def integrand(x, i=i, bound=bound):
                return sps.beta.pdf(x, a[0], b[0]) * sps.beta.cdf((1 + bound) * x, a[i], b[i])

            cdf, _ = integrate.quad(integrand, 0.0, 1.0, points=[post.mean[0]], limit=200)
            assert cdf == pytest.approx(target, abs=tol)
        lo, hi = post.interval(level)
        assert arm.interval == pytest.approx((lo[i], hi[i]), rel=1e-12)
        assert arm.mean == pytest.approx(post.mean[i], rel=1e-12)


def test_student_t_figures_match_quadrature(rng):
    data = [rng.normal(10.0, 3.0, 200), rng.normal(10.6, 3.0, 180), rng.normal(9.5, 4.0, 220)]
    stats = StatsArray.from_rewards(data)
    result = bayesian_comparison(stats, 1, "continuous", rng, draws=DRAWS)
    post = normal_posterior(stats)
    t = sps.t(post.df, post.loc, post.scale)
    se_p = 4 * math.sqrt(0.25 / DRAWS)
    lo, hi = float((post.loc - 40 * post.scale).min()), float((post.loc + 40 * post.scale).max())
    for arm in result.arms:
        i = arm.arm
        if i != 1:
            beats, _ = integrate.quad(lambda x, i=i: t.pdf(x)[1] * t.sf(x)[i], lo, hi, limit=200)
            assert arm.prob_beats_control == pytest.approx(beats, abs=se_p)
        best, _ = integrate.quad(lambda x, i=i: t.pdf(x)[i] * np.prod(np.delete(t.cdf(x), i)), lo, hi, limit=200)
        assert arm.prob_best == pytest.approx(best, abs=se_p)
    e_max = lo + integrate.quad(lambda x: 1.0 - np.prod(t.cdf(x)), lo, hi, limit=200)[0]
    samples = post.sample(np.random.default_rng(1), DRAWS)
    gap_sd = (samples.max(axis=1, keepdims=True) - samples).std(axis=0)
    for arm in result.arms:
        i = arm.arm
        assert arm.expected_loss == pytest.approx(e_max - post.loc[i], abs=4 * gap_sd[i] / math.sqrt(DRAWS))


def test_expected_loss_by_hand():
    samples = np.array([[0.1, 0.3], [0.4, 0.2]])
    np.testing.assert_allclose(expected_loss(samples), [0.1, 0.1])


def test_same_seed_same_result_and_json():
    first = bayesian_comparison(BETA_STATS, 2, "bernoulli", np.random.default_rng(7), draws=5_000)
    second = bayesian_comparison(BETA_STATS, 2, "bernoulli", np.random.default_rng(7), draws=5_000)
    assert first == second
    decoded = msgspec.json.decode(msgspec.json.encode(first))
    assert decoded["arms"][2]["prob_beats_control"] is None and decoded["control"] == 2


@pytest.mark.parametrize("reward", ["bernoulli", "continuous"])
def test_a_given_posterior_replaces_the_conjugate_one(reward):
    stats = BETA_STATS
    given = bayesian_comparison(stats, 1, reward, np.random.default_rng(5), draws=5_000, post=posterior(stats, reward))
    assert given == bayesian_comparison(stats, 1, reward, np.random.default_rng(5), draws=5_000)


def test_a_stratified_posterior_moves_the_comparison(rng):
    # Simpson's trap: arm 1 is worse in both periods but got most of its traffic in the good one.
    periods = StatsArray.from_counts([[90, 8], [30, 252]], [[900, 100], [100, 900]])
    pooled = StatsArray(periods.n.sum(axis=0), periods.total.sum(axis=0), periods.total_sq.sum(axis=0))
    post = stratified_posterior(periods, [1_000.0, 1_000.0], "bernoulli")
    result = bayesian_comparison(pooled, 0, "bernoulli", rng, draws=2_000, post=post)
    assert [arm.mean for arm in result.arms] == pytest.approx(list(post.mean), rel=1e-12)
    naive = bayesian_comparison(pooled, 0, "bernoulli", rng, draws=2_000)
    assert result.arms[1].prob_beats_control < 0.5 < 0.999 < naive.arms[1].prob_beats_control


BAD = [
    pytest.param({"control": 3}, "control", id="control"),
    pytest.param({"level": 1.0}, "level", id="level"),
    pytest.param({"draws": 0}, "draws", id="draws"),
    pytest.param({"reward": "poisson"}, "reward", id="reward"),
    pytest.param({"prior_alpha": -1.0}, "prior_alpha", id="prior"),
    pytest.param({"stats": StatsArray([10.0, 10.0], [5.0, 2.5], [7.0, 2.5])}, "0/1", id="not-binary"),
    pytest.param({"stats": StatsArray.from_counts([[1, 2]], [[5, 5]])}, "stats", id="batched"),
    pytest.param({"post": normal_posterior(BETA_STATS)}, "BetaPosterior", id="post-family"),
    pytest.param({"post": beta_posterior(BETA_STATS.take([0, 1]))}, "one value per arm", id="post-arms"),
    pytest.param({"post": beta_posterior(BETA_STATS), "prior_alpha": 2.0}, "not both", id="post-and-prior"),
]


@pytest.mark.parametrize(("override", "message"), BAD)
def test_bad_input_is_refused(rng, override, message):
    kwargs = {"stats": BETA_STATS, "control": 0, "reward": "bernoulli", "rng": rng, "draws": 100} | override
    with pytest.raises(ValueError, match=message):
        bayesian_comparison(**kwargs)


def test_prob_best_of_many_arms_comes_from_the_draws_within_their_standard_error(rng):
    # Exact quadrature costs arms^3 (seconds at 50 arms): past EXACT_MAX_ARMS, P(best) is the share of draws won.
    k, draws = EXACT_MAX_ARMS + 5, 20_000
    n = np.full(k, 400.0)
    total = np.linspace(40.0, 60.0, k).round()
    result = bayesian_comparison(StatsArray(n, total, total), 0, "bernoulli", rng, draws=draws)
    exact = prob_best_beta_exact(1.0 + total, 1.0 + n - total)  # the oracle, affordable once in a test
    got = np.array([arm.prob_best for arm in result.arms])
    tolerance = 5.0 * np.sqrt(exact * (1.0 - exact) / draws) + 1e-12  # from the true probability
    assert np.all(np.abs(got - exact) <= tolerance)
    assert got.sum() == pytest.approx(1.0)
