"""Relative-lift intervals (mean_t / mean_c - 1) that respect the ratio's range: log ratio and Fieller.

The plain delta-method interval rel +- z sqrt(v_t / m_c^2 + m_t^2 v_c / m_c^4) is symmetric about
the estimate, so at small counts it can fall below -100% and it under-covers (the ratio's
sampling distribution is skewed). The log-ratio interval is built on the log scale and
exponentiated, so its lower end stays above -100%; Fieller's interval inverts the exact pivot of
a ratio of two normal estimators, and says honestly when the control's mean is too noisy to bound
the ratio at all.
"""

from __future__ import annotations

import math
from typing import Literal

import msgspec
import numpy as np
from numpy.typing import ArrayLike
from scipy import stats as sps

from policies.stats import BoolArray, FloatArray

__all__ = ["RatioMethod", "RelativeIntervals", "fieller_interval", "log_ratio_interval"]

RatioMethod = Literal["log_ratio", "fieller"]

# Haldane-Anscombe-style correction of an arm with no events (or only events): events + 0.5 out of
# n + 1, so that log(mean) and the log-scale variance stay finite.
HALF_EVENT = 0.5


class RelativeIntervals(msgspec.Struct, frozen=True):
    """Relative lift and its interval per arm, arrays of one broadcast shape (NaN where undefined)."""

    method: RatioMethod
    relative: FloatArray  # mean_t / mean_c - 1 (NaN where undefined)
    lower: FloatArray  # NaN where undefined or unbounded
    upper: FloatArray
    defined: BoolArray  # False where the control's mean is 0 (or missing): the ratio is undefined
    bounded: BoolArray  # False where undefined, or where Fieller's set is unbounded (control mean ~ 0)


def _level(level: float) -> float:
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0.0 < level < 1.0:
        raise ValueError(f"level: must be a number in (0, 1), got {level!r}")
    return float(level)


def _variance(name: str, value: ArrayLike) -> FloatArray:
    v = np.asarray(value, dtype=np.float64)
    if np.any(v < 0):  # NaN compares False: a missing variance propagates as NaN
        raise ValueError(f"{name}: a variance of the mean must be non-negative")
    if np.any(np.isinf(v)):
        raise ValueError(f"{name}: must be finite (NaN marks a missing value)")
    return v


def _finite_or_nan(name: str, value: ArrayLike) -> FloatArray:
    a = np.asarray(value, dtype=np.float64)
    if np.any(np.isinf(a)):
        raise ValueError(f"{name}: must be finite (NaN marks a missing value)")
    return a


def _critical(level: float, df: ArrayLike) -> FloatArray:
    """Two-sided critical value per entry: normal where df is infinite, Student t(df) elsewhere, NaN for NaN."""
    d = np.asarray(df, dtype=np.float64)
    if np.any(d <= 0):  # NaN compares False: a missing df gives a NaN interval
        raise ValueError(f"df: must be positive (or infinity), got {df!r}")
    tail = 0.5 + level / 2.0
    return np.where(np.isinf(d), sps.norm.ppf(tail), sps.t.ppf(tail, np.where(np.isinf(d), 1.0, d)))


def _corrected(mean: FloatArray, var: FloatArray, n: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Mean and variance of an arm at 0 or 1 replaced by (events + 0.5) / (n + 1) and p'(1 - p') / (n + 1)."""
    edge = (mean == 0.0) | (mean == 1.0)
    p = (mean * n + HALF_EVENT) / (n + 1.0)
    return np.where(edge, p, mean), np.where(edge, p * (1.0 - p) / (n + 1.0), var)


def log_ratio_interval(
    mean_t: ArrayLike,
    var_t: ArrayLike,
    n_t: ArrayLike,
    mean_c: ArrayLike,
    var_c: ArrayLike,
    n_c: ArrayLike,
    level: float = 0.95,
) -> RelativeIntervals:
    """Relative lift of a proportion with a delta-method interval on log(m_t / m_c), exponentiated.

    se = sqrt(v_t / m_t^2 + v_c / m_c^2) with v the variance of each mean; the interval is
    exp(log(m_t / m_c) +- z se) - 1, so its lower end is always above -1. With pooled counts,
    v = p(1 - p)/n, this is the "log" interval of Katz, Baptista, Azen & Pike (1978, Biometrics 34,
    469-474), statsmodels `confint_proportions_2indep(method="log", compare="ratio")`; a stratified
    v works the same way. An arm whose mean is exactly 0 or 1 (no events, or only events) has its
    mean and variance taken as (x + 0.5) / (n + 1) and p'(1 - p') / (n + 1) (Haldane-Anscombe style)
    for the interval only, so the interval stays finite; `relative` keeps the raw estimate. A
    control mean of 0 (or NaN) leaves the lift undefined: NaN and `defined` False.
    """
    crit = sps.norm.ppf(0.5 + _level(level) / 2.0)
    mt, mc = _finite_or_nan("mean_t", mean_t), _finite_or_nan("mean_c", mean_c)
    for name, m in (("mean_t", mt), ("mean_c", mc)):
        if np.any((m < 0) | (m > 1)):
            raise ValueError(f"{name}: a proportion must lie in [0, 1]")
    vt, vc = _variance("var_t", var_t), _variance("var_c", var_c)
    nt, nc = _finite_or_nan("n_t", n_t), _finite_or_nan("n_c", n_c)
    if np.any(nt <= 0) or np.any(nc <= 0):
        raise ValueError("n_t, n_c: counts must be positive")
    mt, mc, vt, vc, nt, nc = np.broadcast_arrays(mt, mc, vt, vc, nt, nc)
    defined = np.isfinite(mc) & (mc != 0.0)
    mt_, vt_ = _corrected(mt, vt, nt)
    mc_, vc_ = _corrected(mc, vc, nc)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_ratio = np.log(mt_) - np.log(mc_)
        se = np.sqrt(vt_ / mt_**2 + vc_ / mc_**2)
        relative = np.where(defined, mt / mc - 1.0, np.nan)
    lower = np.where(defined, np.expm1(log_ratio - crit * se), np.nan)
    upper = np.where(defined, np.expm1(log_ratio + crit * se), np.nan)
    return RelativeIntervals("log_ratio", relative, lower, upper, defined, defined.copy())


def fieller_interval(
    mean_t: ArrayLike,
    var_t: ArrayLike,
    mean_c: ArrayLike,
    var_c: ArrayLike,
    level: float = 0.95,
    df: ArrayLike = math.inf,
) -> RelativeIntervals:
    """Relative lift of a mean with Fieller's interval for the ratio of two independent estimators.

    The set {R : (m_t - R m_c)^2 <= c^2 (v_t + R^2 v_c)} (Fieller, 1954, JRSS B 16, 175-185; zero
    covariance), c the normal (df = inf) or Student t(df) quantile (df broadcastable: a Welch df
    per arm; NaN gives NaN ends). With r = m_t / m_c and
    g = c^2 v_c / m_c^2 < 1 it is the interval
    [r +- (c / |m_c|) sqrt(v_t (1 - g) + r^2 v_c)] / (1 - g), returned minus 1; it reduces to the
    delta method as g -> 0. When g >= 1 the control's mean is not distinguishable from 0 and the
    set is unbounded (the whole line or the outside of an interval): `bounded` False, NaN ends.
    A control mean of 0 (or NaN) leaves the lift undefined.
    """
    crit = _critical(_level(level), df)
    mt, mc = _finite_or_nan("mean_t", mean_t), _finite_or_nan("mean_c", mean_c)
    vt, vc = _variance("var_t", var_t), _variance("var_c", var_c)
    mt, mc, vt, vc, crit = np.broadcast_arrays(mt, mc, vt, vc, crit)
    defined = np.isfinite(mc) & (mc != 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = mt / mc
        g = crit**2 * vc / mc**2
        bounded = defined & (g < 1.0)
        half = crit / np.abs(mc) * np.sqrt(vt * (1.0 - g) + r**2 * vc)
        lower = np.where(bounded, (r - half) / (1.0 - g) - 1.0, np.nan)
        upper = np.where(bounded, (r + half) / (1.0 - g) - 1.0, np.nan)
    relative = np.where(defined, r - 1.0, np.nan)
    return RelativeIntervals("fieller", relative, lower, upper, defined, bounded)
