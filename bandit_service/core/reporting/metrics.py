"""The figures of one metric: per-arm summaries, tests against the control, drift-corrected and Bayesian views."""

from __future__ import annotations

import math

import numpy as np
from scipy import stats as sps

from bandit_service.core.reporting.inputs import ReportInput
from bandit_service.core.reporting.values import ArmFigures, ComparisonFigures, MetricKind, MetricReport
from policies.bayesian import bayesian_comparison
from policies.corrections import holm
from policies.estimators import ArmEstimates, naive_means, stratified_means
from policies.frequentist import Comparison, welch_test, z_test
from policies.sequential import msprt
from policies.stats import FloatArray, StatsArray

__all__ = ["build_metric", "holm_where_defined", "mean_interval", "metric_kind"]

NAN = math.nan


def metric_kind(stats: StatsArray) -> MetricKind:
    """'binary' when every arm's values can only be 0/1 (integer sum = sum of squares, 0 <= sum <= n)."""
    t, sq, n = stats.total, stats.total_sq, stats.n
    binary = (
        np.allclose(sq, t, rtol=1e-9, atol=1e-9)
        and bool(np.all((t >= 0) & (t <= n)))
        and np.allclose(t, np.round(t), rtol=0.0, atol=1e-9)
    )
    return "binary" if binary else "continuous"


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
    return np.where(ok, centre - half, NAN), np.where(ok, centre + half, NAN)


def holm_where_defined(p_values: FloatArray) -> FloatArray:
    """Holm-adjusted p-values over the finite entries; NaN stays NaN (an undefined test is left out)."""
    out = np.full(p_values.shape, NAN)
    finite = np.isfinite(p_values)
    if finite.any():
        out[finite] = holm(p_values[finite])
    return out


def _pair(lo: float, hi: float) -> tuple[float, float]:
    return float(lo), float(hi)


def _corrected(period_stats: StatsArray | None, traffic: FloatArray, k: int) -> ArmEstimates:
    if period_stats is None:
        return ArmEstimates("stratified", (NAN,) * k, (NAN,) * k)
    return stratified_means(period_stats, traffic)


def build_metric(
    name: str,
    stats: StatsArray,
    period_stats: StatsArray | None,
    kind: MetricKind,
    inp: ReportInput,
    rng: np.random.Generator,
) -> MetricReport:
    """Per-arm figures and every arm against the control for one metric.

    Frequentist: pooled two-proportion z-test for 0/1 metrics, Welch's t-test otherwise
    (`policies.frequentist`), Holm across the arms over the defined p-values, mSPRT always-valid
    p-values and confidence sequences (Johari et al., 2017). Drift-corrected: period-stratified
    means weighted by each period's traffic (Cochran, 1977, 5.3), with a normal interval on
    their difference. Bayesian: Beta or Normal-Inverse-Gamma posteriors, P(best), P(beats
    control), lift and expected loss from `inp.draws` draws of `rng` (`policies.bayesian`).
    """
    c, level, k = inp.control, inp.level, inp.k
    tests: tuple[Comparison, ...] = z_test(stats, c, level) if kind == "binary" else welch_test(stats, c, level)
    sequential = msprt(stats, c, 1.0 - level)
    bayes = bayesian_comparison(
        stats, c, "bernoulli" if kind == "binary" else "continuous", rng, level=level, draws=inp.draws
    )
    naive = naive_means(stats)
    traffic = np.asarray(inp.period_assigned, dtype=np.float64).sum(axis=1)
    corrected = _corrected(period_stats, traffic, k)
    lo, hi = mean_interval(stats, kind, level)
    sd = stats.std

    arms = tuple(
        ArmFigures(
            arm=inp.arms[i],
            weight=float(inp.weights[i]),
            units=int(inp.units[i]),
            trials=int(inp.trials[i]),
            rewarded=int(inp.rewarded[i]),
            n=round(float(stats.n[i])),
            mean=naive.mean[i],
            sd=float(sd[i]),
            std_error=naive.std_error[i],
            confidence_interval=_pair(lo[i], hi[i]),
            credible_interval=bayes.arms[i].interval,
            corrected_mean=corrected.mean[i],
            corrected_std_error=corrected.std_error[i],
            prob_best=bayes.arms[i].prob_best,
            expected_loss=bayes.arms[i].expected_loss,
        )
        for i in range(k)
    )

    p_holm = holm_where_defined(np.array([t.p_value for t in tests]))
    av_holm = holm_where_defined(np.array([s.p_value for s in sequential]))
    z = float(sps.norm.ppf(0.5 + level / 2.0))
    comparisons = []
    for j, (test, seq) in enumerate(zip(tests, sequential, strict=True)):
        i = test.arm
        b = bayes.arms[i]
        cd = corrected.mean[i] - corrected.mean[c]
        cse = math.sqrt(corrected.std_error[i] ** 2 + corrected.std_error[c] ** 2)
        comparisons.append(
            ComparisonFigures(
                arm=inp.arms[i],
                test=test.test,
                difference=test.difference,
                difference_interval=test.difference_interval,
                relative=test.relative,
                relative_interval=test.relative_interval,
                p_value=test.p_value,
                p_value_holm=float(p_holm[j]),
                always_valid_p_value=seq.p_value,
                always_valid_p_holm=float(av_holm[j]),
                confidence_sequence=seq.interval,
                corrected_difference=cd,
                corrected_interval=(cd - z * cse, cd + z * cse),
                prob_beats_control=NAN if b.prob_beats_control is None else b.prob_beats_control,
                difference_credible_interval=b.difference_interval or (NAN, NAN),
                lift_credible_interval=b.lift_interval or (NAN, NAN),
            )
        )
    return MetricReport(name=name, kind=kind, arms=arms, comparisons=tuple(comparisons))
