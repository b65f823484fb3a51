"""Posteriors against closed forms and numerical integration; P(best) exact against Monte Carlo."""

import math
from typing import Any

import numpy as np
import pytest
from scipy import integrate, special
from scipy import stats as sps

from policies.posterior import (
    BetaPosterior,
    StudentTPosterior,
    beta_posterior,
    normal_posterior,
    posterior,
    prob_best_beta_exact,
    prob_best_monte_carlo,
    stratified_posterior,
)
from policies.stats import StatsArray
from policies.thompson import ThompsonSampling

# ---------------------------------------------------------------------------------------------
# Beta posterior


def test_beta_posterior_is_prior_plus_successes_and_failures() -> None:
    stats = StatsArray.from_counts([[3, 0, 10]], [[10, 0, 10]])
    post = beta_posterior(stats, prior_alpha=0.5, prior_beta=2.0)
    np.testing.assert_array_equal(post.alpha, [[3.5, 0.5, 10.5]])
    np.testing.assert_array_equal(post.beta, [[9.0, 2.0, 2.0]])
    np.testing.assert_allclose(post.mean, [[3.5 / 12.5, 0.5 / 2.5, 10.5 / 12.5]], rtol=1e-15)
    lo, hi = post.interval(0.9)
    for i, (a, b) in enumerate([(3.5, 9.0), (0.5, 2.0), (10.5, 2.0)]):
        # Closed-form check of the interval: the regularised incomplete beta gives 5% and 95%.
        assert special.betainc(a, b, lo[0, i]) == pytest.approx(0.05, abs=1e-12)
        assert special.betainc(a, b, hi[0, i]) == pytest.approx(0.95, abs=1e-12)
    same = posterior(stats, "bernoulli", prior_alpha=0.5, prior_beta=2.0)
    assert isinstance(same, BetaPosterior)
    np.testing.assert_array_equal(same.alpha, post.alpha)
    np.testing.assert_array_equal(same.beta, post.beta)


def test_beta_draws_have_the_closed_form_moments(rng: np.random.Generator) -> None:
    post = BetaPosterior(np.array([3.5, 40.0]), np.array([9.0, 2.0]))
    draws = post.sample(rng, 200_000)
    assert draws.shape == (200_000, 2)
    a, b = post.alpha, post.beta
    mean = a / (a + b)
    var = a * b / ((a + b) ** 2 * (a + b + 1))
    se = np.sqrt(var / draws.shape[0])
    assert np.all(np.abs(draws.mean(axis=0) - mean) <= 4 * se)


@pytest.mark.parametrize(
    ("stats", "match"),
    [
        pytest.param(StatsArray.from_rewards([[0.5, 1.0]]), r"^stats: Beta posteriors need 0/1", id="fraction"),
        pytest.param(StatsArray([2], [3], [3]), r"^stats: Beta posteriors need 0/1", id="sum-above-n"),
        pytest.param(StatsArray([2], [-1], [1]), r"^stats: Beta posteriors need 0/1", id="negative-sum"),
    ],
)
def test_beta_posterior_refuses_non_binary_rewards(stats: StatsArray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        beta_posterior(stats)


@pytest.mark.parametrize("level", [0.0, 1.0, 1.5, float("nan")])
def test_interval_level_must_lie_in_the_open_unit_interval(level: float) -> None:
    beta = BetaPosterior(np.array([1.0]), np.array([1.0]))
    t = StudentTPosterior(np.array([3.0]), np.array([0.0]), np.array([1.0]))
    for post in (beta, t):
        with pytest.raises(ValueError, match=r"^level: "):
            post.interval(level)


# ---------------------------------------------------------------------------------------------
# Normal-Inverse-Gamma posterior: against a grid over (mu, sigma^2) of prior x likelihood


def nig_marginal_on_grid(
    rewards: list[float], mu0: float, kappa0: float, a0: float, b0: float, mu_grid: np.ndarray
) -> np.ndarray:
    """Unnormalised p(mu | data), integrating sigma^2 out numerically from the raw rewards."""
    x = np.asarray(rewards)
    log_s2 = np.linspace(-30.0, 40.0, 2_001)[:, None]  # sigma^2 over e^-30 .. e^40, in log scale
    s2 = np.exp(log_s2)
    mu = mu_grid[None, :]
    # prior: sigma^2 ~ InvGamma(a0, b0), mu | sigma^2 ~ N(mu0, sigma^2 / kappa0)
    log_prior = sps.invgamma.logpdf(s2, a0, scale=b0) - 0.5 * log_s2 - kappa0 * (mu - mu0) ** 2 / (2 * s2)
    # likelihood: prod_i N(x_i | mu, sigma^2), with sum_i (x_i - mu)^2 expanded over the grid
    squares = (x * x).sum() - 2 * mu * x.sum() + x.size * mu * mu
    log_lik = -0.5 * x.size * log_s2 - squares / (2 * s2)
    log_joint = log_prior + log_lik + log_s2  # + log sigma^2: the Jacobian of d log sigma^2
    log_joint -= log_joint.max()
    return integrate.trapezoid(np.exp(log_joint), log_s2[:, 0], axis=0)


@pytest.mark.parametrize(
    ("rewards", "prior"),
    [
        pytest.param([], (0.0, 1e-3, 1.0, 1.0), id="no-data"),
        pytest.param([2.0], (0.0, 1e-3, 1.0, 1.0), id="one-observation"),
        pytest.param([1.2, 0.7, 2.9, 1.1, 1.6], (0.0, 1e-3, 1.0, 1.0), id="five"),
        pytest.param([10.3, 9.1, 11.7, 10.0, 8.8, 12.5, 10.1, 9.6], (5.0, 2.0, 3.0, 4.0), id="informative-prior"),
        pytest.param(list(np.linspace(-1.0, 3.0, 60)), (0.0, 1e-3, 1.0, 1.0), id="sixty"),
    ],
)
def test_student_t_posterior_matches_the_joint_nig_posterior(rewards: list[float], prior: tuple) -> None:
    mu0, kappa0, a0, b0 = prior
    post = normal_posterior(StatsArray.from_rewards([rewards]), mu0, kappa0, a0, b0)
    df, loc, scale = post.df[0], post.loc[0], post.scale[0]
    assert df == pytest.approx(2 * a0 + len(rewards), rel=1e-15)
    # Compare the CDF on a window of +-12 scales, normalised to the window (df = 2 has heavy tails).
    mu_grid = np.linspace(loc - 12 * scale, loc + 12 * scale, 3_001)
    density = nig_marginal_on_grid(rewards, mu0, kappa0, a0, b0, mu_grid)
    grid_cdf = integrate.cumulative_trapezoid(density, mu_grid, initial=0.0)
    grid_cdf /= grid_cdf[-1]
    t_cdf = sps.t.cdf(mu_grid, df, loc, scale)
    t_cdf = (t_cdf - t_cdf[0]) / (t_cdf[-1] - t_cdf[0])
    np.testing.assert_allclose(grid_cdf, t_cdf, atol=2e-5)
    same = posterior(
        StatsArray.from_rewards([rewards]),
        "continuous",
        prior_mean=mu0,
        prior_kappa=kappa0,
        prior_shape=a0,
        prior_scale=b0,
    )
    assert isinstance(same, StudentTPosterior)
    np.testing.assert_array_equal([same.df, same.loc, same.scale], [post.df, post.loc, post.scale])


def test_student_t_with_vague_prior_approaches_the_classical_t_interval() -> None:
    x = np.array([1.2, 0.7, 2.9, 1.1, 1.6, 2.2, 0.4, 1.9])
    post = normal_posterior(StatsArray.from_rewards([x]), prior_kappa=1e-9, prior_shape=1e-9, prior_scale=1e-9)
    lo, hi = post.interval(0.95)
    # With a vague prior the posterior of the mean is t_{n} around xbar with scale s/sqrt(n)*sqrt((n-1)/n):
    # df = 2 a_n = n and b_n / (a_n kappa_n) = SS / n^2.
    n, xbar, ss = x.size, x.mean(), ((x - x.mean()) ** 2).sum()
    q = sps.t.ppf(0.975, n)
    assert lo[0] == pytest.approx(xbar - q * math.sqrt(ss) / n, rel=1e-6)
    assert hi[0] == pytest.approx(xbar + q * math.sqrt(ss) / n, rel=1e-6)


def test_student_t_draws_have_the_closed_form_moments(rng: np.random.Generator) -> None:
    post = StudentTPosterior(np.array([[12.0, 30.0]]), np.array([[1.5, -2.0]]), np.array([[0.3, 2.0]]))
    draws = post.sample(rng, 200_000)
    assert draws.shape == (200_000, 1, 2)
    var = post.scale**2 * post.df / (post.df - 2)
    se = np.sqrt(var / draws.shape[0])
    assert np.all(np.abs(draws.mean(axis=0) - post.loc) <= 4 * se)
    np.testing.assert_array_equal(post.mean, post.loc)


# ---------------------------------------------------------------------------------------------
# P(best): exact integration against adaptive quadrature and against 10^6 Monte Carlo draws


def adaptive_prob_best(alpha: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """P(arm i best) = integral f_i(x) prod_{j != i} F_j(x) dx by scipy's adaptive quadrature."""
    out = []
    for i in range(alpha.size):
        others = np.arange(alpha.size) != i
        density = sps.beta(alpha[i], beta[i]).pdf  # boost's pdf: no cancellation at a million counts

        def integrand(x: float, density: Any = density, others: np.ndarray = others) -> float:
            return float(density(x)) * float(np.prod(special.betainc(alpha[others], beta[others], x)))

        levels = special.ndtr(np.arange(-7.0, 7.25, 0.5))[None, :]  # every arm's quantiles at z = -7 .. 7
        breaks = sps.beta.ppf(levels, alpha[:, None], beta[:, None]).ravel()
        lo, hi = sps.beta.ppf([1e-14, 1 - 1e-14], alpha[i], beta[i])
        inside = np.unique(breaks[(breaks > lo) & (breaks < hi)])
        value, _ = integrate.quad(integrand, lo, hi, points=inside, limit=2_000, epsabs=1e-13, epsrel=1e-11)
        out.append(value)
    return np.array(out)


BETA_CASES = [
    pytest.param([1.0, 1.0], [1.0, 1.0], id="flat"),
    pytest.param([1001.0, 1201.0], [9001.0, 8801.0], id="peaked"),
    pytest.param([101.0, 102.0], [901.0, 900.0], id="near-tie"),
    pytest.param([3.0, 1e6 + 1.0], [9.0, 3e6], id="wide-against-narrow"),
    pytest.param([0.5, 0.5, 3.5], [100.5, 200.5, 300.5], id="jeffreys-no-successes"),
    pytest.param(list(np.arange(1, 11) * 10 + 1.0), [200.0] * 10, id="ten-arms"),
]


@pytest.mark.parametrize(("alpha", "beta"), BETA_CASES)
def test_exact_prob_best_matches_adaptive_quadrature(alpha: list[float], beta: list[float]) -> None:
    a, b = np.array(alpha), np.array(beta)
    np.testing.assert_allclose(prob_best_beta_exact(a, b), adaptive_prob_best(a, b), rtol=0, atol=1e-9)


@pytest.mark.parametrize(("alpha", "beta"), [*BETA_CASES, pytest.param([3.0], [5.0], id="one-arm")])
def test_exact_prob_best_matches_a_million_monte_carlo_draws(
    alpha: list[float], beta: list[float], rng: np.random.Generator
) -> None:
    a, b = np.array(alpha), np.array(beta)
    exact = prob_best_beta_exact(a, b)
    assert abs(exact.sum() - 1.0) <= 1e-9
    draws = 1_000_000
    mc = prob_best_monte_carlo(BetaPosterior(a, b), rng, draws)
    se = np.sqrt(exact * (1 - exact) / draws)
    assert np.all(np.abs(mc - exact) <= 3 * se + 1e-12), (mc, exact, se)


def test_monte_carlo_prob_best_of_student_t_posteriors_matches_quadrature(rng: np.random.Generator) -> None:
    post = StudentTPosterior(np.array([3.0, 8.0, 40.0]), np.array([0.1, 0.4, 0.5]), np.array([0.5, 0.3, 0.1]))
    exact = []
    for i in range(3):
        others = [j for j in range(3) if j != i]

        def integrand(x: float, i: int = i, others: list[int] = others) -> float:
            f = sps.t.pdf(x, post.df[i], post.loc[i], post.scale[i])
            return float(f * np.prod([sps.t.cdf(x, post.df[j], post.loc[j], post.scale[j]) for j in others]))

        exact.append(integrate.quad(integrand, -np.inf, np.inf, epsabs=1e-12, limit=500)[0])
    p = np.array(exact)
    draws = 1_000_000
    mc = prob_best_monte_carlo(post, rng, draws)
    assert np.all(np.abs(mc - p) <= 3 * np.sqrt(p * (1 - p) / draws)), (mc, p)


def test_monte_carlo_prob_best_is_batched_and_chunked(rng: np.random.Generator) -> None:
    # 300 batch rows x 10 arms x 2,000 draws spans several chunks of draws.
    alpha = np.tile(np.arange(1.0, 11.0) * 10 + 1, (300, 1))
    post = BetaPosterior(alpha, np.full_like(alpha, 200.0))
    p = prob_best_monte_carlo(post, rng, 2_000)
    assert p.shape == (300, 10)
    np.testing.assert_allclose(p.sum(axis=-1), 1.0, atol=1e-12)
    exact = prob_best_beta_exact(alpha[0], post.beta[0])
    # Averaging 300 independent rows: standard error sqrt(p(1-p) / (300 * 2000)).
    assert np.all(np.abs(p.mean(axis=0) - exact) <= 4 * np.sqrt(exact * (1 - exact) / 600_000) + 1e-12)


class _Ties:
    """A sampler whose draws tie between arms 0 and 2 every time."""

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        return np.tile([1.0, 0.5, 1.0, 0.0], (size, 1))


def test_a_tied_draw_is_shared_between_the_tied_arms(rng: np.random.Generator) -> None:
    np.testing.assert_array_equal(prob_best_monte_carlo(_Ties(), rng, 10), [0.5, 0.0, 0.5, 0.0])


@pytest.mark.parametrize("draws", [0, -5, 2.5], ids=["zero", "negative", "fraction"])
def test_monte_carlo_needs_a_positive_number_of_draws(draws: Any, rng: np.random.Generator) -> None:
    with pytest.raises(ValueError, match=r"^draws: "):
        prob_best_monte_carlo(_Ties(), rng, draws)


@pytest.mark.parametrize(
    ("alpha", "beta"),
    [
        pytest.param([], [], id="empty"),
        pytest.param([1.0, 2.0], [1.0], id="mismatched"),
        pytest.param([0.0, 2.0], [1.0, 1.0], id="zero"),
        pytest.param([float("nan")], [1.0], id="nan"),
    ],
)
def test_exact_prob_best_refuses_invalid_parameters(alpha: list[float], beta: list[float]) -> None:
    with pytest.raises(ValueError, match=r"^alpha, beta: "):
        prob_best_beta_exact(np.array(alpha), np.array(beta))


@pytest.mark.parametrize(
    ("successes", "trials", "active"),
    [
        pytest.param([[12, 15, 9]], [[100, 100, 80]], None, id="three-arms"),
        pytest.param([[100, 102]], [[1000, 1000]], None, id="near-tie"),
        pytest.param([[5, 50, 7, 9]], [[40, 60, 50, 52]], [True, False, True, True], id="held-best"),
        pytest.param([[1, 2], [30, 20]], [[10, 10], [100, 100]], None, id="batched"),
    ],
)
def test_thompson_integration_and_monte_carlo_agree(
    successes: Any, trials: Any, active: Any, rng: np.random.Generator
) -> None:
    stats = StatsArray.from_counts(successes, trials)
    mask = None if active is None else np.array(active)
    exact = ThompsonSampling(method="integration").allocate(stats, rng, active=mask)
    mc_policy = ThompsonSampling(method="monte_carlo", draws=200_000)
    mc = mc_policy.allocate(stats, rng, active=mask)
    assert np.all(np.abs(mc - exact) <= 4 * np.sqrt(exact * (1 - exact) / mc_policy.draws) + 1e-12), (mc, exact)


# ---------------------------------------------------------------------------------------------
# Posterior of the period-weighted mean: against a Monte Carlo of the exact mixture


def _stratified_cases(rng: np.random.Generator) -> list[tuple[StatsArray, np.ndarray, str]]:
    n = np.array([[40, 200, 0, 0], [300, 60, 100, 0], [1_000, 1_000, 500, 0]])
    rates = np.array([[0.1, 0.12, 0.1, 0.1], [0.2, 0.15, 0.2, 0.1], [0.05, 0.06, 0.05, 0.1]])
    s = rng.binomial(n, rates).astype(float)
    counts = StatsArray(n, s, s)
    sizes = [[5, 20, 0], [8, 3, 30], [100, 40, 12]]
    data = [[rng.normal(10 + p, 3 + p, m) for m in row] for p, row in enumerate(sizes)]
    rewards = StatsArray(
        [[x.size for x in row] for row in data],
        [[x.sum() for x in row] for row in data],
        [[(x * x).sum() for x in row] for row in data],
    )
    return [
        (counts, np.array([500.0, 800.0, 3_000.0]), "bernoulli"),
        (rewards, np.array([1.0, 2.0, 3.0]), "continuous"),
    ]


def _shared_prior_periods(stats: StatsArray, w: np.ndarray, reward: str) -> BetaPosterior | StudentTPosterior:
    """Each period's conjugate posterior under the default prior with its pseudo-counts scaled by w_p, by hand."""
    share = np.where(stats.n > 0, w, 1.0)
    if reward == "bernoulli":
        return BetaPosterior(share + stats.total, share + stats.n - stats.total)
    # Normal-Inverse-Gamma (Murphy, 2007, eq. 110) with mu_0 = 0, kappa_0 = 1e-3 w, a_0 = w, b_0 = w.
    n, total = stats.n, stats.total
    xbar = np.where(n > 0, total / np.where(n > 0, n, 1.0), 0.0)
    ss = np.maximum(stats.total_sq - n * xbar**2, 0.0)
    kappa0, a0, b0 = 1e-3 * share, share, share
    kappa, a = kappa0 + n, a0 + n / 2
    b = b0 + ss / 2 + kappa0 * n * xbar**2 / (2 * kappa)
    return StudentTPosterior(2 * a, total / kappa, np.sqrt(b / (a * kappa)))


def test_stratified_posterior_matches_the_exact_mixture_by_monte_carlo(rng: np.random.Generator) -> None:
    draws = 200_000
    for stats, traffic, reward in _stratified_cases(rng):
        post = stratified_posterior(stats, traffic, reward)
        used = stats.n > 0
        w = np.where(used, traffic[:, None], 0.0)
        with np.errstate(invalid="ignore"):
            w = w / w.sum(axis=0)
        per_period = _shared_prior_periods(stats, w, reward).sample(rng, draws)  # (draws, P, k)
        mixture = np.where(used, w * per_period, 0.0).sum(axis=1)
        data = used.any(axis=0)
        ours = post.sample(rng, draws)[:, data]
        mixture = mixture[:, data]
        sd = mixture.std(axis=0)
        assert np.all(np.abs(post.mean[data] - mixture.mean(axis=0)) <= 4 * sd / math.sqrt(draws))
        np.testing.assert_allclose(ours.std(axis=0), sd, rtol=0.01)  # the variance is matched exactly
        lo, hi = post.interval(0.95)
        q_lo, q_hi = np.quantile(mixture, [0.025, 0.975], axis=0)
        # The tails are an approximation (a Beta or t with the mixture's moments): within 10% of an sd.
        assert np.all(np.abs(lo[data] - q_lo) <= 0.1 * sd) and np.all(np.abs(hi[data] - q_hi) <= 0.1 * sd)
        prior = posterior(StatsArray.zeros(stats.k), reward)
        assert post.mean[~data] == pytest.approx(prior.mean[~data])  # no data anywhere: the prior


@pytest.mark.parametrize("reward", ["bernoulli", "continuous"])
def test_one_period_is_the_conjugate_posterior_exactly(reward: str, rng: np.random.Generator) -> None:
    n = np.array([[30.0, 0.0, 12.0]])
    s = np.array([[7.0, 0.0, 12.0]])
    stats = StatsArray(n, s, s) if reward == "bernoulli" else StatsArray(n, s * 1.5, s * 4.0)
    prior = {"prior_alpha": 0.5, "prior_beta": 2.0} if reward == "bernoulli" else {"prior_mean": 1.0}
    post = stratified_posterior(stats, [123.0], reward, **prior)  # type: ignore[arg-type]
    same = posterior(StatsArray(n[0], stats.total[0], stats.total_sq[0]), reward, **prior)  # type: ignore[arg-type]
    assert type(post) is type(same)
    for field in post.__struct_fields__:
        np.testing.assert_array_equal(getattr(post, field), getattr(same, field))


def test_an_arm_in_one_of_several_periods_keeps_that_periods_posterior() -> None:
    stats = StatsArray.from_counts([[3, 0], [5, 9]], [[10, 0], [20, 30]])
    post = stratified_posterior(stats, [10.0, 50.0], "bernoulli")
    assert isinstance(post, BetaPosterior)
    assert post.alpha[1] == 10.0 and post.beta[1] == 22.0  # Beta(1 + 9, 1 + 21), untouched
    # Arm 0, by hand: weights 1/6 and 5/6, each period under the prior Beta(1, 1) scaled by its
    # weight: Beta(1/6 + 3, 1/6 + 7) and Beta(5/6 + 5, 5/6 + 15); then the matched Beta.
    periods = [(1 / 6, 1 / 6 + 3, 1 / 6 + 7), (5 / 6, 5 / 6 + 5, 5 / 6 + 15)]
    m = sum(w * a / (a + b) for w, a, b in periods)
    v = sum(w**2 * a * b / ((a + b) ** 2 * (a + b + 1)) for w, a, b in periods)
    size = m * (1 - m) / v - 1
    assert post.alpha[0] == pytest.approx(m * size, rel=1e-12) and post.beta[0] == pytest.approx((1 - m) * size)


def test_a_period_without_a_variance_adds_scales() -> None:
    # One observation under a quarter of the prior (shape 0.5 / 4): df = 1.25, the t has no
    # variance; Welch on the scales instead.
    stats = StatsArray([[1.0], [50.0]], [[2.0], [60.0]], [[4.0], [90.0]])
    parts = (
        normal_posterior(StatsArray([1.0], [2.0], [4.0]), 0.0, 1e-3 / 4, 0.5 / 4, 1.0 / 4),
        normal_posterior(StatsArray([50.0], [60.0], [90.0]), 0.0, 3e-3 / 4, 1.5 / 4, 3.0 / 4),
    )
    per = StudentTPosterior(*(np.array([[getattr(x, f)[0]] for x in parts]) for f in ("df", "loc", "scale")))
    assert per.df[0, 0] == 1.25
    post = stratified_posterior(stats, [1.0, 3.0], "continuous", prior_shape=0.5)
    assert isinstance(post, StudentTPosterior)
    u = np.array([0.25, 0.75]) ** 2 * per.scale[:, 0] ** 2
    assert post.scale[0] == pytest.approx(math.sqrt(u.sum()), rel=1e-12)
    assert post.df[0] == pytest.approx(u.sum() ** 2 / (u**2 / per.df[:, 0]).sum(), rel=1e-12)
    assert post.loc[0] == pytest.approx(0.25 * per.loc[0, 0] + 0.75 * per.loc[1, 0], rel=1e-12)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        pytest.param(
            lambda: stratified_posterior(StatsArray.from_counts([1], [2]), [1.0], "bernoulli"), "period_stats", id="1d"
        ),
        pytest.param(
            lambda: stratified_posterior(StatsArray.from_counts([[1]], [[2]]), [1.0, 2.0], "bernoulli"),
            "traffic",
            id="len",
        ),
        pytest.param(
            lambda: stratified_posterior(StatsArray.from_counts([[1]], [[2]]), [-1.0], "bernoulli"), "traffic", id="neg"
        ),
        pytest.param(
            lambda: stratified_posterior(StatsArray.from_counts([[1]], [[2]]), [1.0], "poisson"), "reward", id="reward"
        ),  # type: ignore[arg-type]
        pytest.param(
            lambda: stratified_posterior(StatsArray([[2.0]], [[1.0]], [[0.7]]), [1.0], "bernoulli"),
            "0/1",
            id="not-binary",
        ),
    ],
)
def test_stratified_posterior_refuses_bad_input(call: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()
