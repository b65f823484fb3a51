"""Build the experiment report from its counters and statistics: a pure function of a `ReportInput`."""

from __future__ import annotations

import numpy as np

from bandit_service.core.reporting.diagnostics import sample_ratio, sample_size
from bandit_service.core.reporting.guardrails import check_guardrails, metric_stats
from bandit_service.core.reporting.inputs import PRIMARY, ReportInput
from bandit_service.core.reporting.metrics import build_metric, metric_kind
from bandit_service.core.reporting.recommend import recommend
from bandit_service.core.reporting.values import (
    Attribution,
    Health,
    MetricKind,
    OperationalArm,
    Quantiles,
    Report,
)
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
    primary = build_metric(PRIMARY, inp.stats, inp.period_stats, kinds[PRIMARY], inp, np.random.default_rng(streams[0]))
    extras = tuple(
        build_metric(
            name,
            inp.metrics[name],
            inp.period_metrics.get(name),
            kinds[name],
            inp,
            np.random.default_rng(stream),
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
    recommendation = recommend(
        by_name.get(criterion.metric),
        metric_name=criterion.metric,
        control=inp.control,
        alpha=inp.alpha,
        min_improvement=criterion.min_improvement,
        relative=criterion.relative,
        guardrails=guardrails,
        srm=srm,
        size=size,
    )
    notes = []
    if inp.period_stats.n.shape[0] > 1:
        notes.append(
            "weights changed during the experiment: the naive means pool periods with different allocations; "
            "the corrected means weight each period by its traffic"
        )
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
        seed=inp.seed,
        primary=primary,
        metrics=extras,
        operational=_operational(inp),
        guardrails=guardrails,
        health=Health(srm=srm, sample_size=size),
        recommendation=recommendation,
        notes=tuple(notes),
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
