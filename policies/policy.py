"""The policy interface and the tagged union of policy configurations."""

from __future__ import annotations

from typing import Protocol

import msgspec
import numpy as np
from numpy.typing import ArrayLike

from policies.epsilon_greedy import EpsilonGreedy
from policies.fixed import FixedSplit
from policies.stats import FloatArray, IntArray, StatsArray
from policies.thompson import ThompsonSampling
from policies.ucb import UCB1

__all__ = ["Policy", "PolicyConfig", "decode_policy"]

# Adding a policy: one module with a frozen PolicyBase subclass, one member here.
PolicyConfig = FixedSplit | EpsilonGreedy | ThompsonSampling | UCB1


class Policy(Protocol):
    """What every policy offers: batch allocation weights and per-decision draws."""

    def allocate(self, stats: StatsArray, rng: np.random.Generator, active: ArrayLike | None = None) -> FloatArray:
        """Weights of shape (..., k): finite, non-negative, summing to 1 along the last axis."""
        ...

    def choose(
        self, stats: StatsArray, rng: np.random.Generator, size: int | None = None, active: ArrayLike | None = None
    ) -> IntArray:
        """Arm indices of shape (...,) or (..., size), one per decision."""
        ...


def decode_policy(data: bytes | str) -> PolicyConfig:
    """Decode a policy config from JSON like `{"kind": "thompson", "min_weight": 0.01}`."""
    return msgspec.json.decode(data, type=PolicyConfig)
