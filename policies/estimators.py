"""Arm means that stay honest when adaptive weights meet drifting rates (the Simpson's-paradox trap).

A bandit that sends most traffic to an arm during a good period inflates that arm's naive
pooled mean. Both estimators here target the same quantity, the mean reward the arm would have
earned over all of the experiment's traffic, sum_p N_p mu_{p,a} / N: one by stratifying on
weights periods, one by weighting each decision with its logged propensity.
"""

from __future__ import annotations

from typing import Literal

import msgspec
import numpy as np
from numpy.typing import ArrayLike

from policies.stats import FloatArray, StatsArray

__all__ = ["ArmEstimates", "ipw_means", "naive_means", "stratified_means"]

EstimatorKind = Literal["naive", "stratified", "ipw_hajek", "ipw_horvitz_thompson"]


class ArmEstimates(msgspec.Struct, frozen=True):
    """One mean estimate and standard error per arm (NaN, JSON null, where undefined)."""

    method: EstimatorKind
    mean: tuple[float, ...]
    std_error: tuple[float, ...]


def _estimates(method: EstimatorKind, mean: FloatArray, se: FloatArray) -> ArmEstimates:
    return ArmEstimates(method, tuple(mean.tolist()), tuple(se.tolist()))


def naive_means(stats: StatsArray) -> ArmEstimates:
    """Pooled sample mean per arm with standard error s / sqrt(n): biased when weights and rates both drift."""
    if stats.n.ndim != 1:
        raise ValueError(f"stats: expected one value per arm, got shape {stats.n.shape}")
    with np.errstate(divide="ignore", invalid="ignore"):
        se = np.sqrt(stats.variance / stats.n)
    return _estimates("naive", stats.mean, se)


def stratified_means(period_stats: StatsArray, traffic: ArrayLike | None = None) -> ArmEstimates:
    """Post-stratified mean per arm: sum_p w_p mean_{p,a}, w_p proportional to period p's traffic.

    `period_stats` has shape (P, k): one row per weights period, inside which the allocation was
    fixed, so each within-period mean is an unbiased estimate of that period's rate. `traffic`
    defaults to each period's total count over all arms. An arm without data in some period is
    averaged over the periods where it has data (weights renormalised), which is unbiased only
    if its rate did not differ there. SE^2 = sum_p w_p^2 s_{p,a}^2 / n_{p,a} (Cochran, 1977,
    "Sampling Techniques", 5.3); NaN when a stratum has fewer than 2 observations.
    """
    if period_stats.n.ndim != 2:
        raise ValueError(f"period_stats: expected shape (periods, arms), got {period_stats.n.shape}")
    n = period_stats.n
    if traffic is None:
        t = n.sum(axis=1)
    else:
        t = np.asarray(traffic, dtype=np.float64)
        if t.shape != (n.shape[0],):
            raise ValueError(f"traffic: mismatched lengths, {t.shape} for {n.shape[0]} periods")
        if not np.all(np.isfinite(t)) or np.any(t < 0):
            raise ValueError("traffic: must be finite and non-negative")
    w = np.where(n > 0, t[:, None], 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        w = w / w.sum(axis=0)
        mean = np.where(n > 0, w * period_stats.mean, 0.0).sum(axis=0)
        var = np.where(n > 0, w**2 * period_stats.variance / n, 0.0)
        mean = np.where(n.sum(axis=0) > 0, mean, np.nan)
        se = np.sqrt(var.sum(axis=0))
    return _estimates("stratified", mean, np.where(np.isfinite(mean), se, np.nan))


def ipw_means(
    arm: ArrayLike, reward: ArrayLike, propensity: ArrayLike, k: int, self_normalised: bool = True
) -> ArmEstimates:
    """Inverse-propensity-weighted mean per arm from per-decision logs (arm, reward, propensity).

    With w_i = 1[A_i = a] / pi_i: Hajek (self-normalised) sum w_i Y_i / sum w_i, or
    Horvitz-Thompson sum w_i Y_i / N (Horvitz & Thompson, 1952; Hajek, 1971). Unbiased (HT) or
    consistent (Hajek) when each pi_i is the probability the arm had at decision time, even if
    the weights adapted to earlier rewards. Linearised standard errors:
    Hajek sqrt(sum w_i^2 (Y_i - m)^2) / sum w_i; HT sqrt(sum (w_i Y_i - m)^2) / N.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k: must be a positive integer, got {k!r}")
    a = np.asarray(arm)
    y = np.asarray(reward, dtype=np.float64)
    p = np.asarray(propensity, dtype=np.float64)
    if a.ndim != 1 or y.shape != a.shape or p.shape != a.shape:
        raise ValueError(f"arm, reward, propensity: mismatched lengths {a.shape}, {y.shape}, {p.shape}")
    if a.size == 0:
        raise ValueError("arm: no decisions")
    if not np.issubdtype(a.dtype, np.integer) or np.any(a < 0) or np.any(a >= k):
        raise ValueError(f"arm: must be integer arm indices in [0, {k})")
    if not np.all(np.isfinite(y)):
        raise ValueError("reward: must be finite (no NaN or infinity)")
    if not np.all(np.isfinite(p)) or np.any(p <= 0) or np.any(p > 1):
        raise ValueError("propensity: must lie in (0, 1]")
    w = np.zeros((a.size, k))
    w[np.arange(a.size), a] = 1.0 / p
    wy = w * y[:, None]
    big_n = float(a.size)
    with np.errstate(divide="ignore", invalid="ignore"):
        if self_normalised:
            sw = w.sum(axis=0)
            mean = wy.sum(axis=0) / sw
            resid = np.where(w > 0, y[:, None] - mean, 0.0)
            se = np.sqrt(np.sum(w**2 * resid**2, axis=0)) / sw
            return _estimates("ipw_hajek", mean, se)
        mean = wy.sum(axis=0) / big_n
        se = np.sqrt(np.sum((wy - mean) ** 2, axis=0)) / big_n
        return _estimates("ipw_horvitz_thompson", mean, se)
