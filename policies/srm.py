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
    counted in m. A period in which some arm expects fewer than `MIN_EXPECTED` units gets an
    exact p-value (`_exact_p_values`) beside its chi-square statistic.
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
    results = [srm_check(row, share, threshold / periods) for row, share in zip(o, w, strict=True)]
    exact = _exact_p_values(o, w)
    return tuple(
        r if math.isnan(p) else msgspec.structs.replace(r, p_value=float(p), flagged=bool(p < r.threshold))
        for r, p in zip(results, exact, strict=True)
    )


# Below this expected count in some arm, the chi-square approximation fails (Cochran's rule): a
# period of 50 units at weights 0.998/0.002 expects 0.1 units on the small arm, and one unit there
# is a chi-square of 9 (p = 0.003) though it happens in 1 period out of 10.
MIN_EXPECTED = 5.0


def _exact_p_values(observed: FloatArray, weights: FloatArray) -> FloatArray:
    """Exact p-values of the periods in which some arm expects fewer than `MIN_EXPECTED` units (NaN elsewhere).

    Each arm's count is tested against its share of the period by an exact two-sided binomial
    test, doubling the smaller tail (min(1, 2 min(P(X <= x), P(X >= x))); at least the p-value
    of `scipy.stats.binomtest`, so never less conservative), and the arms with a positive share are
    combined by Bonferroni (for two arms both tests are the same test, so no factor). Vectorised
    over periods and arms: bandits give losing arms tiny weights, so short periods with tiny
    expected counts are the common case, and a report may hold thousands of periods.
    """
    n = observed.sum(axis=1, keepdims=True)
    support = weights > 0
    expected = n * weights
    small = (n[:, 0] > 0) & np.any(support & (expected < MIN_EXPECTED), axis=1)
    small &= ~np.any(~support & (observed > 0), axis=1)  # a unit on a zero-weight arm: the chi-square's p = 0
    out = np.full(observed.shape[0], np.nan)
    if not small.any():
        return out
    x, q, m = observed[small], np.where(support[small], weights[small], 0.5), n[small]
    tails = np.minimum(sps.binom.cdf(x, m, q), sps.binom.sf(x - 1, m, q))
    p = np.where(support[small], np.minimum(1.0, 2.0 * tails), np.inf)
    arms = support[small].sum(axis=1)
    factor = np.where(arms == 2, 1.0, arms)
    out[small] = np.where(arms < 2, 1.0, np.minimum(1.0, p.min(axis=1) * factor))
    return out
