"""Environments: reward draws against their closed-form moments, drift timing, and bad input."""

import msgspec
import numpy as np
import pytest
from scipy import stats as sps

from policies.environments import BernoulliEnv, DriftingEnv, EnvironmentConfig, GaussianEnv


def test_bernoulli_read_outs_are_the_closed_forms() -> None:
    env = BernoulliEnv((0.1, 0.3, 0.25))
    assert env.k == 3 and env.reward == "bernoulli" and env.stationary
    assert env.best_mean == 0.3
    np.testing.assert_allclose(env.gaps, [0.2, 0.0, 0.05])
    np.testing.assert_allclose(env.means_at(np.arange(4)), np.tile([0.1, 0.3, 0.25], (4, 1)))
    np.testing.assert_allclose(env.gaps_at(7), [0.2, 0.0, 0.05])


def test_bernoulli_draws_have_the_arm_means(rng: np.random.Generator) -> None:
    env = BernoulliEnv((0.05, 0.5, 0.9))
    arms = np.repeat(np.arange(3), 100_000).reshape(3, -1)  # a batch of shape (3, 100000)
    rewards = env.draw(arms, rng)
    assert rewards.shape == arms.shape and set(np.unique(rewards)) <= {0.0, 1.0}
    p = np.array(env.means)
    se = np.sqrt(p * (1 - p) / arms.shape[1])
    assert np.all(np.abs(rewards.mean(axis=1) - p) < 4 * se)


def test_gaussian_draws_follow_their_normal_law(rng: np.random.Generator) -> None:
    env = GaussianEnv(means=(0.0, 1.5), sds=(1.0, 0.25))
    assert env.reward == "continuous" and env.best_mean == 1.5
    np.testing.assert_allclose(env.gaps, [1.5, 0.0])
    for arm, (mu, sd) in enumerate(zip(env.means, env.sds, strict=True)):
        rewards = env.draw(np.full(20_000, arm), rng)
        assert abs(rewards.mean() - mu) < 4 * sd / np.sqrt(rewards.size)
        assert sps.kstest(rewards, sps.norm(mu, sd).cdf).pvalue > 1e-3


def test_draws_are_reproducible_from_the_seed() -> None:
    env = GaussianEnv(means=(0.0, 1.0), sds=(1.0, 2.0))
    arms = np.array([[0, 1, 1], [1, 0, 0]])
    a = env.draw(arms, np.random.default_rng(5))
    b = env.draw(arms, np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)


def _swap(change: int = 10) -> DriftingEnv:
    return DriftingEnv(phases=(BernoulliEnv((0.2, 0.6)), BernoulliEnv((0.7, 0.1))), change_times=(change,))


def test_drift_changes_the_means_at_the_change_time() -> None:
    env = _swap(10)
    assert env.k == 2 and env.reward == "bernoulli" and not env.stationary
    t = np.array([0, 9, 10, 11, 10**6])
    np.testing.assert_array_equal(env.phase_at(t), [0, 0, 1, 1, 1])
    np.testing.assert_allclose(env.means_at(t), [[0.2, 0.6], [0.2, 0.6], [0.7, 0.1], [0.7, 0.1], [0.7, 0.1]])
    np.testing.assert_allclose(env.gaps_at(t), [[0.4, 0], [0.4, 0], [0, 0.6], [0, 0.6], [0, 0.6]])


def test_three_phases() -> None:
    env = DriftingEnv(
        phases=(BernoulliEnv((0.1, 0.2)), BernoulliEnv((0.3, 0.2)), BernoulliEnv((0.0, 1.0))), change_times=(5, 8)
    )
    np.testing.assert_array_equal(env.phase_at(np.array([4, 5, 7, 8])), [0, 1, 1, 2])


def test_drift_draws_use_the_phase_in_force_at_each_time(rng: np.random.Generator) -> None:
    env = _swap(50)
    t = np.arange(100)
    arms = np.zeros((4_000, 100), dtype=np.int64)  # arm 0 at every time, many seeds
    rewards = env.draw(arms, rng, t)
    before, after = rewards[:, :50].mean(), rewards[:, 50:].mean()
    n = 4_000 * 50
    assert abs(before - 0.2) < 4 * np.sqrt(0.2 * 0.8 / n)
    assert abs(after - 0.7) < 4 * np.sqrt(0.7 * 0.3 / n)
    # One scalar time for a whole batch of arms (an online step) takes a single phase.
    assert env.draw(np.zeros(10_000, dtype=np.int64), rng, 60).mean() > 0.6


def test_gaussian_drift() -> None:
    env = DriftingEnv(
        phases=(GaussianEnv(means=(0.0, 1.0), sds=(1.0, 1.0)), GaussianEnv(means=(2.0, 1.0), sds=(1.0, 1.0))),
        change_times=(3,),
    )
    assert env.reward == "continuous"
    np.testing.assert_allclose(env.gaps_at(np.array([2, 3])), [[1.0, 0.0], [0.0, 1.0]])


def test_environments_round_trip_through_json() -> None:
    for env in (BernoulliEnv((0.1, 0.2)), GaussianEnv(means=(0.0, 1.0), sds=(1.0, 2.0)), _swap(7)):
        decoded = msgspec.json.decode(msgspec.json.encode(env), type=EnvironmentConfig)
        assert decoded == env


@pytest.mark.parametrize(
    ("make", "match"),
    [
        pytest.param(lambda: BernoulliEnv(()), "means: the arm list is empty", id="empty"),
        pytest.param(lambda: BernoulliEnv((0.1, float("nan"))), "means: values must be finite", id="nan"),
        pytest.param(lambda: BernoulliEnv((0.1, 1.2)), r"means: Bernoulli means must lie in \[0, 1\]", id="above-1"),
        pytest.param(lambda: BernoulliEnv((-0.1, 0.2)), r"means: Bernoulli means must lie in \[0, 1\]", id="neg"),
        pytest.param(lambda: BernoulliEnv(("a", 0.2)), "means: expected a list of numbers", id="not-numbers"),
        pytest.param(lambda: GaussianEnv(means=(0.0, 1.0), sds=(1.0,)), "sds: mismatched lengths", id="sds-len"),
        pytest.param(lambda: GaussianEnv(means=(0.0, 1.0), sds=(1.0, 0.0)), "sds: .* must be positive", id="sd-0"),
        pytest.param(lambda: GaussianEnv(means=(0.0, 1.0), sds=(1.0, float("inf"))), "sds: .* finite", id="sd-inf"),
        pytest.param(lambda: DriftingEnv(phases=()), "phases: need at least one phase", id="no-phase"),
        pytest.param(
            lambda: DriftingEnv(phases=(BernoulliEnv((0.1, 0.2)), BernoulliEnv((0.1,))), change_times=(3,)),
            "phases: mismatched lengths",
            id="phase-k",
        ),
        pytest.param(
            lambda: DriftingEnv(
                phases=(BernoulliEnv((0.1, 0.2)), GaussianEnv(means=(0.0, 1.0), sds=(1.0, 1.0))), change_times=(3,)
            ),
            "phases: all phases must have the same reward kind",
            id="mixed-kinds",
        ),
        pytest.param(
            lambda: DriftingEnv(phases=(BernoulliEnv((0.1, 0.2)), BernoulliEnv((0.2, 0.1)))),
            "change_times: mismatched lengths",
            id="change-count",
        ),
        pytest.param(
            lambda: DriftingEnv(phases=(BernoulliEnv((0.1, 0.2)),) * 3, change_times=(5, 5)),
            "change_times: must be strictly increasing",
            id="not-increasing",
        ),
        pytest.param(
            lambda: DriftingEnv(phases=(BernoulliEnv((0.1, 0.2)),) * 2, change_times=(0,)),
            "change_times: must be positive integers",
            id="change-at-0",
        ),
    ],
)
def test_bad_configuration_is_refused(make, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize(
    ("arms", "match"),
    [
        pytest.param(np.array([0, 2]), r"arms: indices must lie in \[0, 2\)", id="too-big"),
        pytest.param(np.array([-1, 0]), r"arms: indices must lie in \[0, 2\)", id="negative"),
        pytest.param(np.array([0.0, 1.0]), "arms: expected integer arm indices", id="float"),
    ],
)
def test_bad_arms_are_refused(arms: np.ndarray, match: str, rng: np.random.Generator) -> None:
    for env in (BernoulliEnv((0.1, 0.2)), GaussianEnv(means=(0.0, 1.0), sds=(1.0, 1.0)), _swap(3)):
        with pytest.raises(ValueError, match=match):
            env.draw(arms, rng)


def test_drift_needs_integer_times(rng: np.random.Generator) -> None:
    with pytest.raises(ValueError, match="t: expected integer decision times"):
        _swap(3).means_at(np.array([1.5]))
