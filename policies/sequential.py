"""Always-valid p-values and confidence sequences for arm-vs-control differences: the mixture SPRT.

An operator may look at these after every batch and stop whenever they like: the chance that
the p-value ever drops below alpha under the null, or that the confidence sequence ever misses
the true difference, is at most alpha (Johari, Koomen, Pekelis & Walsh, 2017, "Peeking at A/B
tests", KDD; Johari, Pekelis & Walsh, 2022, "Always valid inference", Operations Research).
"""

from __future__ import annotations

import math

import msgspec
import numpy as np
from numpy.typing import ArrayLike

from policies.frequentist import check_control, check_level
from policies.stats import FloatArray, StatsArray

__all__ = [
    "SequentialArrays",
    "SequentialComparison",
    "msprt",
    "msprt_arrays",
    "msprt_estimate",
    "msprt_running",
    "tuning_rho",
]

DEFAULT_TUNING_N = 5_000.0


class SequentialArrays(msgspec.Struct, frozen=True):
    """Always-valid p-values and confidence sequences, arrays (..., k); the control's column is NaN."""

    control: int
    alpha: float
    difference: FloatArray
    p_value: FloatArray
    lower: FloatArray
    upper: FloatArray
    tau: FloatArray  # the mixture standard deviation used, on the scale of the difference


class SequentialComparison(msgspec.Struct, frozen=True):
    """One arm against the control: always-valid p-value and (1 - alpha) confidence sequence."""

    arm: int
    control: int
    alpha: float
    difference: float
    p_value: float
    interval: tuple[float, float]
    tau: float


def tuning_rho(alpha: float, tuning_n: float) -> float:
    """Mixture scale rho (tau = rho * unit sd) making the boundary tightest near `tuning_n` units per arm.

    rho^2 = (-2 log alpha + log(1 - 2 log alpha)) / n, the closed-form approximation to the
    optimum in Howard, Ramdas, McAuliffe & Sekhon (2021), "Time-uniform, nonparametric,
    nonasymptotic confidence sequences", Ann. Statist.
    """
    check_level(alpha, "alpha")
    if isinstance(tuning_n, bool) or not isinstance(tuning_n, (int, float)) or not 0 < tuning_n < math.inf:
        raise ValueError(f"tuning_n: must be a positive number, got {tuning_n!r}")
    la = -2.0 * math.log(alpha)
    return math.sqrt((la + math.log(la + 1.0)) / tuning_n)


def msprt_arrays(
    stats: StatsArray, control: int, alpha: float = 0.05, tau: float | None = None, tuning_n: float = DEFAULT_TUNING_N
) -> SequentialArrays:
    """mSPRT with a N(0, tau^2) mixture on the difference d = m_i - m_c, from the current statistics.

    With V = s_i^2/n_i + s_c^2/n_c (plug-in sample variances) and r = tau^2 / V, the mixture
    likelihood ratio is Lambda = (1 + r)^(-1/2) exp(d^2 r / (2 V (1 + r))), the p-value
    min(1, 1/Lambda) and the confidence sequence d +- sqrt(V (1 + r) / r (log(1 + r) - 2 log alpha))
    (Johari et al., 2017; the same boundary as the normal-mixture confidence sequence of Howard et
    al., 2021). Proportions use the normal approximation (0/1 rewards have
    sample variance ~ p(1 - p)). Without `tau`, tau^2 = rho^2 (s_i^2 + s_c^2) with `tuning_rho`.
    An arm with fewer than 2 observations or zero variance carries no evidence yet: p = 1 and
    an unbounded interval. This one-shot p-value is valid at this look; over a sequence of
    looks use `msprt_running`, which keeps the running minimum. The guarantee is exact for a
    fixed allocation ratio with known variances; plug-in variances and changing bandit weights
    make it approximate (asymptotically valid).
    """
    check_control(control, stats.k)
    check_level(alpha, "alpha")
    rho = tuning_rho(alpha, tuning_n)
    if tau is not None and (isinstance(tau, bool) or not isinstance(tau, (int, float)) or not 0 < tau < math.inf):
        raise ValueError(f"tau: must be a positive finite number, got {tau!r}")
    c = slice(control, control + 1)
    var = stats.variance
    mean = stats.mean
    with np.errstate(divide="ignore", invalid="ignore"):
        v = var / stats.n + (var / stats.n)[..., c]
        diff = mean - mean[..., c]
        tau2 = rho**2 * (var + var[..., c]) if tau is None else np.full(v.shape, tau**2)
    p, lower, upper = msprt_estimate(diff, v, tau2, alpha)
    is_control = np.arange(stats.k) == control

    def out(a: FloatArray) -> FloatArray:
        return np.where(is_control, np.nan, a)

    return SequentialArrays(
        control=int(control),
        alpha=float(alpha),
        difference=out(diff),
        p_value=out(p),
        lower=out(lower),
        upper=out(upper),
        tau=out(np.sqrt(tau2)),
    )


def msprt_estimate(
    difference: ArrayLike, variance: ArrayLike, tau2: ArrayLike, alpha: float = 0.05
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Always-valid p-value and confidence sequence of any asymptotically normal estimate of a difference.

    `difference` d with sampling variance V (shrinking as 1/n) and a N(0, tau2) mixture: the
    mixture likelihood ratio Lambda = (1 + r)^(-1/2) exp(d^2 r / (2 V (1 + r))) with r = tau2 / V,
    p = min(1, 1/Lambda), interval d +- sqrt(V (1 + r) / r (log(1 + r) - 2 log alpha)) (Johari et
    al., 2017; Howard et al., 2021). Works for a pooled difference of means and for a
    period-stratified one alike. Where V or tau2 is not positive and finite, or d is undefined,
    there is no evidence yet: p = 1 and an unbounded interval. Returns (p, lower, upper).
    """
    check_level(alpha, "alpha")
    d = np.asarray(difference, dtype=np.float64)
    v = np.asarray(variance, dtype=np.float64)
    t2 = np.asarray(tau2, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = t2 / v
        informative = np.isfinite(r) & (r > 0) & np.isfinite(d) & (v > 0)
        r = np.where(informative, r, 1.0)
        v = np.where(informative, v, 1.0)
        log_lambda = -0.5 * np.log1p(r) + 0.5 * d**2 / v * r / (1.0 + r)
        half = np.sqrt(v * (1.0 + r) / r * (np.log1p(r) - 2.0 * math.log(alpha)))
    p = np.where(informative, np.minimum(1.0, np.exp(-log_lambda)), 1.0)
    half = np.where(informative, half, np.inf)
    d = np.where(informative, d, np.where(np.isfinite(d), d, np.nan))
    return p, d - half, d + half


def msprt(
    stats: StatsArray, control: int, alpha: float = 0.05, tau: float | None = None, tuning_n: float = DEFAULT_TUNING_N
) -> tuple[SequentialComparison, ...]:
    """mSPRT of each non-control arm against the control at the current look (see `msprt_arrays`)."""
    if stats.n.ndim != 1:
        raise ValueError(f"stats: expected one value per arm, got shape {stats.n.shape}; use msprt_arrays")
    a = msprt_arrays(stats, control, alpha, tau, tuning_n)
    return tuple(
        SequentialComparison(
            arm=i,
            control=a.control,
            alpha=a.alpha,
            difference=float(a.difference[i]),
            p_value=float(a.p_value[i]),
            interval=(float(a.lower[i]), float(a.upper[i])),
            tau=float(a.tau[i]),
        )
        for i in range(stats.k)
        if i != control
    )


def msprt_running(
    path: StatsArray, control: int, alpha: float = 0.05, tau: float | None = None, tuning_n: float = DEFAULT_TUNING_N
) -> SequentialArrays:
    """Always-valid p-values and confidence sequences along a path of looks.

    `path` holds cumulative statistics at each look, shape (..., T, k) with looks on axis -2.
    The p-value is the running minimum of 1/Lambda (monotone non-increasing) and the
    confidence sequence the running intersection of the intervals (Johari et al., 2017).
    """
    if path.n.ndim < 2:
        raise ValueError(f"path: expected looks on axis -2, shape (..., T, k), got {path.n.shape}")
    if np.any(np.diff(path.n, axis=-2) < 0):
        raise ValueError("path: counts must be cumulative (non-decreasing from one look to the next)")
    a = msprt_arrays(path, control, alpha, tau, tuning_n)
    return SequentialArrays(
        control=a.control,
        alpha=a.alpha,
        difference=a.difference,
        p_value=np.minimum.accumulate(a.p_value, axis=-2),
        lower=np.maximum.accumulate(a.lower, axis=-2),
        upper=np.minimum.accumulate(a.upper, axis=-2),
        tau=a.tau,
    )
