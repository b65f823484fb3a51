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

__all__ = [
    "ArmEstimates",
    "EstimatorKind",
    "IpwDifference",
    "ipw_difference",
    "ipw_means",
    "naive_means",
    "stratified_means",
]

EstimatorKind = Literal["naive", "stratified", "ipw_hajek", "ipw_horvitz_thompson"]


class ArmEstimates(msgspec.Struct, frozen=True):
    """One mean estimate and standard error per arm (NaN, JSON null, where undefined)."""

    method: EstimatorKind
    mean: tuple[float, ...]
    std_error: tuple[float, ...]


class IpwDifference(msgspec.Struct, frozen=True):
    """Per arm, the IPW estimate of arm minus control and its standard error (NaN on the control)."""

    method: EstimatorKind  # "ipw_hajek" or "ipw_horvitz_thompson"
    control: int
    difference: tuple[float, ...]
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
    "Sampling Techniques", 5.3). A stratum with a single observation has no sample variance: it
    borrows the arm's variance pooled over all periods (slightly conservative, since the pooled
    variance also holds the spread between period means), so one short period does not make the
    SE undefined; the SE is NaN only when the arm has fewer than 2 observations in all.
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
    pooled = period_stats.pooled()
    s2 = np.where(n >= 2, period_stats.variance, pooled.variance)
    with np.errstate(divide="ignore", invalid="ignore"):
        w = w / w.sum(axis=0)
        mean = np.where(n > 0, w * period_stats.mean, 0.0).sum(axis=0)
        var = np.where(n > 0, w**2 * s2 / n, 0.0)
        mean = np.where(n.sum(axis=0) > 0, mean, np.nan)
        se = np.sqrt(var.sum(axis=0))
    return _estimates("stratified", mean, np.where(np.isfinite(mean), se, np.nan))


def _ipw_weights(arm: ArrayLike, reward: ArrayLike, propensity: ArrayLike, k: int) -> tuple[FloatArray, FloatArray]:
    """Checked per-decision weights w_ia = 1[A_i = a] / pi_i, shape (N, k), and rewards, shape (N,)."""
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
    return w, y


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
    w, y = _ipw_weights(arm, reward, propensity, k)
    wy = w * y[:, None]
    big_n = float(y.size)
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


def ipw_difference(
    arm: ArrayLike, reward: ArrayLike, propensity: ArrayLike, k: int, control: int, self_normalised: bool = True
) -> IpwDifference:
    """IPW estimate of each arm's mean minus the control's, with the standard error of the difference.

    The SE comes from the per-decision influence of the difference itself, so it holds the
    covariance of the two arms' estimates (both are sums over the same N decisions).
    Horvitz-Thompson: z_i = (w_ia - w_ic) Y_i, d = mean(z), SE = sqrt(sum (z_i - d)^2) / N; this
    is Var_a + Var_c + 2 m_a m_c / N, larger than the sum of the two variances whenever the means
    share a sign. Hajek (linearised, Hajek, 1971; Sarndal, Swensson & Wretman, 1992, 5.7):
    phi_i = w_ia (Y_i - m_a) / mean(w_a) - w_ic (Y_i - m_c) / mean(w_c), SE = sqrt(sum phi_i^2) / N;
    each decision feeds one arm only, so here the cross term vanishes. NaN on the control, and
    (Hajek) for an arm with no decisions.
    """
    if isinstance(control, bool) or not isinstance(control, (int, np.integer)) or not 0 <= control < k:
        raise ValueError(f"control: must be an arm index in [0, {k}), got {control!r}")
    w, y = _ipw_weights(arm, reward, propensity, k)
    big_n = float(y.size)
    is_control = np.arange(k) == control
    with np.errstate(divide="ignore", invalid="ignore"):
        if self_normalised:
            mean_w = w.mean(axis=0)
            mean = (w * y[:, None]).sum(axis=0) / w.sum(axis=0)
            phi = np.where(w > 0, w * (y[:, None] - mean) / mean_w, 0.0)
            diff = mean - mean[control]
            se = np.sqrt(np.sum((phi - phi[:, control : control + 1]) ** 2, axis=0)) / big_n
            method: EstimatorKind = "ipw_hajek"
        else:
            z = (w - w[:, control : control + 1]) * y[:, None]
            diff = z.mean(axis=0)
            se = np.sqrt(np.sum((z - diff) ** 2, axis=0)) / big_n
            method = "ipw_horvitz_thompson"
    diff = np.where(is_control, np.nan, diff)
    se = np.where(is_control | np.isnan(diff), np.nan, se)
    return IpwDifference(method, int(control), tuple(diff.tolist()), tuple(se.tolist()))
