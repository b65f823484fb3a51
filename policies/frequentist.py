"""Frequentist comparisons of each arm against a control: two-proportion z-test and Welch t-test."""

from __future__ import annotations

import math
from typing import Literal

import msgspec
import numpy as np
from scipy import stats as sps

from policies.stats import FloatArray, StatsArray

__all__ = [
    "Comparison",
    "ComparisonArrays",
    "TestKind",
    "check_control",
    "check_level",
    "welch_test",
    "welch_test_arrays",
    "z_test",
    "z_test_arrays",
]

TestKind = Literal["z_pooled", "z_unpooled", "welch"]


class ComparisonArrays(msgspec.Struct, frozen=True):
    """Every arm against the control, vectorised: arrays of shape (..., k); the control's column is NaN."""

    test: TestKind
    control: int
    level: float
    difference: FloatArray
    difference_lower: FloatArray
    difference_upper: FloatArray
    relative: FloatArray
    relative_lower: FloatArray
    relative_upper: FloatArray
    statistic: FloatArray
    df: FloatArray
    p_value: FloatArray


class Comparison(msgspec.Struct, frozen=True):
    """One arm against the control, as plain floats (NaN, encoded as JSON null, where undefined)."""

    test: TestKind
    arm: int
    control: int
    level: float
    mean: float
    control_mean: float
    difference: float
    difference_interval: tuple[float, float]
    relative: float
    relative_interval: tuple[float, float]
    statistic: float
    df: float | None  # None for the z-test (normal reference distribution)
    p_value: float


def check_level(level: float, name: str = "level") -> None:
    """Refuse a confidence level (or alpha) outside the open interval (0, 1)."""
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not (0.0 < level < 1.0):
        raise ValueError(f"{name}: must be a number in (0, 1), got {level!r}")


def check_control(control: int, k: int) -> None:
    """Refuse a control index that is not an arm index in [0, k)."""
    if isinstance(control, bool) or not isinstance(control, (int, np.integer)) or not 0 <= control < k:
        raise ValueError(f"control: must be an arm index in [0, {k}), got {control!r}")


def _check_binary(stats: StatsArray) -> None:
    if np.any(stats.total > stats.n) or not np.allclose(stats.total_sq, stats.total, rtol=1e-9, atol=1e-9):
        raise ValueError("stats: the z-test needs 0/1 rewards (sum <= n and sum of squares = sum)")


def _contrast(
    test: TestKind,
    stats: StatsArray,
    control: int,
    level: float,
    var_mean: FloatArray,
    se_test: FloatArray,
    df: FloatArray,
) -> ComparisonArrays:
    """Differences, delta-method relative lifts, intervals and two-sided p-values against the control.

    Relative lift r = m_i / m_c - 1 with Var(r) ~ v_i / m_c^2 + m_i^2 v_c / m_c^4 (first-order delta
    method; Deng, Knoblich & Lu, 2018, "Applying the Delta Method in Metric Analytics", KDD). Both
    intervals use the same critical value: z for the z-test, Student t with Welch's df otherwise.
    """
    mean = stats.mean
    mc = mean[..., control : control + 1]
    vc = var_mean[..., control : control + 1]
    is_control = np.arange(stats.k) == control
    crit = sps.t.ppf(0.5 + level / 2.0, df) if test == "welch" else sps.norm.ppf(0.5 + level / 2.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        diff = mean - mc
        se = np.sqrt(var_mean + vc)
        rel = mean / mc - 1.0
        se_rel = np.sqrt(var_mean / mc**2 + mean**2 * vc / mc**4)
        statistic = diff / se_test
    p = 2.0 * (sps.t.sf(np.abs(statistic), df) if test == "welch" else sps.norm.sf(np.abs(statistic)))

    def out(a: FloatArray) -> FloatArray:
        return np.where(is_control, np.nan, a)

    return ComparisonArrays(
        test=test,
        control=int(control),
        level=float(level),
        difference=out(diff),
        difference_lower=out(diff - crit * se),
        difference_upper=out(diff + crit * se),
        relative=out(rel),
        relative_lower=out(rel - crit * se_rel),
        relative_upper=out(rel + crit * se_rel),
        statistic=out(statistic),
        df=out(np.broadcast_to(df, diff.shape).astype(np.float64)),
        p_value=out(p),
    )


def z_test_arrays(stats: StatsArray, control: int, level: float = 0.95, pooled: bool = True) -> ComparisonArrays:
    """Two-proportion z-test of every arm against the control (vectorised over arms and batches).

    p_i = x_i / n_i. The interval on p_i - p_c uses the unpooled (Wald) standard error
    sqrt(p_i q_i / n_i + p_c q_c / n_c). The p-value uses, by default, the pooled standard error
    sqrt(P Q (1/n_i + 1/n_c)) with P = (x_i + x_c) / (n_i + n_c), the variance under H0
    (Fleiss, Levin & Paik, 2003, ch. 3; statsmodels `proportions_ztest`); with `pooled=False` it
    uses the unpooled one, so it agrees with the interval (statsmodels `test_proportions_2indep`,
    method "wald").
    """
    check_control(control, stats.k)
    check_level(level)
    _check_binary(stats)
    n, x = stats.n, stats.total
    xc, nc = x[..., control : control + 1], n[..., control : control + 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        p = x / n
        var_mean = p * (1.0 - p) / n
        if pooled:
            pp = (x + xc) / (n + nc)
            se_test = np.sqrt(pp * (1.0 - pp) * (1.0 / n + 1.0 / nc))
        else:
            se_test = np.sqrt(var_mean + var_mean[..., control : control + 1])
    test: TestKind = "z_pooled" if pooled else "z_unpooled"
    return _contrast(test, stats, control, level, var_mean, se_test, np.full(n.shape, np.inf))


def welch_test_arrays(stats: StatsArray, control: int, level: float = 0.95) -> ComparisonArrays:
    """Welch's unequal-variance t-test of every arm against the control (vectorised).

    t = (m_i - m_c) / sqrt(s_i^2/n_i + s_c^2/n_c) with Welch-Satterthwaite degrees of freedom
    (v_i + v_c)^2 / (v_i^2/(n_i - 1) + v_c^2/(n_c - 1)), v = s^2/n (Welch, 1947, Biometrika 34).
    """
    check_control(control, stats.k)
    check_level(level)
    with np.errstate(divide="ignore", invalid="ignore"):
        v = stats.variance / stats.n
        vc = v[..., control : control + 1]
        nc = stats.n[..., control : control + 1]
        df = (v + vc) ** 2 / (v**2 / (stats.n - 1.0) + vc**2 / (nc - 1.0))
        se_test = np.sqrt(v + vc)
    return _contrast("welch", stats, control, level, v, se_test, df)


def _rows(arrays: ComparisonArrays, stats: StatsArray) -> tuple[Comparison, ...]:
    c = arrays.control
    mean = stats.mean
    rows = []
    for i in range(stats.k):
        if i == c:
            continue
        df = float(arrays.df[i])
        rows.append(
            Comparison(
                test=arrays.test,
                arm=i,
                control=c,
                level=arrays.level,
                mean=float(mean[i]),
                control_mean=float(mean[c]),
                difference=float(arrays.difference[i]),
                difference_interval=(float(arrays.difference_lower[i]), float(arrays.difference_upper[i])),
                relative=float(arrays.relative[i]),
                relative_interval=(float(arrays.relative_lower[i]), float(arrays.relative_upper[i])),
                statistic=float(arrays.statistic[i]),
                df=None if math.isinf(df) else df,
                p_value=float(arrays.p_value[i]),
            )
        )
    return tuple(rows)


def _check_unbatched(stats: StatsArray) -> None:
    if stats.n.ndim != 1:
        raise ValueError(f"stats: expected one value per arm, got shape {stats.n.shape}; use the *_arrays form")


def z_test(stats: StatsArray, control: int, level: float = 0.95, pooled: bool = True) -> tuple[Comparison, ...]:
    """Two-proportion z-test of each non-control arm against the control (see `z_test_arrays`)."""
    _check_unbatched(stats)
    return _rows(z_test_arrays(stats, control, level, pooled), stats)


def welch_test(stats: StatsArray, control: int, level: float = 0.95) -> tuple[Comparison, ...]:
    """Welch t-test of each non-control arm against the control (see `welch_test_arrays`)."""
    _check_unbatched(stats)
    return _rows(welch_test_arrays(stats, control, level), stats)
