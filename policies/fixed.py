"""Fixed split: the operator's weights, validated, unchanged by rewards."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Annotated, ClassVar, Self

import msgspec
import numpy as np
from numpy.typing import ArrayLike

from policies.allocation import active_mask, sample_arms
from policies.base import ConfigError, PolicyBase
from policies.posterior import RewardKind
from policies.stats import FloatArray, IntArray, StatsArray

__all__ = ["FixedSplit", "validate_weights"]

WEIGHT_SUM_TOLERANCE = 1e-9
MAX_WEIGHTS = 10_000  # bounds the decoded list; the length is checked against the arms by check_arms


def validate_weights(weights: ArrayLike, name: str = "weights") -> FloatArray:
    """Return weights as an array, or raise ConfigError (field `name`) if they are not a distribution.

    Refuses an empty list, NaN or infinite entries, negative entries and a sum that differs
    from 1 by more than 1e-9. Never renormalises silently.
    """
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 1 or w.size == 0:
        raise ConfigError(name, "expected a non-empty list of weights")
    if not np.all(np.isfinite(w)):
        raise ConfigError(name, "weights must be finite numbers (no NaN or infinity)")
    if np.any(w < 0):
        raise ConfigError(name, f"weights must be non-negative, got {w.tolist()}")
    total = math.fsum(w.tolist())
    if abs(total - 1.0) > WEIGHT_SUM_TOLERANCE:
        raise ConfigError(name, f"weights must sum to 1 (within 1e-9), got {total!r}")
    return w


class FixedSplit(PolicyBase, frozen=True, tag="fixed"):
    """Fixed split: traffic follows the operator's weights whatever the rewards.

    Empty `weights` mean an equal split over however many arms the statistics have.
    """

    adaptive: ClassVar[bool] = False

    weights: Annotated[tuple[float, ...], msgspec.Meta(max_length=MAX_WEIGHTS)] = ()

    def __post_init__(self) -> None:
        if self.weights:
            validate_weights(self.weights)

    def check_arms(self, k: int, *, weighted_arms: bool = False) -> None:
        """Refuse weights of the wrong length, or weights given both here and on the arms."""
        if not self.weights:
            return
        if len(self.weights) != k:
            raise ConfigError("weights", f"mismatched lengths, {len(self.weights)} weights for {k} arms")
        if weighted_arms:
            raise ConfigError("weights", "give the weights on the policy or on the arms, not both")

    def bind(self, *, reward: RewardKind, weights: Sequence[float]) -> Self:
        """This split with the experiment's current weights (its own while the experiment has none)."""
        return type(self)(weights=tuple(weights)) if weights else self

    def initial_weights(self, k: int) -> tuple[float, ...]:
        """This split's weights, or an equal split over k arms if it names none."""
        return self.weights or super().initial_weights(k)

    def allocate(self, stats: StatsArray, rng: np.random.Generator, active: ArrayLike | None = None) -> FloatArray:
        """The configured weights; a held arm's share goes to the others in proportion.

        Holding an arm is an explicit operator action, so rescaling the remaining arms is the
        stated meaning of the hold, not a silent repair of bad input.
        """
        w = np.asarray(self.initial_weights(stats.k), dtype=np.float64)
        if w.size != stats.k:
            raise ConfigError("weights", f"mismatched lengths, {w.size} weights for {stats.k} arms")
        mask = active_mask(active, stats)
        kept = np.where(mask, w, 0.0)
        total = kept.sum(axis=-1, keepdims=True)
        if np.any(total <= 0):
            raise ValueError("active: every active arm has weight 0 in this fixed split")
        return np.broadcast_to(kept / total, stats.n.shape).copy()

    def choose(
        self, stats: StatsArray, rng: np.random.Generator, size: int | None = None, active: ArrayLike | None = None
    ) -> IntArray:
        """Per-decision arm draws from the fixed weights."""
        return sample_arms(self.allocate(stats, rng, active), rng, size)
