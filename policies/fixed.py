"""Fixed split: the operator's weights, validated, unchanged by rewards."""

from __future__ import annotations

import math

import msgspec
import numpy as np
from numpy.typing import ArrayLike

from policies.base import PolicyBase
from policies.knobs import active_mask, sample_arms
from policies.stats import FloatArray, IntArray, StatsArray

__all__ = ["FixedSplit", "validate_weights"]

WEIGHT_SUM_TOLERANCE = 1e-9


def validate_weights(weights: ArrayLike, name: str = "weights") -> FloatArray:
    """Return weights as an array, or raise ValueError if they are not a distribution.

    Refuses an empty list, NaN or infinite entries, negative entries and a sum that differs
    from 1 by more than 1e-9. Never renormalises silently.
    """
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 1 or w.size == 0:
        raise ValueError(f"{name}: expected a non-empty list of weights")
    if not np.all(np.isfinite(w)):
        raise ValueError(f"{name}: weights must be finite numbers (no NaN or infinity)")
    if np.any(w < 0):
        raise ValueError(f"{name}: weights must be non-negative, got {w.tolist()}")
    total = math.fsum(w.tolist())
    if abs(total - 1.0) > WEIGHT_SUM_TOLERANCE:
        raise ValueError(f"{name}: weights must sum to 1 (within 1e-9), got {total!r}")
    return w


class FixedSplit(PolicyBase, frozen=True, tag="fixed"):
    """Fixed split: traffic follows the operator's weights whatever the rewards."""

    weights: tuple[float, ...] = msgspec.field(default_factory=tuple)

    def __post_init__(self) -> None:
        validate_weights(self.weights)

    def allocate(self, stats: StatsArray, rng: np.random.Generator, active: ArrayLike | None = None) -> FloatArray:
        """The configured weights; a held arm's share goes to the others in proportion.

        Holding an arm is an explicit operator action, so rescaling the remaining arms is the
        stated meaning of the hold, not a silent repair of bad input.
        """
        w = np.asarray(self.weights, dtype=np.float64)
        if w.size != stats.k:
            raise ValueError(f"weights: mismatched lengths, {w.size} weights for {stats.k} arms")
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
