"""UCB1: play the arm with the highest upper confidence bound on its mean."""

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

__all__ = ["UCB1", "ucb1_index", "ucb1_weights"]


def ucb1_index(stats: StatsArray) -> FloatArray:
    """UCB1 index mean_i + sqrt(2 ln n / n_i), n = pulls of all arms (Auer, Cesa-Bianchi & Fischer, 2002).

    An untried arm (n_i = 0) has an infinite index. The bound assumes rewards in [0, 1].
    """
    n_i = stats.n
    n = n_i.sum(axis=-1, keepdims=True)
    safe = np.where(n_i > 0, n_i, 1.0)
    bonus = np.sqrt(2.0 * np.log(np.maximum(n, 1.0)) / safe)
    return np.where(n_i > 0, stats.total / safe + bonus, np.inf)


def ucb1_weights(stats: StatsArray, mask: BoolArray) -> FloatArray:
    """All weight on the active arm with the highest UCB1 index; ties (and untried arms) split evenly."""
    index = np.where(mask, ucb1_index(stats), -np.inf)
    return uniform_over(mask & (index == index.max(axis=-1, keepdims=True)))


class UCB1(PolicyBase, frozen=True, tag="ucb1"):
    """UCB1 (Auer et al., 2002) as a classical, deterministic reference policy, with the common knobs."""

    burn_in: Count = 0
    min_weight: Probability = 0.0

    def __post_init__(self) -> None:
        check_count("burn_in", self.burn_in)
        check_probability("min_weight", self.min_weight)

    def check_arms(self, k: int, *, weighted_arms: bool = False) -> None:
        """Refuse a floor that k arms cannot all receive."""
        check_floor_fits(self.min_weight, k)

    def allocate(self, stats: StatsArray, rng: np.random.Generator, active: ArrayLike | None = None) -> FloatArray:
        """Weights (..., k): 1 on the highest index (ties split), equal in burn-in, floored, 0 on held arms."""
        mask = active_mask(active, stats)
        check_floor(self.min_weight, mask)
        w = ucb1_weights(stats, mask)
        burning = in_burn_in(stats, mask, self.burn_in)[..., None]
        w = np.where(burning, uniform_over(mask), w)
        return apply_floor(w, mask, self.min_weight)

    def choose(
        self, stats: StatsArray, rng: np.random.Generator, size: int | None = None, active: ArrayLike | None = None
    ) -> IntArray:
        """Per-decision arms drawn from the weights: the top-index arm, a random one among ties."""
        return sample_arms(self.allocate(stats, rng, active), rng, size)
