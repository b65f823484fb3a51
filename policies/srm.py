"""Sample-ratio mismatch: do the observed arm counts fit the allocation that was actually used?"""

from __future__ import annotations

import math

import msgspec
import numpy as np
from numpy.typing import ArrayLike
from scipy import stats as sps

from policies.stats import FloatArray

__all__ = ["SrmResult", "expected_counts", "srm_by_period", "srm_check"]

DEFAULT_THRESHOLD = 0.001


class SrmResult(msgspec.Struct, frozen=True):
    """Pearson chi-square of observed against expected arm counts; `flagged` when p < threshold."""

    statistic: float
    df: int
    p_value: float
    threshold: float
    flagged: bool
    observed: tuple[float, ...]
    expected: tuple[float, ...]  # scaled to the observed total


def _non_negative(name: str, value: ArrayLike, ndim: int) -> FloatArray:
    a = np.asarray(value, dtype=np.float64)
    if a.ndim != ndim or a.size == 0:
        raise ValueError(f"{name}: expected a non-empty {ndim}-D array, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name}: must be finite (no NaN or infinity)")
    if np.any(a < 0):
        raise ValueError(f"{name}: must be non-negative")
    return a


def expected_counts(weights: ArrayLike, traffic: ArrayLike | None = None) -> FloatArray:
    """Expected arm counts sum_p traffic_p * weights_p: the allocation actually used, period by period.

    `weights` has one row per weights period (or per decision, holding that decision's full
    propensity vector); `traffic` is the number of units in each row (default 1 per row, so the
    rows are summed as logged propensities).
    """
    w = _non_negative("weights", weights, 2)
    if not np.allclose(w.sum(axis=1), 1.0, rtol=0.0, atol=1e-9):
        raise ValueError("weights: every row must sum to 1 (within 1e-9)")
    t = np.ones(w.shape[0]) if traffic is None else _non_negative("traffic", traffic, 1)
    if t.shape[0] != w.shape[0]:
        raise ValueError(f"traffic: mismatched lengths, {t.shape[0]} periods for {w.shape[0]} weight rows")
    return t @ w


def srm_check(observed: ArrayLike, expected: ArrayLike, threshold: float = DEFAULT_THRESHOLD) -> SrmResult:
    """Pearson chi-square goodness-of-fit test of arm counts against the expected allocation.

    X^2 = sum_k (O_k - E_k)^2 / E_k on (arms with E_k > 0) - 1 degrees of freedom, with E scaled to
    the observed total (Fabijan et al., 2019, "Diagnosing Sample Ratio Mismatch", KDD). When
    weights change over periods the counts are a sum of multinomials, whose covariance is at
    most the pooled multinomial's, so the test stays valid (conservative). An arm with observed
    units but zero expected share is an infinite mismatch. A threshold of 0.001 is the usual
    choice: the check runs often and a false alarm stops an experiment.
    """
    o = _non_negative("observed", observed, 1)
    e = _non_negative("expected", expected, 1)
    if o.shape != e.shape:
        raise ValueError(f"observed, expected: mismatched lengths {o.size} and {e.size}")
    if o.size < 2:
        raise ValueError("observed: need at least two arms")
    if e.sum() <= 0:
        raise ValueError("expected: must have a positive total")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold: must be a number in (0, 1), got {threshold!r}")
    e = e * (o.sum() / e.sum())
    support = e > 0
    df = int(support.sum()) - 1
    if np.any(o[~support] > 0):
        statistic, p_value = math.inf, 0.0
    elif o.sum() == 0 or df == 0:
        statistic, p_value = 0.0, 1.0
    else:
        statistic = float(np.sum((o[support] - e[support]) ** 2 / e[support]))
        p_value = float(sps.chi2.sf(statistic, df))
    return SrmResult(
        statistic=statistic,
        df=df,
        p_value=p_value,
        threshold=float(threshold),
        flagged=p_value < threshold,
        observed=tuple(o.tolist()),
        expected=tuple(e.tolist()),
    )


def srm_by_period(
    assigned: ArrayLike, weights: ArrayLike, threshold: float = DEFAULT_THRESHOLD
) -> tuple[SrmResult, ...]:
    """One chi-square test per weights period, Bonferroni-corrected over the periods with traffic.

    `assigned` and `weights` have shape (P, k): the arm counts of each period and the weights
    used in it (rows summing to 1). Pooling periods can hide a mismatch that reverses between
    periods (a broken redirect only while one allocation was live); testing each period finds it,
    and flagging at p < threshold / m, m the number of periods with traffic, keeps the chance of
    any false alarm over all periods at most `threshold` (Bonferroni). Each result carries that
    per-period threshold. A period with no traffic has statistic 0 and p-value 1, and is not
    counted in m.
    """
    o = _non_negative("assigned", assigned, 2)
    w = _non_negative("weights", weights, 2)
    if o.shape != w.shape:
        raise ValueError(f"assigned, weights: mismatched shapes {o.shape} and {w.shape}")
    if o.shape[1] < 2:
        raise ValueError("assigned: need at least two arms")
    if not np.allclose(w.sum(axis=1), 1.0, rtol=0.0, atol=1e-9):
        raise ValueError("weights: every row must sum to 1 (within 1e-9)")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold: must be a number in (0, 1), got {threshold!r}")
    periods = max(int(np.count_nonzero(o.sum(axis=1) > 0)), 1)
    return tuple(srm_check(row, share, threshold / periods) for row, share in zip(o, w, strict=True))
