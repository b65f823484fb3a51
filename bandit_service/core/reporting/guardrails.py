"""Guardrails: is there one-sided evidence that an arm moved a metric further than the experiment allows?"""

from __future__ import annotations

import math
from typing import assert_never

from bandit_service.core.reporting.estimates import Headline, headline
from bandit_service.core.reporting.inputs import PRIMARY, BoundKind, Guardrail, ReportInput
from bandit_service.core.reporting.values import GuardrailCheck, MetricKind
from policies.stats import StatsArray

__all__ = ["check_guardrails", "metric_period_stats", "metric_stats"]


def metric_stats(inp: ReportInput, name: str) -> StatsArray | None:
    """The statistics of a metric by name ("reward" is the primary reward); None when it has no data."""
    return inp.stats if name == PRIMARY else inp.metrics.get(name)


def metric_period_stats(inp: ReportInput, name: str) -> StatsArray | None:
    """The per-period statistics of a metric by name; None when it has none."""
    return inp.period_stats if name == PRIMARY else inp.period_metrics.get(name)


def _one_sided(h: Headline, i: int, bound: BoundKind) -> tuple[float, float]:
    """(estimate, one-sided bound) of arm i on the scale of the guardrail's limit."""
    match bound:
        case "max_increase":
            return float(h.difference[i]), float(h.difference_lower[i])
        case "max_relative_increase":
            return float(h.relative.relative[i]), float(h.relative.lower[i])
        case "max_decrease":
            return float(h.difference[i]), float(h.difference_upper[i])
        case "max_relative_decrease":
            return float(h.relative.relative[i]), float(h.relative.upper[i])
        case _:
            assert_never(bound)


def check_guardrails(inp: ReportInput, kinds: dict[str, MetricKind]) -> tuple[GuardrailCheck, ...]:
    """Check every guardrail on every non-control arm.

    Rule: an increase limit L is breached when the one-sided (1 - alpha) lower confidence bound of
    the change exceeds L, i.e. H0 "the metric rose by at most L" is rejected by a one-sided test at
    alpha = 1 - level; a decrease limit when the upper bound falls below -L. The bound is the lower
    end of the two-sided interval at level 1 - 2 alpha from the report's headline estimate
    (`estimates.headline`: pooled, or period-stratified once the weights changed; relative limits
    use the log-ratio or Fieller interval of the lift). No multiplicity or peeking correction: for
    a safety check a false alarm costs less than a miss.
    """
    checks = []
    inner_level = 1.0 - 2.0 * inp.alpha
    for g in inp.criteria.guardrails:
        bound, limit = g.bound
        stats = metric_stats(inp, g.metric)
        if stats is None:
            checks.extend(_no_data(inp, g, bound, limit, f"no data for metric {g.metric!r} yet"))
            continue
        h = headline(
            stats, metric_period_stats(inp, g.metric), inp.period_traffic, kinds[g.metric], inp.control, inner_level
        )
        for i in range(inp.k):
            if i == inp.control:
                continue
            estimate, edge = _one_sided(h, i, bound)
            defined = math.isfinite(edge)
            breached = defined and (edge > limit if "increase" in bound else edge < -limit)
            checks.append(
                GuardrailCheck(
                    metric=g.metric,
                    arm=inp.arms[i],
                    bound=bound,
                    limit=limit,
                    estimate=estimate,
                    one_sided_bound=edge,
                    breached=breached,
                    note=None if defined else "not enough data to test this arm against the control",
                )
            )
    return tuple(checks)


def _no_data(inp: ReportInput, g: Guardrail, bound: BoundKind, limit: float, note: str) -> list[GuardrailCheck]:
    return [
        GuardrailCheck(
            metric=g.metric,
            arm=inp.arms[i],
            bound=bound,
            limit=limit,
            estimate=math.nan,
            one_sided_bound=math.nan,
            breached=False,
            note=note,
        )
        for i in range(inp.k)
        if i != inp.control
    ]
