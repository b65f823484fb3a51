"""Multiple-comparison corrections of p-values across arms: Bonferroni, Holm, or none."""

from __future__ import annotations

from typing import Literal, assert_never

import numpy as np
from numpy.typing import ArrayLike

from policies.stats import FloatArray

__all__ = ["Correction", "adjust_p_values", "bonferroni", "holm"]

Correction = Literal["holm", "bonferroni", "none"]


def _check(p_values: ArrayLike) -> FloatArray:
    p = np.asarray(p_values, dtype=np.float64)
    if p.ndim == 0 or p.shape[-1] == 0:
        raise ValueError("p_values: expected a non-empty list of p-values")
    if not np.all(np.isfinite(p)):
        raise ValueError("p_values: must be finite (no NaN); leave undefined comparisons out")
    if np.any((p < 0.0) | (p > 1.0)):
        raise ValueError("p_values: must lie in [0, 1]")
    return p


def bonferroni(p_values: ArrayLike) -> FloatArray:
    """Bonferroni-adjusted p-values min(1, m p_i) over the last axis (family-wise error control)."""
    p = _check(p_values)
    return np.minimum(p * p.shape[-1], 1.0)


def holm(p_values: ArrayLike) -> FloatArray:
    """Holm step-down adjusted p-values over the last axis (Holm, 1979, Scand. J. Statist. 6).

    With p sorted ascending, p~_(i) = max_{j <= i} min(1, (m - j + 1) p_(j)): uniformly more
    powerful than Bonferroni with the same family-wise error guarantee.
    """
    p = _check(p_values)
    m = p.shape[-1]
    order = np.argsort(p, axis=-1, kind="stable")
    sorted_p = np.take_along_axis(p, order, axis=-1)
    stepped = np.maximum.accumulate(np.minimum(sorted_p * (m - np.arange(m)), 1.0), axis=-1)
    out = np.empty_like(p)
    np.put_along_axis(out, order, stepped, axis=-1)
    return out


def adjust_p_values(p_values: ArrayLike, method: Correction = "holm") -> FloatArray:
    """Adjusted p-values by the named correction ("holm", "bonferroni", or "none": the p-values as given)."""
    if method not in ("holm", "bonferroni", "none"):
        raise ValueError(f"method: must be 'holm', 'bonferroni' or 'none', got {method!r}")
    match method:
        case "holm":
            return holm(p_values)
        case "bonferroni":
            return bonferroni(p_values)
        case "none":
            return _check(p_values)
        case _:
            assert_never(method)
