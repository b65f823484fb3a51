"""Mergeable sufficient statistics of arm rewards: count, sum and sum of squares."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec
import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["ArmStats", "BoolArray", "FloatArray", "IntArray", "StatsArray"]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]


class ArmStats(msgspec.Struct, frozen=True):
    """Sufficient statistics of one arm's rewards (n, sum, sum of squares). Merge with +."""

    n: float = 0.0
    total: float = 0.0
    total_sq: float = 0.0

    def __post_init__(self) -> None:
        StatsArray([self.n], [self.total], [self.total_sq])  # same validation as the vector form

    def __add__(self, other: ArmStats) -> ArmStats:
        if not isinstance(other, ArmStats):
            return NotImplemented
        return ArmStats(self.n + other.n, self.total + other.total, self.total_sq + other.total_sq)

    @property
    def mean(self) -> float:
        """Sample mean (NaN with no observations)."""
        return self.total / self.n if self.n > 0 else float("nan")


class StatsArray:
    """Sufficient statistics of k arms, vectorised: arrays of shape (..., k), arms on the last axis.

    Leading axes are independent batches (for example simulation seeds). The arrays are
    float64 so that large counts and sums stay exact enough, and read-only so that a
    `StatsArray` can be shared between threads like a value.
    """

    __slots__ = ("n", "total", "total_sq")

    n: FloatArray
    total: FloatArray
    total_sq: FloatArray

    def __init__(self, n: ArrayLike, total: ArrayLike, total_sq: ArrayLike) -> None:
        arrays = []
        for name, value in (("n", n), ("total", total), ("total_sq", total_sq)):
            arr = np.array(value, dtype=np.float64)
            if arr.ndim == 0:
                raise ValueError(f"{name}: expected one value per arm, got a scalar")
            if arr.shape[-1] == 0:
                raise ValueError(f"{name}: the arm list is empty")
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"{name}: values must be finite (no NaN or infinity)")
            arr.flags.writeable = False
            arrays.append(arr)
        n_arr, total_arr, sq_arr = arrays
        if not (n_arr.shape == total_arr.shape == sq_arr.shape):
            raise ValueError(f"n, total, total_sq: mismatched lengths {n_arr.shape}, {total_arr.shape}, {sq_arr.shape}")
        if np.any(n_arr < 0):
            raise ValueError("n: counts must be non-negative")
        if np.any(sq_arr < 0):
            raise ValueError("total_sq: a sum of squares must be non-negative")
        # Statistics only ever grow by merging, so an arm with no observations has exact zeros;
        # anything else is a corrupted record that would silently move the posterior.
        if np.any((n_arr == 0) & ((total_arr != 0) | (sq_arr != 0))):
            raise ValueError("total, total_sq: must be 0 for an arm with n = 0")
        self.n, self.total, self.total_sq = n_arr, total_arr, sq_arr

    @classmethod
    def zeros(cls, k: int, batch: tuple[int, ...] = ()) -> StatsArray:
        """Empty statistics for k arms (optionally with leading batch axes)."""
        if k < 1:
            raise ValueError(f"k: need at least one arm, got {k}")
        z = np.zeros((*batch, k))
        return cls(z, z, z)

    @classmethod
    def from_counts(cls, successes: ArrayLike, trials: ArrayLike) -> StatsArray:
        """Statistics of 0/1 rewards from success and trial counts (sum of squares = successes)."""
        s = np.asarray(successes, dtype=np.float64)
        t = np.asarray(trials, dtype=np.float64)
        if s.shape != t.shape:
            raise ValueError(f"successes, trials: mismatched lengths {s.shape} and {t.shape}")
        for name, arr in (("successes", s), ("trials", t)):
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"{name}: counts must be finite (no NaN or infinity)")
        if np.any(t < 0):
            raise ValueError("trials: counts must be non-negative")
        if np.any(s < 0) or np.any(s > t):
            raise ValueError("successes: must lie between 0 and trials")
        return cls(t, s, s)

    @classmethod
    def from_rewards(cls, rewards: Sequence[ArrayLike]) -> StatsArray:
        """Statistics from one sequence of observed rewards per arm."""
        if len(rewards) == 0:
            raise ValueError("rewards: the arm list is empty")
        per_arm = [np.asarray(r, dtype=np.float64).ravel() for r in rewards]
        for i, r in enumerate(per_arm):
            if not np.all(np.isfinite(r)):
                raise ValueError(f"rewards[{i}]: rewards must be finite (no NaN or infinity)")
        return cls([r.size for r in per_arm], [r.sum() for r in per_arm], [(r * r).sum() for r in per_arm])

    @classmethod
    def from_arms(cls, arms: Sequence[ArmStats]) -> StatsArray:
        """Stack per-arm statistics into one vectorised value."""
        if len(arms) == 0:
            raise ValueError("arms: the arm list is empty")
        return cls([a.n for a in arms], [a.total for a in arms], [a.total_sq for a in arms])

    def __add__(self, other: StatsArray) -> StatsArray:
        if not isinstance(other, StatsArray):
            return NotImplemented
        if self.n.shape != other.n.shape:
            raise ValueError(f"cannot merge statistics of shapes {self.n.shape} and {other.n.shape}")
        return StatsArray(self.n + other.n, self.total + other.total, self.total_sq + other.total_sq)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, StatsArray):
            return NotImplemented
        return bool(
            np.array_equal(self.n, other.n)
            and np.array_equal(self.total, other.total)
            and np.array_equal(self.total_sq, other.total_sq)
        )

    def __getitem__(self, index: int) -> ArmStats:
        """The statistics of one arm (last axis), for unbatched values."""
        if self.n.ndim != 1:
            raise ValueError("indexing a single arm needs unbatched statistics")
        return ArmStats(float(self.n[index]), float(self.total[index]), float(self.total_sq[index]))

    def __repr__(self) -> str:
        return f"StatsArray(n={self.n.tolist()}, total={self.total.tolist()}, total_sq={self.total_sq.tolist()})"

    @property
    def k(self) -> int:
        """Number of arms."""
        return int(self.n.shape[-1])

    def take(self, order: ArrayLike) -> StatsArray:
        """Reorder (or select) arms along the last axis."""
        idx = np.asarray(order, dtype=np.int64)
        return StatsArray(self.n[..., idx], self.total[..., idx], self.total_sq[..., idx])

    def rows(self, mask: ArrayLike) -> StatsArray:
        """The rows of the leading axis (e.g. weights periods of a (P, k) array) where `mask` holds."""
        keep = np.asarray(mask, dtype=bool)
        return StatsArray(self.n[keep], self.total[keep], self.total_sq[keep])

    def pooled(self) -> StatsArray:
        """Sums over the leading axis: per-period statistics (P, k) pooled into per-arm ones (k,)."""
        return StatsArray(self.n.sum(axis=0), self.total.sum(axis=0), self.total_sq.sum(axis=0))

    @property
    def mean(self) -> FloatArray:
        """Sample mean per arm; NaN where an arm has no observations."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.n > 0, self.total / np.where(self.n > 0, self.n, 1.0), np.nan)

    @property
    def variance(self) -> FloatArray:
        """Unbiased sample variance per arm (n - 1 denominator); NaN where n < 2.

        Computed as (sum_sq - n * mean^2) / (n - 1), clipped at 0 against rounding.
        """
        n = self.n
        safe_n = np.where(n > 0, n, 1.0)
        ss = np.maximum(self.total_sq - self.total * self.total / safe_n, 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(n > 1, ss / np.where(n > 1, n - 1.0, 1.0), np.nan)

    @property
    def std(self) -> FloatArray:
        """Sample standard deviation per arm; NaN where n < 2."""
        return np.sqrt(self.variance)
