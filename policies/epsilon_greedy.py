"""Epsilon-greedy: most traffic to the best observed mean, a fixed share spread over all arms."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from policies.allocation import (
    active_mask,
    apply_floor,
    check_floor,
    check_floor_fits,
    in_burn_in,
    sample_arms,
    uniform_over,
)
from policies.base import Count, PolicyBase, Probability, check_count, check_probability
from policies.stats import BoolArray, FloatArray, IntArray, StatsArray

__all__ = ["EpsilonGreedy", "epsilon_greedy_weights"]


def epsilon_greedy_weights(stats: StatsArray, epsilon: float, mask: BoolArray) -> FloatArray:
    """Epsilon-greedy allocation over the active arms (Sutton & Barto, 2018, section 2.2).

    With m active arms: 1 - eps + eps/m to the best mean (split evenly among tied best arms)
    and eps/m to every other active arm. While some active arm is untried (n = 0), all
    traffic goes evenly to the untried arms: an arm without data has no mean to compare.
    """
    untried = mask & (stats.n == 0)
    has_untried = untried.any(axis=-1, keepdims=True)
    means = np.where(mask & (stats.n > 0), stats.mean, -np.inf)
    best = means == means.max(axis=-1, keepdims=True)
    greedy = uniform_over(best)
    explore = uniform_over(mask)
    w = (1.0 - epsilon) * greedy + epsilon * explore
    untried_w = uniform_over(np.where(has_untried, untried, mask))
    return np.where(has_untried, untried_w, w)


class EpsilonGreedy(PolicyBase, frozen=True, tag="epsilon_greedy"):
    """Epsilon-greedy with burn-in and a per-arm weight floor."""

    epsilon: Probability = 0.1
    burn_in: Count = 0
    min_weight: Probability = 0.0

    def __post_init__(self) -> None:
        check_probability("epsilon", self.epsilon)
        check_count("burn_in", self.burn_in)
        check_probability("min_weight", self.min_weight)

    def check_arms(self, k: int, *, weighted_arms: bool = False) -> None:
        """Refuse a floor that k arms cannot all receive."""
        check_floor_fits(self.min_weight, k)

    def allocate(self, stats: StatsArray, rng: np.random.Generator, active: ArrayLike | None = None) -> FloatArray:
        """Allocation weights (..., k): non-negative, summing to 1, floored, zero on held arms."""
        mask = active_mask(active, stats)
        check_floor(self.min_weight, mask)
        w = epsilon_greedy_weights(stats, self.epsilon, mask)
        burning = in_burn_in(stats, mask, self.burn_in)[..., None]
        w = np.where(burning, uniform_over(mask), w)
        return apply_floor(w, mask, self.min_weight)

    def choose(
        self, stats: StatsArray, rng: np.random.Generator, size: int | None = None, active: ArrayLike | None = None
    ) -> IntArray:
        """Per-decision arms: explore with probability eps, else exploit (a draw from the weights).

        Flipping the coin and then picking an arm is the same distribution as one draw from the
        allocation weights, so the batch and online forms of the policy agree by construction.
        """
        return sample_arms(self.allocate(stats, rng, active), rng, size)
