"""The fused Beta-Thompson loop against an exact enumeration, the generic loop and its own bookkeeping."""

import functools
import math

import numpy as np
import pytest
from scipy import integrate
from scipy import stats as sps

from policies import EpsilonGreedy, ThompsonSampling
from policies.beta_thompson_kernel import fits_beta_thompson_kernel
from policies.environments import BernoulliEnv, DriftingEnv, GaussianEnv
from policies.simulation import simulate

MEANS = (0.3, 0.6)


def _p_second_wins(a0: float, b0: float, a1: float, b1: float) -> float:
    """P(X1 > X0) for independent X0 ~ Beta(a0, b0), X1 ~ Beta(a1, b1), by quadrature over X1."""
    value, _ = integrate.quad(lambda x: sps.beta.pdf(x, a1, b1) * sps.beta.cdf(x, a0, b0), 0.0, 1.0, epsabs=1e-12)
    return float(value)


def _exact_regret(horizon: int, prior: tuple[float, float]) -> list[float]:
    """Expected cumulative regret of Thompson sampling on MEANS after 1..horizon decisions.

    Enumerates every history (successes and failures per arm) with its probability; each
    decision picks arm 1 with the exact probability that its posterior draw is the larger.
    """
    gap = MEANS[1] - MEANS[0]

    @functools.cache
    def p_arm1(s0: int, f0: int, s1: int, f1: int) -> float:
        a, b = prior
        return _p_second_wins(a + s0, b + f0, a + s1, b + f1)

    out = []
    states = {(0, 0, 0, 0): 1.0}
    expected = 0.0
    for _ in range(horizon):
        nxt: dict[tuple[int, int, int, int], float] = {}
        for (s0, f0, s1, f1), prob in states.items():
            q = p_arm1(s0, f0, s1, f1)
            expected += prob * (1.0 - q) * gap  # arm 0 is the worse arm
            for arm, p_arm in ((0, 1.0 - q), (1, q)):
                for won, p_reward in ((True, MEANS[arm]), (False, 1.0 - MEANS[arm])):
                    counts = [s0, f0, s1, f1]
                    counts[2 * arm + (0 if won else 1)] += 1
                    key = (counts[0], counts[1], counts[2], counts[3])
                    nxt[key] = nxt.get(key, 0.0) + prob * p_arm * p_reward
        states = nxt
        out.append(expected)
    return out


@pytest.mark.parametrize("prior", [(1.0, 1.0), (2.0, 3.0), (1.5, 2.5)], ids=["float32", "float32-prior", "float64"])
def test_expected_regret_matches_an_exact_enumeration_of_histories(prior: tuple[float, float]) -> None:
    # Whole-number priors run in float32, fractional ones in float64: both must have the exact law.
    horizon, seeds = 5, 200_000
    policy = ThompsonSampling(prior_alpha=prior[0], prior_beta=prior[1])
    env = BernoulliEnv(MEANS)
    assert fits_beta_thompson_kernel(policy, env)
    result = simulate(policy, env, horizon, seeds, np.random.default_rng(11), checkpoints=list(range(1, horizon + 1)))
    exact = _exact_regret(horizon, prior)
    z = (result.mean_regret - exact) / result.se_regret
    assert np.all(np.abs(z) < 4.0), (result.mean_regret, exact)


def test_agrees_with_the_generic_loop_on_ten_arms(monkeypatch: pytest.MonkeyPatch) -> None:
    env = BernoulliEnv(tuple(np.linspace(0.05, 0.14, 10)))
    horizon, seeds = 2_000, 2_000
    fused = simulate(ThompsonSampling(), env, horizon, seeds, np.random.default_rng(5))
    monkeypatch.setattr("policies.simulation.fits_beta_thompson_kernel", lambda policy, env: False)
    generic = simulate(ThompsonSampling(), env, horizon, seeds, np.random.default_rng(6))
    a, b = fused.final_regret, generic.final_regret
    z = (a.mean() - b.mean()) / math.sqrt(a.var(ddof=1) / a.size + b.var(ddof=1) / b.size)
    assert abs(z) < 4.0
    assert sps.ks_2samp(fused.pulls[:, -1], generic.pulls[:, -1]).pvalue > 1e-3


def test_bookkeeping_pulls_and_regret_add_up(rng: np.random.Generator) -> None:
    env = BernoulliEnv((0.1, 0.2, 0.3))
    result = simulate(ThompsonSampling(), env, 3_000, 7, rng, checkpoints=[1, 1_024, 1_025, 2_000])
    np.testing.assert_array_equal(result.times, [1, 1_024, 1_025, 2_000, 3_000])
    np.testing.assert_array_equal(result.pulls.sum(axis=1), [3_000] * 7)
    np.testing.assert_allclose(result.final_regret, result.pulls @ env.gaps, atol=1e-9)
    steps = np.diff(result.regret, axis=1)
    assert np.all(steps >= 0)
    # One decision adds at most the largest gap, across the block boundary too.
    assert np.all(result.regret[:, 2] - result.regret[:, 1] <= env.gaps.max() + 1e-12)


def test_drift_gaps_are_taken_at_each_decision_time() -> None:
    # Arm 1 is far better in phase one and far worse after t = 1,500 (inside the second block).
    env = DriftingEnv(phases=(BernoulliEnv((0.1, 0.9)), BernoulliEnv((0.9, 0.1))), change_times=(1_500,))
    result = simulate(ThompsonSampling(), env, 3_000, 20, np.random.default_rng(2), checkpoints=[1_500])
    before, after = result.regret[:, 0], result.regret[:, 1] - result.regret[:, 0]
    assert before.mean() < 30  # learns arm 1 fast: a few dozen pulls of arm 0 at most
    assert after.mean() > 0.8 * 10  # pays the 0.8 gap while it unlearns arm 1
    np.testing.assert_array_equal(result.pulls.sum(axis=1), [3_000] * 20)


def test_progress_reports_add_up_to_the_horizon(rng: np.random.Generator) -> None:
    seen: list[int] = []
    simulate(ThompsonSampling(), BernoulliEnv((0.4, 0.5)), 2_500, 3, rng, on_progress=seen.append)
    assert sum(seen) == 2_500 and all(d > 0 for d in seen)


def test_same_seed_same_run() -> None:
    env = BernoulliEnv((0.2, 0.25, 0.3))
    first = simulate(ThompsonSampling(), env, 1_500, 10, np.random.default_rng(8))
    again = simulate(ThompsonSampling(), env, 1_500, 10, np.random.default_rng(8))
    np.testing.assert_array_equal(first.regret, again.regret)
    np.testing.assert_array_equal(first.pulls, again.pulls)


@pytest.mark.parametrize(
    ("policy", "env", "fits"),
    [
        (ThompsonSampling(), BernoulliEnv((0.1, 0.2)), True),
        (ThompsonSampling(method="integration"), BernoulliEnv((0.1, 0.2)), True),  # choose ignores method
        (ThompsonSampling(burn_in=10), BernoulliEnv((0.1, 0.2)), False),
        (ThompsonSampling(min_weight=0.05), BernoulliEnv((0.1, 0.2)), False),
        (ThompsonSampling(prior_alpha=0.5, prior_beta=0.5), BernoulliEnv((0.1, 0.2)), False),
        (ThompsonSampling(reward="continuous"), GaussianEnv((0.0, 1.0), (1.0, 1.0)), False),
        (ThompsonSampling(), GaussianEnv((0.0, 1.0), (1.0, 1.0)), False),
        (EpsilonGreedy(epsilon=0.1), BernoulliEnv((0.1, 0.2)), False),
    ],
)
def test_only_plain_beta_thompson_on_bernoulli_arms_is_fused(policy: object, env: object, fits: bool) -> None:
    assert fits_beta_thompson_kernel(policy, env) is fits  # type: ignore[arg-type]
