"""Policy configs as values: the errors name their field, `check_arms` and `bind` fit a config to an experiment."""

from __future__ import annotations

from typing import Any, get_args

import numpy as np
import pytest

from policies import (
    UCB1,
    ConfigError,
    EpsilonGreedy,
    FixedSplit,
    PolicyBase,
    PolicyConfig,
    StatsArray,
    ThompsonSampling,
)


def test_every_member_of_the_union_has_defaults_and_the_base() -> None:
    for kind in get_args(PolicyConfig):
        config = kind()
        assert isinstance(config, PolicyBase)
        assert config.bind(reward="bernoulli", weights=()) == config
    assert [k.adaptive for k in get_args(PolicyConfig)] == [False, True, True, True]


def test_an_empty_fixed_split_is_an_equal_split(rng: np.random.Generator) -> None:
    np.testing.assert_allclose(FixedSplit().allocate(StatsArray.zeros(4), rng), [0.25] * 4)
    assert FixedSplit().initial_weights(4) == (0.25,) * 4
    assert FixedSplit(weights=(0.2, 0.8)).initial_weights(2) == (0.2, 0.8)


def test_bind_takes_the_experiments_reward_kind_and_weights() -> None:
    assert ThompsonSampling(min_weight=0.1).bind(reward="continuous", weights=(0.5, 0.5)) == ThompsonSampling(
        reward="continuous", min_weight=0.1
    )
    assert FixedSplit().bind(reward="bernoulli", weights=(0.3, 0.7)) == FixedSplit(weights=(0.3, 0.7))
    assert FixedSplit(weights=(0.3, 0.7)).bind(reward="bernoulli", weights=()) == FixedSplit(weights=(0.3, 0.7))
    assert EpsilonGreedy(epsilon=0.2).bind(reward="continuous", weights=(1.0, 0.0)) == EpsilonGreedy(epsilon=0.2)


@pytest.mark.parametrize(
    ("make", "field", "match"),
    [
        pytest.param(lambda: EpsilonGreedy(epsilon=2.0), "epsilon", r"^epsilon: must be a number", id="epsilon"),
        pytest.param(lambda: UCB1(burn_in=-1), "burn_in", r"^burn_in: must be a non-negative integer", id="burn-in"),
        pytest.param(lambda: UCB1(burn_in=10**10), "burn_in", r"^burn_in: .*at most 1000000000", id="burn-in-big"),
        pytest.param(lambda: ThompsonSampling(prior_alpha=2e9), "prior_alpha", r"^prior_alpha: ", id="prior-big"),
        pytest.param(lambda: ThompsonSampling(prior_mean=-2e15), "prior_mean", r"^prior_mean: ", id="mean-big"),
        pytest.param(lambda: FixedSplit(weights=(0.5, 0.6)), "weights", r"^weights: weights must sum", id="sum"),
        pytest.param(
            lambda: ThompsonSampling(method="integration").bind(reward="continuous", weights=()),
            "method",
            r"^method: 'integration' is available for bernoulli rewards only$",
            id="bind-integration-continuous",
        ),
        pytest.param(
            lambda: ThompsonSampling(reward="continuous").bind(reward="bernoulli", weights=()),
            "reward",
            r"^reward: the policy says 'continuous'",
            id="bind-reward-conflict",
        ),
        pytest.param(lambda: UCB1(min_weight=0.4).check_arms(3), "min_weight", r"^min_weight: 3 arms", id="floor"),
        pytest.param(
            lambda: ThompsonSampling(min_weight=0.5).check_arms(3), "min_weight", r"^min_weight: 3 arms", id="ts-floor"
        ),
        pytest.param(
            lambda: ThompsonSampling(draws=1_000_000).check_arms(50),
            "draws",
            r"^draws: arms x draws must be at most 2,000,000, got 50 x 1,000,000; with 50 arms use at most 40,000",
            id="ts-cpu-bound",
        ),
        pytest.param(
            lambda: ThompsonSampling(method="integration").check_arms(21),
            "method",
            r"^method: 'integration' serves at most 20 arms \(its cost grows as arms\^3\), got 21",
            id="ts-integration-arms",
        ),
        pytest.param(
            lambda: FixedSplit(weights=(0.5, 0.5)).check_arms(3),
            "weights",
            r"^weights: mismatched lengths, 2 weights for 3 arms$",
            id="fixed-count",
        ),
        pytest.param(
            lambda: FixedSplit(weights=(0.5, 0.5)).check_arms(2, weighted_arms=True),
            "weights",
            r"^weights: give the weights on the policy or on the arms, not both$",
            id="fixed-and-arm-weights",
        ),
    ],
)
def test_config_errors_name_their_field(make: Any, field: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match) as caught:
        make()
    assert caught.value.field == field


def test_check_arms_accepts_what_fits() -> None:
    for config in (FixedSplit(), FixedSplit(weights=(0.5, 0.5)), UCB1(min_weight=0.5), EpsilonGreedy(min_weight=0.5)):
        config.check_arms(2)
    FixedSplit().check_arms(2, weighted_arms=True)  # the arms' weights are the split's
    # Thompson's P(best) at the bounds: arms x draws = 2,000,000, and exact integration up to 20 arms.
    ThompsonSampling(draws=40_000).check_arms(50)
    ThompsonSampling(draws=1_000_000).check_arms(2)
    ThompsonSampling(method="integration", draws=1_000_000).check_arms(20)  # draws unused by integration
