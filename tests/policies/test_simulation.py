"""The simulator: regret against closed forms, online against batches, and the issue's Thompson test."""

import math

import numpy as np
import pytest
from numpy.typing import ArrayLike
from scipy import stats as sps

from policies import EpsilonGreedy, FixedSplit, ThompsonSampling
from policies.environments import BernoulliEnv, DriftingEnv, GaussianEnv
from policies.simulation import SimulationResult, checkpoint_times, simulate
from policies.stats import FloatArray, IntArray, StatsArray


def _welch_z(a: FloatArray, b: FloatArray) -> float:
    """(mean a - mean b) / standard error of the difference."""
    return float((a.mean() - b.mean()) / math.sqrt(a.var(ddof=1) / a.size + b.var(ddof=1) / b.size))


def test_thompson_beats_uniform_and_epsilon_greedy_on_two_close_arms(rng: np.random.Generator) -> None:
    """The issue's test: 2 Bernoulli arms 0.10 vs 0.12, T = 20,000, lower mean regret over 20 seeds.

    Measured over 1,000 seeds: Thompson about 30 +- 1, epsilon-greedy(0.1) about 47 +- 2, uniform
    200. With 20 seeds the epsilon-greedy comparison holds in about 86% of seed blocks, so it is
    asserted on the first 20 seeds as the issue states, and backed by a powered one-sided test on
    240 seeds (the difference is then about 4 standard errors) that does not rest on the seed.
    """
    env = BernoulliEnv((0.10, 0.12))
    horizon, seeds = 20_000, 240
    thompson = simulate(ThompsonSampling(), env, horizon, seeds, rng, checkpoints=1).final_regret
    greedy = simulate(EpsilonGreedy(epsilon=0.1), env, horizon, seeds, rng, checkpoints=1).final_regret
    # Uniform split does not learn, so one batch of T decisions is the same process as online.
    uniform = simulate(FixedSplit(weights=(0.5, 0.5)), env, horizon, seeds, rng, batch_size=horizon).final_regret
    first = slice(0, 20)
    assert thompson[first].mean() < uniform[first].mean()
    assert thompson[first].mean() < greedy[first].mean()
    assert _welch_z(thompson, uniform) < -3.0
    assert _welch_z(thompson, greedy) < -3.0


@pytest.mark.parametrize("batch_size", [None, 1, 64, 1_000], ids=["online", "B=1", "B=64", "B=T"])
def test_uniform_split_regret_is_t_times_the_mean_gap(batch_size: int | None, rng: np.random.Generator) -> None:
    # Uniform over k arms: each decision costs gap_i with probability 1/k, independently, so
    # E[R(T)] = T sum(gaps) / k and Var[R(T)] = T Var(gap of a uniform arm).
    env = BernoulliEnv(tuple(np.linspace(0.05, 0.14, 10)))
    horizon, seeds = 1_000, 400
    result = simulate(FixedSplit(weights=(0.1,) * 10), env, horizon, seeds, rng, batch_size=batch_size)
    g = env.gaps
    expected = result.times * g.mean()
    se = np.sqrt(result.times * g.var() / seeds)
    assert np.all(np.abs(result.mean_regret - expected) < 4 * se)
    # The estimated standard error agrees with the exact one (a 20% band: 400 seeds).
    np.testing.assert_allclose(result.se_regret[-1], se[-1], rtol=0.2)


def test_online_and_b1_are_the_same_run_for_a_policy_that_draws_from_its_weights() -> None:
    # Epsilon-greedy's choose is one draw from allocate's weights, and a batch of one draws the
    # same uniforms in the same order: the bookkeeping of the two modes must then agree exactly.
    env = BernoulliEnv((0.2, 0.4, 0.5))
    policy = EpsilonGreedy(epsilon=0.2)
    online = simulate(policy, env, 500, 16, np.random.default_rng(3))
    batched = simulate(policy, env, 500, 16, np.random.default_rng(3), batch_size=1)
    np.testing.assert_array_equal(online.regret, batched.regret)
    np.testing.assert_array_equal(online.pulls, batched.pulls)


def test_thompson_online_and_b1_agree_in_distribution(rng: np.random.Generator) -> None:
    # allocate estimates P(best) by Monte Carlo; the estimate is unbiased, so one arm drawn from it
    # has exactly the online law P(best). Few draws keep this fast without changing that law.
    env = BernoulliEnv((0.3, 0.5))
    horizon, seeds = 300, 400
    online = simulate(ThompsonSampling(), env, horizon, seeds, rng)
    batched = simulate(ThompsonSampling(draws=16), env, horizon, seeds, rng, batch_size=1)
    assert abs(_welch_z(online.final_regret, batched.final_regret)) < 4.0
    # Two-sample KS is conservative on discrete data, so a small p-value would be a real difference.
    assert sps.ks_2samp(online.final_regret, batched.final_regret).pvalue > 1e-3
    assert sps.ks_2samp(online.pulls[:, 1], batched.pulls[:, 1]).pvalue > 1e-3


def test_scheduled_batches_cost_regret_at_a_short_horizon(rng: np.random.Generator) -> None:
    # With B = T the weights never move from the prior: P(best) = 1/2 each, so E[regret] = T gap / 2.
    # The Monte Carlo estimate of the weights is unbiased and drawn afresh per seed, so its noise
    # is part of the seeds' spread and the standard error covers it.
    env = BernoulliEnv((0.3, 0.5))
    horizon, seeds = 2_000, 100
    online = simulate(ThompsonSampling(), env, horizon, seeds, rng)
    frozen = simulate(ThompsonSampling(draws=1_000), env, horizon, seeds, rng, batch_size=horizon)
    assert abs(frozen.mean_regret[-1] - horizon * 0.2 / 2) < 4 * frozen.se_regret[-1]
    assert online.mean_regret[-1] < 0.2 * frozen.mean_regret[-1]


@pytest.mark.parametrize("batch_size", [None, 7, 100])
def test_drift_regret_is_measured_against_the_best_arm_at_each_time(batch_size: int | None) -> None:
    # Always playing arm 0: no regret while it is the best, gap 0.3 per decision after the swap.
    env = DriftingEnv(phases=(BernoulliEnv((0.6, 0.3)), BernoulliEnv((0.3, 0.6))), change_times=(40,))
    always_first = FixedSplit(weights=(1.0, 0.0))
    result = simulate(always_first, env, 100, 3, np.random.default_rng(1), batch_size=batch_size, checkpoints=100)
    expected = 0.3 * np.maximum(result.times - 40, 0)
    np.testing.assert_allclose(result.regret, np.broadcast_to(expected, result.regret.shape), atol=1e-12)
    np.testing.assert_array_equal(result.pulls, [[100, 0]] * 3)


def test_thompson_follows_the_drift(rng: np.random.Generator) -> None:
    env = DriftingEnv(phases=(BernoulliEnv((0.7, 0.3)), BernoulliEnv((0.3, 0.7))), change_times=(1_000,))
    result = simulate(ThompsonSampling(), env, 3_000, 50, rng, checkpoints=[1_000])
    # A policy that kept the old best arm would lose 0.4 x 2,000 = 800 after the swap.
    after = result.regret[:, 1] - result.regret[:, 0]
    assert after.mean() + 4 * after.std(ddof=1) / math.sqrt(after.size) < 0.5 * 800


def test_continuous_thompson_learns_a_gaussian_environment(rng: np.random.Generator) -> None:
    env = GaussianEnv(means=(0.0, 0.5, 1.0), sds=(1.0, 1.0, 1.0))
    result = simulate(ThompsonSampling(reward="continuous"), env, 2_000, 40, rng)
    uniform_regret = 2_000 * env.gaps.mean()
    assert result.mean_regret[-1] + 4 * result.se_regret[-1] < 0.25 * uniform_regret
    assert np.all(result.pulls.argmax(axis=1) == 2)


def test_result_shapes_pulls_and_regret_bookkeeping(rng: np.random.Generator) -> None:
    env = BernoulliEnv((0.1, 0.2, 0.3))
    for batch_size in (None, 9):
        result = simulate(EpsilonGreedy(epsilon=0.3), env, 50, 5, rng, batch_size=batch_size, checkpoints=[10, 20])
        assert isinstance(result, SimulationResult)
        assert result.seeds == 5 and result.horizon == 50 and result.batch_size == batch_size
        np.testing.assert_array_equal(result.times, [10, 20, 50])
        assert result.regret.shape == (5, 3) and result.pulls.shape == (5, 3)
        np.testing.assert_array_equal(result.pulls.sum(axis=1), [50] * 5)
        assert np.all(np.diff(result.regret, axis=1) >= 0)
        # At the horizon the regret is exactly sum_i pulls_i gap_i.
        np.testing.assert_allclose(result.final_regret, result.pulls @ env.gaps, atol=1e-9)


def test_same_seed_same_result_different_seed_different_result() -> None:
    env = BernoulliEnv((0.1, 0.2))
    a = simulate(ThompsonSampling(), env, 200, 8, np.random.default_rng(9))
    b = simulate(ThompsonSampling(), env, 200, 8, np.random.default_rng(9))
    c = simulate(ThompsonSampling(), env, 200, 8, np.random.default_rng(10))
    np.testing.assert_array_equal(a.regret, b.regret)
    assert not np.array_equal(a.regret, c.regret)


class _ProbePolicy:
    """Uniform policy that records what the simulator hands it."""

    def __init__(self) -> None:
        self.seen_n: list[float] = []

    def _check(self, stats: StatsArray) -> None:
        assert not stats.n.flags.writeable and not stats.total.flags.writeable
        self.seen_n.append(float(stats.n.sum()))

    def allocate(self, stats: StatsArray, rng: np.random.Generator, active: ArrayLike | None = None) -> FloatArray:
        self._check(stats)
        return np.full(stats.n.shape, 1.0 / stats.k)

    def choose(
        self, stats: StatsArray, rng: np.random.Generator, size: int | None = None, active: ArrayLike | None = None
    ) -> IntArray:
        self._check(stats)
        return rng.integers(0, stats.k, size=stats.n.shape[:-1])


def test_policy_sees_read_only_stats_updated_after_each_decision_or_batch(rng: np.random.Generator) -> None:
    env = BernoulliEnv((0.5, 0.5))
    online = _ProbePolicy()
    simulate(online, env, 5, 3, rng)
    assert online.seen_n == [0, 3, 6, 9, 12]
    batched = _ProbePolicy()
    simulate(batched, env, 10, 3, rng, batch_size=4)
    assert batched.seen_n == [0, 12, 24]  # batches of 4, 4, then the last 2


@pytest.mark.parametrize("batch_size", [None, 30])
def test_progress_reports_add_up_to_the_horizon(batch_size: int | None, rng: np.random.Generator) -> None:
    done: list[int] = []
    simulate(
        FixedSplit(weights=(0.5, 0.5)),
        BernoulliEnv((0.1, 0.2)),
        250,
        2,
        rng,
        batch_size=batch_size,
        on_progress=done.append,
    )
    assert sum(done) == 250 and len(done) > 1 and min(done) > 0


def test_checkpoint_times() -> None:
    np.testing.assert_array_equal(checkpoint_times(100, 4), [25, 50, 75, 100])
    np.testing.assert_array_equal(checkpoint_times(10, 1), [10])
    np.testing.assert_array_equal(checkpoint_times(100, [1, 10]), [1, 10, 100])  # the horizon is always in
    assert checkpoint_times(1_000, 1_000).size == 1_000


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        pytest.param({"horizon": 0}, "horizon: must be a positive integer", id="horizon-0"),
        pytest.param({"horizon": 10.0}, "horizon: must be a positive integer", id="horizon-float"),
        pytest.param({"seeds": 0}, "seeds: must be a positive integer", id="seeds-0"),
        pytest.param({"seeds": True}, "seeds: must be a positive integer", id="seeds-bool"),
        pytest.param({"batch_size": 0}, "batch_size: must be a positive integer or None", id="batch-0"),
        pytest.param({"checkpoints": 0}, "checkpoints: need at least one checkpoint", id="checkpoints-0"),
        pytest.param({"checkpoints": [0, 5]}, r"checkpoints: decision counts must lie in \[1, 10\]", id="cp-0"),
        pytest.param({"checkpoints": [11]}, r"checkpoints: decision counts must lie in \[1, 10\]", id="cp-big"),
        pytest.param({"checkpoints": [1.5]}, "checkpoints: expected a count or a list of integer", id="cp-float"),
    ],
)
def test_bad_input_is_refused(kwargs: dict, match: str, rng: np.random.Generator) -> None:
    args = {"horizon": 10, "seeds": 2, **kwargs}
    with pytest.raises(ValueError, match=match):
        simulate(FixedSplit(weights=(0.5, 0.5)), BernoulliEnv((0.1, 0.2)), rng=rng, **args)
