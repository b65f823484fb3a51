"""The headline estimate of one metric: pooled while the weights never changed, period-stratified once they did.

A bandit moves its weights by design. When the rates also drift over time, the pooled mean of
an arm is weighted toward the periods in which the arm got most of its traffic, which can turn a
comparison's sign (the Simpson's-paradox trap of `policies.estimators`). So:

- one weights period (the allocation never changed): the pooled figures, with the exact small-
  sample tests the report always had (two-proportion z-test, Welch's t-test);
- several periods: the period-stratified means (Cochran, 1977, 5.3), each period weighted by its
  share of the experiment's traffic, compared by a Wald z-test on their difference. Each arm's
  own mean uses the periods where it has data; each comparison uses only the periods where both
  the arm and the control have data, with common weights. An arm at weight 0 in a period (a
  ramp from 100/0, a Thompson loser) has no estimate there, and averaging the two arms over
  different periods would bring the drift bias back; a period only one of them saw is left out
  of their comparison (`shared`), and a comparison without a shared period is undefined.

Both reward kinds use period stratification rather than inverse-propensity weighting: inside one
weights period the allocation is fixed by construction, so stratifying on periods removes the
drift bias exactly, needs only the per-period counters (no pass over the decisions), and has a
smaller variance than IPW, whose per-decision weights 1/pi blow up for arms with small weights.
IPW (`policies.estimators.ipw_difference`) remains the estimator for per-decision logs.

The relative lift's interval cannot leave its range: for 0/1 metrics the log-ratio interval
(Katz et al., 1978), whose lower end stays above -100%; for other metrics Fieller's interval
(Fieller, 1954), unbounded (reported as undefined) when the control's mean is not
distinguishable from 0. A control mean of exactly 0 leaves every relative figure undefined.
"""

from __future__ import annotations

from typing import Literal

import msgspec
import numpy as np
from scipy import stats as sps

from policies.estimators import naive_means, stratified_means
from policies.frequentist import ComparisonArrays, welch_test_arrays, z_test_arrays
from policies.ratios import RatioMethod, RelativeIntervals, fieller_interval, log_ratio_interval
from policies.stats import BoolArray, FloatArray, StatsArray

__all__ = ["Estimator", "Headline", "HeadlineTest", "headline", "mean_interval", "periods_with_data"]

Estimator = Literal["pooled", "stratified"]
HeadlineTest = Literal["z_pooled", "welch", "stratified_z"]
MetricKind = Literal["binary", "continuous"]


class Headline(msgspec.Struct, frozen=True, kw_only=True):
    """Per-arm means and every arm against the control, arrays of shape (k,); the control's entries are NaN."""

    estimator: Estimator
    test: HeadlineTest
    periods: int  # weights periods with data
    mean: FloatArray
    std_error: FloatArray
    lower: FloatArray  # confidence interval of each arm's mean
    upper: FloatArray
    difference: FloatArray
    difference_variance: FloatArray  # sampling variance of the difference
    difference_lower: FloatArray
    difference_upper: FloatArray
    p_value: FloatArray  # two-sided, fixed horizon
    relative: RelativeIntervals
    # (P, k): the periods each comparison is stratified over (both it and the control have data);
    # None for the pooled estimate.
    shared: BoolArray | None = None


def mean_interval(stats: StatsArray, kind: MetricKind, level: float) -> tuple[FloatArray, FloatArray]:
    """Confidence interval of each arm's mean: Wilson score for 0/1 values, Student t otherwise.

    Wilson (1927, JASA 22): (p + z^2/2n -+ z sqrt(p q / n + z^2 / 4n^2)) / (1 + z^2/n), which keeps
    its coverage near rates of 0 and 1 (error rates); t: mean -+ t_{n-1} s / sqrt(n).
    """
    n, mean = stats.n, stats.mean
    with np.errstate(divide="ignore", invalid="ignore"):
        if kind == "binary":
            z = sps.norm.ppf(0.5 + level / 2.0)
            centre = (mean + z * z / (2 * n)) / (1 + z * z / n)
            half = z / (1 + z * z / n) * np.sqrt(mean * (1 - mean) / n + z * z / (4 * n * n))
        else:
            centre = mean
            half = sps.t.ppf(0.5 + level / 2.0, n - 1) * stats.std / np.sqrt(n)
    ok = n > 0 if kind == "binary" else n > 1
    return np.where(ok, centre - half, np.nan), np.where(ok, centre + half, np.nan)


def periods_with_data(period_stats: StatsArray | None) -> int:
    """How many weights periods have at least one observation of the metric."""
    if period_stats is None or period_stats.n.ndim != 2:
        return 1
    return int(np.count_nonzero(period_stats.n.sum(axis=1) > 0))


def _relative(
    kind: MetricKind,
    mean: FloatArray,
    var: FloatArray,
    n: FloatArray,
    control: int,
    level: float,
    df: FloatArray | float,
) -> RelativeIntervals:
    c = slice(control, control + 1)
    n = np.where(n > 0, n, np.nan)  # an arm without observations has no ratio
    if kind == "binary":
        return log_ratio_interval(mean, var, n, mean[c], var[c], n[c], level)
    return fieller_interval(mean, var, mean[c], var[c], level, df)


def _pooled(stats: StatsArray, kind: MetricKind, control: int, level: float) -> Headline:
    tests: ComparisonArrays = (
        z_test_arrays(stats, control, level) if kind == "binary" else welch_test_arrays(stats, control, level)
    )
    naive = naive_means(stats)
    se = np.asarray(naive.std_error, dtype=np.float64)
    lo, hi = mean_interval(stats, kind, level)
    with np.errstate(invalid="ignore"):
        var = se**2
    df = tests.df if kind == "continuous" else np.inf
    is_control = np.arange(stats.k) == control
    return Headline(
        estimator="pooled",
        test="z_pooled" if kind == "binary" else "welch",
        periods=1,
        mean=np.asarray(naive.mean, dtype=np.float64),
        std_error=se,
        lower=lo,
        upper=hi,
        difference=tests.difference,
        difference_variance=np.where(is_control, np.nan, var + var[control]),
        difference_lower=tests.difference_lower,
        difference_upper=tests.difference_upper,
        p_value=tests.p_value,
        relative=_relative(
            kind, np.asarray(naive.mean), _relative_variance(kind, stats, var), stats.n, control, level, df
        ),
    )


def _relative_variance(kind: MetricKind, stats: StatsArray, var: FloatArray) -> FloatArray:
    """The pooled means' variances for the relative interval: p(1 - p)/n for proportions (Katz's log
    interval, as statsmodels computes it), s^2/n otherwise."""
    if kind != "binary":
        return var
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(stats.mean * (1.0 - stats.mean) / stats.n, dtype=np.float64)


def _stratified(
    stats: StatsArray, period_stats: StatsArray, traffic: FloatArray, kind: MetricKind, control: int, level: float
) -> Headline:
    est = stratified_means(period_stats, traffic)
    mean = np.asarray(est.mean, dtype=np.float64)
    se = np.asarray(est.std_error, dtype=np.float64)
    z = float(sps.norm.ppf(0.5 + level / 2.0))
    k = stats.k
    with np.errstate(divide="ignore", invalid="ignore"):
        lo, hi = mean - z * se, mean + z * se
    if kind == "binary":
        lo, hi = np.clip(lo, 0.0, 1.0), np.clip(hi, 0.0, 1.0)
    has = (period_stats.n > 0) & (traffic[:, None] > 0)
    shared = has & has[:, [control]]
    nan = np.full(k, np.nan)
    diff, dvar, rel, rel_lo, rel_hi = nan.copy(), nan.copy(), nan.copy(), nan.copy(), nan.copy()
    defined, bounded = np.zeros(k, dtype=bool), np.zeros(k, dtype=bool)
    method: RatioMethod = "log_ratio" if kind == "binary" else "fieller"
    for i in range(k):
        if i == control or not shared[:, i].any():
            continue
        rows = shared[:, i]
        pair = period_stats.rows(rows).take([control, i])
        two = stratified_means(pair, traffic[rows])
        m2 = np.asarray(two.mean, dtype=np.float64)
        v2 = np.asarray(two.std_error, dtype=np.float64) ** 2
        diff[i], dvar[i] = m2[1] - m2[0], v2[0] + v2[1]
        r = _relative(kind, m2, v2, pair.n.sum(axis=0), 0, level, np.inf)
        rel[i], rel_lo[i], rel_hi[i] = r.relative[1], r.lower[1], r.upper[1]
        defined[i], bounded[i] = r.defined[1], r.bounded[1]
    with np.errstate(divide="ignore", invalid="ignore"):
        dse = np.sqrt(dvar)
        p = 2.0 * sps.norm.sf(np.abs(diff / dse))
    return Headline(
        estimator="stratified",
        test="stratified_z",
        periods=periods_with_data(period_stats),
        mean=mean,
        std_error=se,
        lower=lo,
        upper=hi,
        difference=diff,
        difference_variance=dvar,
        difference_lower=diff - z * dse,
        difference_upper=diff + z * dse,
        p_value=np.where(np.isfinite(p), p, np.nan),
        relative=RelativeIntervals(method, rel, rel_lo, rel_hi, defined, bounded),
        shared=shared,
    )


def headline(
    stats: StatsArray,
    period_stats: StatsArray | None,
    traffic: FloatArray,
    kind: MetricKind,
    control: int,
    level: float,
) -> Headline:
    """The headline figures of one metric (see the module docstring for which estimator and why).

    `stats` are the pooled statistics (k,), `period_stats` the same per weights period (P, k) or
    None when the metric has no per-period statistics, `traffic` each period's arm choices.
    """
    if period_stats is None or periods_with_data(period_stats) < 2:
        return _pooled(stats, kind, control, level)
    return _stratified(stats, period_stats, traffic, kind, control, level)
