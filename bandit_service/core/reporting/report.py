"""Build the experiment report from its counters and statistics: a pure function of a `ReportInput`."""

from __future__ import annotations

import numpy as np

from bandit_service.core.reporting.diagnostics import sample_ratio, sample_ratio_by_period, sample_size
from bandit_service.core.reporting.guardrails import check_guardrails, metric_stats
from bandit_service.core.reporting.inputs import PRIMARY, ReportInput
from bandit_service.core.reporting.metrics import build_metric, metric_kind
from bandit_service.core.reporting.notes import metric_notes
from bandit_service.core.reporting.recommend import recommend
from bandit_service.core.reporting.values import (
    Attribution,
    Health,
    MetricKind,
    OperationalArm,
    Quantiles,
    Report,
    SampleSizeCheck,
    SequentialSettings,
)
from policies.sequential import tuning_rho
from policies.stats import StatsArray

__all__ = ["build_report"]


def _kinds(inp: ReportInput) -> dict[str, MetricKind]:
    kinds: dict[str, MetricKind] = {PRIMARY: "binary" if inp.reward == "bernoulli" else "continuous"}
    kinds.update({name: metric_kind(stats) for name, stats in inp.metrics.items()})
    return kinds


def _operational(inp: ReportInput) -> tuple[OperationalArm, ...]:
    errors = inp.metrics.get(inp.error_metric)
    expired = inp.expired or (0,) * inp.k
    excluded = inp.excluded or (0,) * inp.k
    local = inp.local or (0,) * inp.k
    contradicted = inp.contradicted or (0,) * inp.k
    rows = []
    for i, arm in enumerate(inp.arms):
        quantiles = {
            name: Quantiles(
                count=sketches[i].count,
                p50=sketches[i].quantile(0.5),
                p95=sketches[i].quantile(0.95),
                p99=sketches[i].quantile(0.99),
            )
            for name, sketches in sorted(inp.sketches.items())
        }
        rows.append(
            OperationalArm(
                arm=arm,
                weight=float(inp.weights[i]),
                units=int(inp.units[i]),
                trials=int(inp.trials[i]),
                exposures=None if inp.exposures is None else int(inp.exposures[i]),
                rewarded=int(inp.rewarded[i]),
                pending=max(0, int(inp.trials[i]) - int(inp.rewarded[i]) - int(expired[i]) - int(excluded[i])),
                excluded=int(excluded[i]),
                error_rate=None if errors is None else float(errors.mean[i]),
                quantiles=quantiles,
                local=int(local[i]),
                contradicted=int(contradicted[i]),
            )
        )
    return tuple(rows)


def build_report(inp: ReportInput) -> Report:
    """The full report: per-metric figures, operations, guardrails, health and the recommendation.

    Deterministic for a given input: the Bayesian Monte Carlo draws come from `inp.seed`, one
    independent stream per metric (numpy `SeedSequence.spawn`; extra metrics in name order).
    """
    kinds = _kinds(inp)
    names = sorted(inp.metrics)
    streams = np.random.SeedSequence(inp.seed).spawn(1 + len(names))
    looks = {look.key: look for look in inp.looks}
    primary = build_metric(
        PRIMARY, inp.stats, inp.period_stats, kinds[PRIMARY], inp, np.random.default_rng(streams[0]), looks
    )
    extras = tuple(
        build_metric(
            name,
            inp.metrics[name],
            inp.period_metrics.get(name),
            kinds[name],
            inp,
            np.random.default_rng(stream),
            looks,
        )
        for name, stream in zip(names, streams[1:], strict=True)
    )
    by_name = {m.name: m for m in (primary, *extras)}
    criterion = inp.criteria.primary
    decision_stats = metric_stats(inp, criterion.metric)
    srm = sample_ratio(inp)
    if decision_stats is None:  # the criterion names a metric that has not been reported yet
        size = sample_size(inp, StatsArray.zeros(inp.k), "continuous")
    else:
        size = sample_size(inp, decision_stats, kinds[criterion.metric])
    guardrails = check_guardrails(inp, kinds)
    health = Health(srm=srm, srm_periods=sample_ratio_by_period(inp), sample_size=size)
    recommendation = recommend(
        by_name.get(criterion.metric),
        metric_name=criterion.metric,
        control=inp.control,
        alpha=inp.alpha,
        min_improvement=criterion.min_improvement,
        relative=criterion.relative,
        guardrails=guardrails,
        health=health,
    )
    notes = []
    if primary.estimator == "stratified":
        notes.append(
            f"weights changed during the experiment ({primary.periods} weights periods): every headline figure "
            "is drift-corrected (period-stratified: each period's means weighted by its share of the traffic; "
            "the Bayesian figures from the posterior of that mean); the pooled figures beside them are naive, "
            "biased whenever rates drift while the weights move"
        )
    for m in (primary, *extras):
        notes.extend(metric_notes(m, inp.arms[inp.control], inp.level))
    excluded = sum(inp.excluded or ())
    if excluded:
        notes.append(
            f"{excluded} trial(s) got no reward and are excluded (missing: exclude): if feedback rates differ "
            "by arm, the comparison is biased toward the arm whose non-responders were dropped"
        )
    contradiction = _contradiction_note(inp)
    if contradiction is not None:
        notes.append(contradiction)
    return Report(
        arms=inp.arms,
        control=inp.arms[inp.control],
        reward=inp.reward,
        attribution=Attribution(trial=inp.trial, aggregate=inp.aggregate, missing=inp.missing, excluded=excluded),
        level=inp.level,
        correction=inp.correction,
        sequential=SequentialSettings(
            tuning_n=float(inp.sequential_tuning_n),
            rho=tuning_rho(inp.alpha, inp.sequential_tuning_n),
            horizon=_horizon(size),
        ),
        seed=inp.seed,
        primary=primary,
        metrics=extras,
        operational=_operational(inp),
        guardrails=guardrails,
        health=health,
        recommendation=recommendation,
        notes=tuple(notes),
    )


def _horizon(size: SampleSizeCheck) -> str:
    """What the fixed-horizon figures are valid for."""
    plan = (
        f"the planned horizon of {max(size.required):,} observations per arm"
        if size.configured and size.required
        else "a horizon fixed in advance (none is configured: set min_sample_size or minimum_detectable_effect)"
    )
    return (
        f"fixed-horizon p-values and intervals are valid for one look at {plan}; ship decisions rest on the "
        "always-valid figures, which stay valid however often the report is read"
    )


def _contradiction_note(inp: ReportInput) -> str | None:
    """How many locally logged decisions served another arm than the unit's sticky arm on the service, by arm."""
    contradicted = inp.contradicted or ()
    total = sum(contradicted)
    if not total:
        return None
    local = sum(inp.local or ())
    by_arm = ", ".join(f"{arm} {n}" for arm, n in zip(inp.arms, contradicted, strict=True) if n)
    return (
        f"{total} of {local} decision(s) evaluated locally by SDKs served another arm than the unit's sticky "
        f"arm on the service ({by_arm}): their sticky stores disagree with the service's (a store lost, "
        "shared or restored, or units moved by a rebalance); they count for the arm the app used"
    )
