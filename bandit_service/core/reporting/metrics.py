"""The figures of one metric: per-arm summaries and every arm against the control, frequentist and Bayesian.

The headline figures come from `estimates.headline` (pooled while the weights never changed,
period-stratified once they did); the Bayesian ones from the posterior of the same headline
mean; the always-valid ones from the mSPRT on the headline difference, merged with the earlier
looks. The naive pooled comparison is kept beside them, labelled as such.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from bandit_service.core.looks import SequentialLook, look_settings, merge_look
from bandit_service.core.reporting.estimates import Headline, headline, mean_interval
from bandit_service.core.reporting.inputs import ReportInput
from bandit_service.core.reporting.values import ArmFigures, ComparisonFigures, MetricKind, MetricReport
from policies.bayesian import BayesianArm, bayesian_comparison
from policies.corrections import Correction, adjust_p_values
from policies.estimators import naive_means
from policies.frequentist import ComparisonArrays, welch_test_arrays, z_test_arrays
from policies.posterior import RewardKind, stratified_posterior
from policies.sequential import msprt_estimate, tuning_rho
from policies.stats import FloatArray, StatsArray

__all__ = ["adjust_where_defined", "build_metric", "mean_interval", "metric_kind"]

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


def adjust_where_defined(p_values: FloatArray, correction: Correction) -> FloatArray:
    """Adjusted p-values over the finite entries; NaN stays NaN (an undefined test is left out)."""
    out = np.full(p_values.shape, NAN)
    finite = np.isfinite(p_values)
    if finite.any():
        out[finite] = adjust_p_values(p_values[finite], correction)
    return out


def _pair(lo: float, hi: float) -> tuple[float, float]:
    return float(lo), float(hi)


def _pooled_tests(stats: StatsArray, kind: MetricKind, control: int, level: float) -> ComparisonArrays:
    return z_test_arrays(stats, control, level) if kind == "binary" else welch_test_arrays(stats, control, level)


def build_metric(
    name: str,
    stats: StatsArray,
    period_stats: StatsArray | None,
    kind: MetricKind,
    inp: ReportInput,
    rng: np.random.Generator,
    looks: Mapping[tuple[str, str], SequentialLook],
) -> MetricReport:
    """Per-arm figures and every arm against the control for one metric.

    Frequentist: the headline test (`estimates.headline`), p-values adjusted across the arms by
    the report's correction, mSPRT always-valid p-values and confidence sequences on the headline
    difference (Johari et al., 2017) with a N(0, tau^2) mixture, tau^2 = rho^2 (s_arm^2 +
    s_control^2), rho from `inp.sequential_tuning_n` (`policies.sequential.tuning_rho`), merged
    with `looks` (running minimum and intersection, `core.looks`). Bayesian: the conjugate
    posterior of each arm's headline mean (Beta or Student-t; moment-matched over the weights
    periods once they changed, `policies.posterior.stratified_posterior`): P(best), P(beats
    control), lift and expected loss from `inp.draws` draws of `rng`. A lift is undefined (null)
    when the control's mean is 0.
    """
    c, level, k, alpha = inp.control, inp.level, inp.k, inp.alpha
    head = headline(stats, period_stats, inp.period_traffic, kind, c, level)
    reward: RewardKind = "bernoulli" if kind == "binary" else "continuous"
    post = None
    if head.estimator == "stratified" and period_stats is not None:
        post = stratified_posterior(period_stats, inp.period_traffic, reward)
    bayes = bayesian_comparison(stats, c, reward, rng, level=level, draws=inp.draws, post=post)
    against = _pairwise_bayes(head, period_stats, inp, reward, rng)
    naive = naive_means(stats)
    pooled = _pooled_tests(stats, kind, c, level)
    sd = stats.std

    var = stats.variance
    rho = tuning_rho(alpha, inp.sequential_tuning_n)
    with np.errstate(invalid="ignore"):
        tau2 = rho**2 * (var + var[c])
    av_p, av_lo, av_hi = msprt_estimate(head.difference, head.difference_variance, tau2, alpha)

    arms = tuple(
        ArmFigures(
            arm=inp.arms[i],
            weight=float(inp.weights[i]),
            units=int(inp.units[i]),
            trials=int(inp.trials[i]),
            rewarded=int(inp.rewarded[i]),
            n=round(float(stats.n[i])),
            mean=float(head.mean[i]),
            sd=float(sd[i]),
            std_error=float(head.std_error[i]),
            confidence_interval=_pair(head.lower[i], head.upper[i]),
            credible_interval=bayes.arms[i].interval,
            prob_best=bayes.arms[i].prob_best,
            expected_loss=bayes.arms[i].expected_loss,
            pooled_mean=naive.mean[i],
            pooled_std_error=naive.std_error[i],
        )
        for i in range(k)
    )

    others = [i for i in range(k) if i != c]
    running = {}
    for i in others:
        now_look = SequentialLook(
            metric=name,
            arm=inp.arms[i],
            p_value=float(av_p[i]),
            lower=float(av_lo[i]),
            upper=float(av_hi[i]),
            looks=1,
            settings=look_settings(level, inp.sequential_tuning_n),
        )
        running[i] = merge_look(looks.get(now_look.key), now_look)
    p_adj = adjust_where_defined(np.array([head.p_value[i] for i in others]), inp.correction)
    av_adj = adjust_where_defined(np.array([running[i].p_value for i in others]), inp.correction)
    comparisons = []
    for j, i in enumerate(others):
        b = against.get(i, bayes.arms[i])
        defined = bool(head.relative.defined[i])
        comparisons.append(
            ComparisonFigures(
                arm=inp.arms[i],
                test=head.test,
                difference=float(head.difference[i]),
                difference_interval=_pair(head.difference_lower[i], head.difference_upper[i]),
                relative=float(head.relative.relative[i]),
                relative_interval=_pair(head.relative.lower[i], head.relative.upper[i]),
                relative_method=head.relative.method,
                p_value=float(head.p_value[i]),
                p_value_adjusted=float(p_adj[j]),
                always_valid_p_value=running[i].p_value,
                always_valid_p_adjusted=float(av_adj[j]),
                confidence_sequence=(running[i].lower, running[i].upper),
                always_valid_p_this_look=float(av_p[i]),
                confidence_sequence_this_look=_pair(av_lo[i], av_hi[i]),
                mixture_sd=float(np.sqrt(tau2[i])),
                looks=running[i].looks,
                prob_beats_control=NAN if b.prob_beats_control is None else b.prob_beats_control,
                difference_credible_interval=b.difference_interval or (NAN, NAN),
                lift_credible_interval=(b.lift_interval or (NAN, NAN)) if defined else (NAN, NAN),
                pooled_difference=float(pooled.difference[i]),
                pooled_interval=_pair(pooled.difference_lower[i], pooled.difference_upper[i]),
                pooled_p_value=float(pooled.p_value[i]),
                periods=head.periods if head.shared is None else int(head.shared[:, i].sum()),
            )
        )
    return MetricReport(
        name=name,
        kind=kind,
        estimator=head.estimator,
        periods=head.periods,
        arms=arms,
        comparisons=tuple(comparisons),
    )


def _pairwise_bayes(
    head: Headline, period_stats: StatsArray | None, inp: ReportInput, reward: RewardKind, rng: np.random.Generator
) -> dict[int, BayesianArm]:
    """P(beats control), difference and lift of the arms whose comparison leaves periods out.

    Where an arm and the control have data in the same periods, the all-arm posterior's figures
    are the pair's; where one of them has periods the other lacks, the pair's posterior is
    stratified over their shared periods only (as the frequentist comparison is). Without a
    shared period, every figure of the pair is undefined.
    """
    if head.shared is None or period_stats is None:
        return {}
    c = inp.control
    has = period_stats.n > 0
    out: dict[int, BayesianArm] = {}
    for i in range(inp.k):
        rows = head.shared[:, i]
        if i == c or (np.array_equal(rows, has[:, i]) and np.array_equal(rows, has[:, c])):
            continue
        if not rows.any():
            out[i] = BayesianArm(i, NAN, (NAN, NAN), NAN, NAN, None, None, None)
            continue
        pair = period_stats.rows(rows).take([c, i])
        post = stratified_posterior(pair, inp.period_traffic[rows], reward)
        two = bayesian_comparison(pair.pooled(), 0, reward, rng, level=inp.level, draws=inp.draws, post=post)
        out[i] = two.arms[1]
    return out
