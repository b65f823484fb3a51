"""Build `ReportInput`s for tests from plain counts and rewards."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from bandit_service.core.reporting import ReportInput
from policies.stats import StatsArray

__all__ = ["ARMS", "bernoulli_input", "continuous_input", "total"]

ARMS = ("A", "B", "C", "D", "E")


def total(period_stats: StatsArray) -> StatsArray:
    """Sum per-period statistics (P, k) over the periods."""
    return StatsArray(period_stats.n.sum(axis=0), period_stats.total.sum(axis=0), period_stats.total_sq.sum(axis=0))


def _rows(a: np.ndarray) -> tuple[tuple[float, ...], ...]:
    return tuple(tuple(float(x) for x in row) for row in a)


def bernoulli_input(
    successes: ArrayLike, trials: ArrayLike, period_weights: ArrayLike | None = None, **overrides: Any
) -> ReportInput:
    """A bernoulli experiment from successes and trials, per arm (k,) or per period and arm (P, k).

    Every trial is a rewarded decision of a new unit; by default the weights of each period are
    the observed split (so there is no sample-ratio mismatch) and the current weights are the last period's.
    """
    s = np.atleast_2d(np.asarray(successes, dtype=np.float64))
    t = np.atleast_2d(np.asarray(trials, dtype=np.float64))
    w = t / t.sum(axis=1, keepdims=True) if period_weights is None else np.atleast_2d(np.asarray(period_weights))
    period_stats = StatsArray.from_counts(s, t)
    counts = tuple(int(x) for x in t.sum(axis=0))
    k = t.shape[1]
    fields: dict[str, Any] = {
        "arms": ARMS[:k],
        "reward": "bernoulli",
        "weights": tuple(float(x) for x in w[-1]),
        "units": counts,
        "trials": counts,
        "rewarded": counts,
        "stats": total(period_stats),
        "period_stats": period_stats,
        "period_assigned": _rows(t),
        "period_weights": _rows(w),
        "seed": 1,
        "draws": 2_000,
    }
    fields.update(overrides)
    return ReportInput(**fields)


def continuous_input(rewards: Sequence[ArrayLike], **overrides: Any) -> ReportInput:
    """A continuous experiment over one weights period from the rewards of each arm."""
    stats = StatsArray.from_rewards(rewards)
    counts = tuple(int(x) for x in stats.n)
    k = stats.k
    w = stats.n / stats.n.sum()
    fields: dict[str, Any] = {
        "arms": ARMS[:k],
        "reward": "continuous",
        "weights": tuple(float(x) for x in w),
        "units": counts,
        "trials": counts,
        "rewarded": counts,
        "stats": stats,
        "period_stats": StatsArray(stats.n[None, :], stats.total[None, :], stats.total_sq[None, :]),
        "period_assigned": (tuple(float(x) for x in stats.n),),
        "period_weights": (tuple(float(x) for x in w),),
        "seed": 1,
        "draws": 2_000,
    }
    fields.update(overrides)
    return ReportInput(**fields)
