"""Health checks: sample-ratio mismatch against the allocation actually used, and the minimum sample size."""

from __future__ import annotations

import math

import numpy as np

from bandit_service.core.reporting.inputs import ReportInput
from bandit_service.core.reporting.values import MetricKind, PeriodSrm, SampleSizeCheck, SrmResult
from policies.power import sample_size_means, sample_size_proportions
from policies.srm import expected_counts, srm_by_period, srm_check
from policies.stats import StatsArray

__all__ = ["sample_ratio", "sample_ratio_by_period", "sample_size"]


def sample_ratio(inp: ReportInput) -> SrmResult:
    """Chi-square SRM check of the arm choices against sum_p (choices in period p) x (weights of period p).

    Bandit weights change, so the expected share is the allocation each period actually had,
    not the current weights (Fabijan et al., 2019, KDD; `policies.srm`).
    """
    assigned = np.asarray(inp.period_assigned, dtype=np.float64)
    if assigned.sum() == 0:
        # No traffic yet (a draft): nothing to test, and srm_check needs a positive expected total.
        zeros = (0.0,) * inp.k
        return SrmResult(
            statistic=0.0,
            df=inp.k - 1,
            p_value=1.0,
            threshold=inp.srm_threshold,
            flagged=False,
            observed=zeros,
            expected=zeros,
        )
    expected = expected_counts(np.asarray(inp.period_weights, dtype=np.float64), assigned.sum(axis=1))
    return srm_check(assigned.sum(axis=0), expected, inp.srm_threshold)


def sample_ratio_by_period(inp: ReportInput) -> tuple[PeriodSrm, ...]:
    """One chi-square per weights period against that period's weights (Bonferroni over the periods with traffic).

    A mismatch confined to one period (a logging bug on one day, a deployment that served one
    arm) can cancel out in the pooled check; this one sees it. Empty for a single period (the
    pooled check is that period's).
    """
    if len(inp.period_assigned) < 2:
        return ()
    results = srm_by_period(inp.period_assigned, inp.period_weights, inp.srm_threshold)
    versions = inp.period_versions or tuple(range(1, len(results) + 1))
    return tuple(
        PeriodSrm(
            version=int(v),
            statistic=r.statistic,
            df=r.df,
            p_value=r.p_value,
            flagged=r.flagged,
            observed=r.observed,
            expected=r.expected,
        )
        for v, r in zip(versions, results, strict=True)
    )


def _required(inp: ReportInput, stats: StatsArray, kind: MetricKind) -> tuple[tuple[int, ...], str | None, str | None]:
    """Observations needed per arm: the stored minimum, a power calculation for the MDE, or the larger."""
    k, c = inp.k, inp.control
    need = [inp.min_sample_size or 0] * k
    mde = inp.minimum_detectable_effect
    if mde is None:
        return tuple(need), None, None
    baseline = float(stats.mean[c])
    sd = float(stats.std[c])
    alpha, power, relative = inp.alpha, inp.power, inp.mde_relative
    try:
        if kind == "binary":
            size = sample_size_proportions(
                baseline, mde, relative=relative, alpha=alpha, power=power, arms=k, correction=inp.correction
            )
        else:
            size = sample_size_means(
                baseline, sd, mde, relative=relative, alpha=alpha, power=power, arms=k, correction=inp.correction
            )
    except ValueError as err:
        # Typically a control without data yet (baseline NaN, or a rate of exactly 0 or 1).
        return (), f"power calculation not possible yet from the control's data ({err})", None
    per_arm = [size.control if i == c else size.treatment for i in range(k)]
    return tuple(max(a, b) for a, b in zip(need, per_arm, strict=True)), None, size.correction


def sample_size(inp: ReportInput, stats: StatsArray, kind: MetricKind) -> SampleSizeCheck:
    """Whether every arm has the observations the plan needs, and further units needed at the current weights.

    Required per arm: `min_sample_size`, or the two-sided power calculation for
    `minimum_detectable_effect` at alpha = 1 - level, split over the k - 1 comparisons by
    Bonferroni unless the report's correction is "none" (`policies.power`; `correction` in the
    result says which), or the larger of both. Further units: max over short arms of
    missing_a / weight_a, the traffic that fills the slowest arm at today's weights.
    """
    observed = tuple(round(float(x)) for x in stats.n)
    if inp.min_sample_size is None and inp.minimum_detectable_effect is None:
        return SampleSizeCheck(
            configured=False,
            correction=None,
            required=(),
            observed=observed,
            missing=(),
            reached=None,
            more_units=None,
            note="no min_sample_size or minimum_detectable_effect configured",
        )
    required, note, correction = _required(inp, stats, kind)
    if not required:
        return SampleSizeCheck(
            configured=True,
            correction=correction,
            required=(),
            observed=observed,
            missing=(),
            reached=False,
            more_units=None,
            note=note,
        )
    missing = tuple(max(0, r - o) for r, o in zip(required, observed, strict=True))
    short = [i for i in range(inp.k) if missing[i] > 0]
    more: int | None = 0
    if any(inp.weights[i] <= 0 for i in short):
        more = None
        names = ", ".join(inp.arms[i] for i in short if inp.weights[i] <= 0)
        note = f"arm(s) {names} have weight 0 and will not reach the minimum sample size at the current weights"
    elif short:
        more = math.ceil(max(missing[i] / inp.weights[i] for i in short) - 1e-9)
    return SampleSizeCheck(
        configured=True,
        correction=correction,
        required=required,
        observed=observed,
        missing=missing,
        reached=not short,
        more_units=more,
        note=note,
    )
