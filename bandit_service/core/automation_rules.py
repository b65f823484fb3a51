"""Automation rules: what the scheduler does to an experiment on its own, and when it ends.

Each action is optional; none is armed unless the operator sets it. The scheduler looks once per
reweight interval (`reweight_every_s`, counted from the first start) and checks the end on every
tick (see `services.automation`); `decide` is the whole rule as a pure function of (experiment,
report, now), so a fake clock tests it and the service only applies its result. Every action is
recorded in the audit log with the report figures that triggered it (`report_figures`).

The rule, in this order:
1. the end has come (`ends_at`, or `max_duration_s` after the first start): complete an active or
   paused experiment (audit action "ended"), with the winner of a running gradual completion, or
   the arm the report ships if `on_ship` is armed, else with the control (no winner);
2. at a look of an active experiment whose gradual completion is not running:
   a breached guardrail and `on_guardrail_breach`: pause ("auto_pause"; every unit gets the
   control) or put all weight on the control and stop the policy's reweights ("auto_control";
   units already assigned keep their arm, new units get the control);
   a `ship` recommendation and `on_ship`: complete with the winner at once, or start a gradual
   completion with `ship_plan` ("auto_complete");
   a `stop_no_winner` recommendation and `on_stop_no_winner`: complete with the control
   ("auto_complete", no winner).
A breached guardrail wins over a ship: pausing is the safe side. An action happens once: after it
the experiment is paused, completed, completing or already on the control, and the rule holds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Literal

import msgspec

from bandit_service.core.automation import Automation, AutomationStep
from bandit_service.core.model import Experiment, ExperimentConfig
from bandit_service.core.reporting.inputs import PRIMARY
from bandit_service.core.reporting.values import GuardrailCheck, MetricReport, Report

__all__ = [
    "AUTOMATION",
    "AutomationAction",
    "Complete",
    "Hold",
    "Pause",
    "ShiftToControl",
    "ShipGradually",
    "armed",
    "decide",
    "end_of",
    "look_index",
    "report_figures",
    "watched",
]

AUTOMATION = "automation"
"""The audit log's actor of automatic actions."""


class Hold(msgspec.Struct, frozen=True, tag="hold"):
    """Nothing to do now."""


class Pause(msgspec.Struct, frozen=True, tag="pause", kw_only=True):
    """A guardrail is breached: pause the experiment (audit action "auto_pause")."""

    reason: str
    figures: dict[str, Any]


class ShiftToControl(msgspec.Struct, frozen=True, tag="control", kw_only=True):
    """A guardrail is breached: all weight to the control, reweights stopped (audit action "auto_control")."""

    weights: tuple[float, ...]
    reason: str
    figures: dict[str, Any]


class Complete(msgspec.Struct, frozen=True, tag="complete", kw_only=True):
    """Complete now with `winner` (None: no winner, every unit gets the control)."""

    action: Literal["auto_complete", "ended"]
    winner: str | None
    reason: str
    figures: dict[str, Any]


class ShipGradually(msgspec.Struct, frozen=True, tag="ship_plan", kw_only=True):
    """Start a gradual completion: shift traffic to `winner` along `steps`, then complete ("auto_complete")."""

    winner: str
    steps: tuple[AutomationStep, ...]
    reason: str
    figures: dict[str, Any]


AutomationAction = Hold | Pause | ShiftToControl | Complete | ShipGradually


def armed(automation: Automation | None) -> bool:
    """Whether any automatic action is set."""
    if automation is None:
        return False
    return any(
        value is not None
        for value in (automation.on_guardrail_breach, automation.on_ship, automation.on_stop_no_winner)
    )


def end_of(config: ExperimentConfig, started_at: float | None) -> float | None:
    """When the experiment ends on its own: the earlier of `ends_at` and first start + `max_duration_s`."""
    ends = [config.ends_at] if config.ends_at is not None else []
    if config.max_duration_s is not None and started_at is not None:
        ends.append(started_at + config.max_duration_s)
    return min(ends) if ends else None


def watched(config: ExperimentConfig) -> bool:
    """Whether the scheduler's automation pass has anything to do for an experiment with this config."""
    return armed(config.automation) or config.ends_at is not None or config.max_duration_s is not None


def look_index(started_at: float | None, every_s: int, now: float) -> int:
    """How many whole reweight intervals have passed since the first start: a look is due when it grows."""
    if started_at is None or now < started_at:
        return 0
    return int((now - started_at) // every_s)


def _when(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat().replace("+00:00", "Z")


def _end_reason(config: ExperimentConfig, started_at: float | None, end: float) -> str:
    if config.ends_at is not None and config.ends_at == end:
        return f"the end date {_when(end)} has passed"
    return f"max_duration_s {config.max_duration_s} since the first start at {_when(started_at or 0.0)} has passed"


def _number(x: float) -> float | None:
    """A figure for the audit log (JSON): NaN and infinity as null."""
    return float(x) if math.isfinite(x) else None


def _fmt(x: float) -> str:
    return f"{x:+.4g}" if math.isfinite(x) else "n/a"


def _metric(report: Report, name: str) -> MetricReport | None:
    return next((m for m in (report.primary, *report.metrics) if m.name == name), None)


def _breach(g: GuardrailCheck) -> dict[str, Any]:
    return {
        "metric": g.metric,
        "arm": g.arm,
        "bound": g.bound,
        "limit": g.limit,
        "estimate": _number(g.estimate),
        "one_sided_bound": _number(g.one_sided_bound),
    }


def report_figures(report: Report, metric: str = PRIMARY) -> dict[str, Any]:
    """The report figures an automatic action records: recommendation, tests, breaches, sample sizes."""
    rec = report.recommendation
    figures = _metric(report, metric)
    size = report.health.sample_size
    return {
        "recommendation": {"action": rec.action, "arm": rec.arm, "guardrail": rec.guardrail, "reason": rec.reason},
        "metric": metric,
        "arms": [
            {"arm": a.arm, "n": a.n, "mean": _number(a.mean), "prob_best": _number(a.prob_best)}
            for a in (figures.arms if figures is not None else ())
        ],
        "comparisons": [
            {
                "arm": c.arm,
                "difference": _number(c.difference),
                "p_value_adjusted": _number(c.p_value_adjusted),
                "always_valid_p_adjusted": _number(c.always_valid_p_adjusted),
                "looks": c.looks,
                "prob_beats_control": _number(c.prob_beats_control),
            }
            for c in (figures.comparisons if figures is not None else ())
        ],
        "guardrails_breached": [_breach(g) for g in report.guardrails if g.breached],
        "sample_size": {"required": list(size.required), "observed": list(size.observed), "reached": size.reached},
        "srm_p_value": _number(report.health.srm.p_value),
    }


def _breach_reason(breaches: Sequence[GuardrailCheck], control: str) -> str:
    parts = [
        f"the {g.metric} guardrail ({g.bound} {g.limit:g} against {control}) is breached by {g.arm}: observed "
        f"change {_fmt(g.estimate)}, one-sided bound {_fmt(g.one_sided_bound)}"
        for g in breaches
    ]
    return "; ".join(parts)


def decide(experiment: Experiment, report: Report | None, now: float, *, completing: str | None) -> AutomationAction:
    """The automatic action now (module docstring); `completing` is the winner of a running gradual completion.

    `report` is the experiment's report at this look (None: no look now, only the end is checked).
    """
    config = experiment.config
    automation = config.automation or Automation()
    metric = config.criteria.primary.metric if config.criteria is not None else PRIMARY
    figures = report_figures(report, metric) if report is not None else {}
    end = end_of(config, experiment.started_at)
    if experiment.status in ("active", "paused") and end is not None and now >= end:
        reason = _end_reason(config, experiment.started_at, end)
        winner = completing
        if winner is not None:
            reason += f": completed with {winner}, the winner its gradual completion was shifting to"
        elif automation.on_ship is not None and report is not None and report.recommendation.action == "ship":
            winner = report.recommendation.arm
            reason += f": completed with {winner}, which the report ships (on_ship)"
        else:
            reason += f": completed without a winner, every unit gets the control {config.control}"
        return Complete(action="ended", winner=winner, reason=reason, figures=figures)
    if experiment.status != "active" or completing is not None or report is None:
        return Hold()
    breaches = [g for g in report.guardrails if g.breached]
    if breaches and automation.on_guardrail_breach == "pause":
        return Pause(reason=_breach_reason(breaches, report.control), figures=figures)
    if breaches and automation.on_guardrail_breach == "control":
        control = experiment.control_index
        weights = tuple(1.0 if i == control else 0.0 for i in range(len(experiment.arms)))
        if tuple(experiment.weights) == weights and experiment.next_reweight_at is None:
            return Hold()  # already on the control
        return ShiftToControl(weights=weights, reason=_breach_reason(breaches, report.control), figures=figures)
    rec = report.recommendation
    if rec.action == "ship" and rec.arm is not None and automation.on_ship is not None:
        if automation.ship_plan is not None:
            return ShipGradually(winner=rec.arm, steps=automation.ship_plan, reason=rec.reason, figures=figures)
        return Complete(action="auto_complete", winner=rec.arm, reason=rec.reason, figures=figures)
    if rec.action == "stop_no_winner" and automation.on_stop_no_winner is not None:
        return Complete(action="auto_complete", winner=None, reason=rec.reason, figures=figures)
    return Hold()
