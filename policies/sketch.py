"""A mergeable quantile sketch with a relative-accuracy guarantee, for latency-like metrics."""

from __future__ import annotations

import math
from typing import Any

import msgspec
import numpy as np
from numpy.typing import ArrayLike

__all__ = ["QuantileSketch"]


class QuantileSketch(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Log-bucketed histogram of non-negative values (DDSketch: Masson, Rim & Lee, 2019, VLDB).

    With gamma = (1 + a) / (1 - a), a value x > 0 falls in bucket i = ceil(log_gamma x), which
    covers (gamma^(i-1), gamma^i] and is represented by 2 gamma^i / (gamma + 1): every quantile
    is returned within relative error a of the exact order statistic x_(floor(q (n - 1))).
    Buckets are counts, so sketches of two periods or two replicas merge exactly with `+`, in
    any order. Zeros are counted apart. Memory grows with the log of the value range (about
    1,000 buckets for a = 0.01 over nine decades), so no bucket collapsing is needed here.
    """

    relative_accuracy: float = 0.01
    count: int = 0
    zero_count: int = 0
    total: float = 0.0
    minimum: float | None = None
    maximum: float | None = None
    keys: tuple[int, ...] = ()
    counts: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        a = self.relative_accuracy
        if isinstance(a, bool) or not isinstance(a, (int, float)) or not 0.0 < a < 1.0:
            raise ValueError(f"relative_accuracy: must be a number in (0, 1), got {a!r}")
        if len(self.keys) != len(self.counts):
            raise ValueError(f"keys, counts: mismatched lengths {len(self.keys)} and {len(self.counts)}")
        if any(b <= a for a, b in zip(self.keys, self.keys[1:], strict=False)):
            raise ValueError("keys: must be strictly increasing")
        if any(c <= 0 for c in self.counts) or self.zero_count < 0:
            raise ValueError("counts, zero_count: bucket counts must be positive (zero_count non-negative)")
        if self.count != self.zero_count + sum(self.counts):
            raise ValueError("count: must equal zero_count plus the bucket counts")
        if (self.count == 0) != (self.minimum is None or self.maximum is None):
            raise ValueError("minimum, maximum: must be set exactly when the sketch holds values")

    @property
    def gamma(self) -> float:
        """Bucket growth factor (1 + a) / (1 - a)."""
        return (1.0 + self.relative_accuracy) / (1.0 - self.relative_accuracy)

    @property
    def mean(self) -> float:
        """Exact mean of the values added (NaN when empty)."""
        return self.total / self.count if self.count else math.nan

    def add(self, values: ArrayLike) -> QuantileSketch:
        """A new sketch holding these values (a scalar or an array) as well."""
        v = np.asarray(values, dtype=np.float64).ravel()
        if not np.all(np.isfinite(v)):
            raise ValueError("values: must be finite (no NaN or infinity)")
        if np.any(v < 0):
            raise ValueError("values: must be non-negative (latencies, sizes, costs)")
        if v.size == 0:
            return self
        positive = v[v > 0]
        keys = np.ceil(np.log(positive) / math.log(self.gamma)).astype(np.int64)
        uniq, counts = np.unique(keys, return_counts=True)
        added = QuantileSketch(
            relative_accuracy=self.relative_accuracy,
            count=int(v.size),
            zero_count=int(v.size - positive.size),
            total=float(v.sum()),
            minimum=float(v.min()),
            maximum=float(v.max()),
            keys=tuple(uniq.tolist()),
            counts=tuple(counts.tolist()),
        )
        return self + added

    def __add__(self, other: QuantileSketch) -> QuantileSketch:
        if not isinstance(other, QuantileSketch):
            return NotImplemented
        if other.relative_accuracy != self.relative_accuracy:
            raise ValueError("other: cannot merge sketches with different relative_accuracy")
        keys = np.array(self.keys + other.keys, dtype=np.int64)
        counts = np.array(self.counts + other.counts, dtype=np.int64)
        uniq, inverse = np.unique(keys, return_inverse=True)
        merged = np.bincount(inverse, weights=counts, minlength=uniq.size).astype(np.int64)
        bounds = [x for x in (self.minimum, self.maximum, other.minimum, other.maximum) if x is not None]
        return QuantileSketch(
            relative_accuracy=self.relative_accuracy,
            count=self.count + other.count,
            zero_count=self.zero_count + other.zero_count,
            total=self.total + other.total,
            minimum=min(bounds) if bounds else None,
            maximum=max(bounds) if bounds else None,
            keys=tuple(uniq.tolist()),
            counts=tuple(merged.tolist()),
        )

    def quantile(self, q: float) -> float:
        """The q-quantile (0 <= q <= 1), within the relative accuracy; NaN when empty.

        Clamped to the exact minimum and maximum, which can only move it closer to the truth
        (and makes q = 0 and q = 1 exact).
        """
        if isinstance(q, bool) or not isinstance(q, (int, float)) or not 0.0 <= q <= 1.0:
            raise ValueError(f"q: must be a number in [0, 1], got {q!r}")
        if self.count == 0 or self.minimum is None or self.maximum is None:
            return math.nan
        if q == 1.0:
            return self.maximum
        rank = q * (self.count - 1)
        if rank < self.zero_count:
            return 0.0
        cumulative = self.zero_count + np.cumsum(self.counts)
        i = int(np.searchsorted(cumulative, rank, side="right"))
        g = self.gamma
        value = 2.0 * math.exp(min(self.keys[i] * math.log(g), 709.0)) / (g + 1.0)  # 709: no overflow
        return min(max(value, self.minimum), self.maximum)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict for storage."""
        return msgspec.to_builtins(self)  # type: ignore[no-any-return]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> QuantileSketch:
        """Rebuild (and validate) a sketch stored with `to_dict`; ValueError if it is malformed."""
        return msgspec.convert(data, cls)
