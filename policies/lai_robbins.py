"""The Lai-Robbins asymptotic lower bound on the regret of Bernoulli bandit policies."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy import special

from policies.stats import FloatArray

__all__ = ["bernoulli_kl", "lai_robbins_bound", "lai_robbins_constant"]


def bernoulli_kl(p: ArrayLike, q: ArrayLike) -> FloatArray:
    """KL(Ber(p) || Ber(q)) = p ln(p/q) + (1-p) ln((1-p)/(1-q)), with 0 ln 0 = 0 (Cover & Thomas, 2.3)."""
    p_arr = np.asarray(p, dtype=np.float64)
    q_arr = np.asarray(q, dtype=np.float64)
    for name, arr in (("p", p_arr), ("q", q_arr)):
        if not np.all((arr >= 0) & (arr <= 1)):  # also refuses NaN
            raise ValueError(f"{name}: Bernoulli means must lie in [0, 1]")
    return special.rel_entr(p_arr, q_arr) + special.rel_entr(1.0 - p_arr, 1.0 - q_arr)


def lai_robbins_constant(means: ArrayLike) -> float:
    """C = sum over suboptimal arms of (mu* - mu_i) / KL(mu_i, mu*) (Lai & Robbins, 1985, theorem 2).

    Any consistent policy has E[regret(T)] >= (C + o(1)) ln T. An arm that cannot be confused
    with the best (mu* = 1, so KL = infinity) contributes nothing.
    """
    m = np.asarray(means, dtype=np.float64)
    if m.ndim != 1 or m.size == 0:
        raise ValueError("means: expected a non-empty list of Bernoulli means")
    if not np.all((m >= 0) & (m <= 1)):
        raise ValueError(f"means: Bernoulli means must lie in [0, 1], got {m.tolist()}")
    best = m.max()
    sub = m[m < best]
    if sub.size == 0:
        return 0.0
    with np.errstate(divide="ignore"):
        return float(np.sum((best - sub) / bernoulli_kl(sub, best)))


def lai_robbins_bound(means: ArrayLike, horizons: ArrayLike) -> FloatArray:
    """The asymptotic lower bound C ln T on the regret at each horizon T >= 1 (Lai & Robbins, 1985)."""
    t = np.asarray(horizons, dtype=np.float64)
    if not np.all(np.isfinite(t) & (t >= 1)):
        raise ValueError("horizons: must be finite and at least 1")
    return lai_robbins_constant(means) * np.log(t)
