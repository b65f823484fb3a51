"""The knobs every adaptive policy shares: active mask, burn-in, weight floor, and arm draws."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from policies.base import ConfigError
from policies.stats import BoolArray, FloatArray, IntArray, StatsArray

__all__ = [
    "active_mask",
    "apply_floor",
    "check_floor",
    "check_floor_fits",
    "check_size",
    "in_burn_in",
    "sample_arms",
    "uniform_over",
]


def active_mask(active: ArrayLike | None, stats: StatsArray) -> BoolArray:
    """Validate an optional mask of arms that may receive traffic (default: all arms)."""
    shape = stats.n.shape
    if active is None:
        return np.ones(shape, dtype=bool)
    mask = np.asarray(active)
    if mask.dtype != np.bool_:
        raise ValueError(f"active: expected booleans, got dtype {mask.dtype}")
    if mask.shape[-1:] != shape[-1:]:
        raise ValueError(f"active: mismatched lengths, {mask.shape[-1:]} mask entries for {stats.k} arms")
    try:
        mask = np.broadcast_to(mask, shape)
    except ValueError:
        raise ValueError(f"active: shape {mask.shape} does not broadcast to the statistics' shape {shape}") from None
    if not np.all(mask.any(axis=-1)):
        raise ValueError("active: at least one arm must be active")
    return mask


def uniform_over(mask: BoolArray) -> FloatArray:
    """Equal weights over the True entries of a boolean mask (last axis)."""
    m = mask.astype(np.float64)
    return m / m.sum(axis=-1, keepdims=True)


def in_burn_in(stats: StatsArray, mask: BoolArray, burn_in: int) -> BoolArray:
    """Per batch row: True while some active arm has fewer than `burn_in` observations."""
    return np.any(mask & (stats.n < burn_in), axis=-1)


def check_floor(min_weight: float, mask: BoolArray) -> None:
    """Refuse a floor that the arms of the mask (held or not) cannot all receive."""
    check_floor_fits(min_weight, int(mask.shape[-1]))


def check_floor_fits(min_weight: float, k: int) -> None:
    """Refuse a floor that k arms cannot all receive (k * floor > 1).

    The check counts every arm, held or not, so a config that is valid for an experiment stays
    valid when an arm is paused and resumed.
    """
    if k * min_weight > 1.0 + 1e-12:
        raise ConfigError("min_weight", f"{k} arms x floor {min_weight} exceeds 1")


def check_size(size: int | None) -> None:
    """Refuse a number of decisions that is not a non-negative integer (None means one draw)."""
    if size is not None and (isinstance(size, bool) or not isinstance(size, int | np.integer) or size < 0):
        raise ValueError(f"size: must be a non-negative integer or None, got {size!r}")


def apply_floor(weights: FloatArray, mask: BoolArray, min_weight: float) -> FloatArray:
    """Give every active arm at least `min_weight`, keeping the sum at 1.

    The floor is additive, w' = floor + (1 - m * floor) * w over the m active arms: it is
    equivalent to routing a fixed share m * floor of traffic uniformly and the rest by the
    policy, so it keeps the policy's ordering and ratios of the excess, and an arm with weight
    w >= floor stays a valid probability. Held arms stay at exactly 0.
    """
    if min_weight <= 0.0:
        return np.where(mask, weights, 0.0)
    check_floor(min_weight, mask)
    m = mask.sum(axis=-1, keepdims=True)
    floored = min_weight + (1.0 - m * min_weight) * weights
    return np.where(mask, floored, 0.0)


def sample_arms(weights: FloatArray, rng: np.random.Generator, size: int | None = None) -> IntArray:
    """Draw arm indices from allocation weights (..., k); returns shape (...,) or (..., size).

    One vectorised inverse-CDF draw: counts how many cumulative weights each uniform exceeds.
    """
    check_size(size)
    w = np.asarray(weights, dtype=np.float64)
    k = w.shape[-1]
    cdf = np.cumsum(w, axis=-1)
    # The cumulative sum may end at 1 - 1e-16: from the last arm with positive weight on, the
    # CDF is set to infinity, so rounding can neither overshoot the arms nor pick a trailing
    # arm of weight 0 (a held arm).
    last_positive = k - 1 - np.argmax(w[..., ::-1] > 0, axis=-1)
    cdf = np.where(np.arange(k) >= last_positive[..., None], np.inf, cdf)
    batch = w.shape[:-1]
    if size is None:
        u = rng.random(batch)
        return (u[..., None] >= cdf).sum(axis=-1).astype(np.int64)
    u = rng.random((*batch, size))
    return (u[..., None] >= cdf[..., None, :]).sum(axis=-1).astype(np.int64)
