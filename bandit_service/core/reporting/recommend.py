"""The recommendation: ship, keep running, or stop, from the criteria stored on the experiment.

Rule, applied to the primary criterion's metric (higher is better):

An arm (not the control) may ship only when all of these hold:
  1. the sample-ratio check is not flagged;
  2. its Holm-corrected two-sided p-value (across the arms) is below alpha = 1 - level and
     its difference is positive;
  3. peeking guard: the Holm-corrected always-valid (mSPRT) p-value is also below alpha,
     unless a minimum sample size is configured and every arm has reached it (the fixed
     horizon the test was planned for);
  3a. a configured minimum sample size (`min_sample_size`, or the power calculation for
     `minimum_detectable_effect`) is a hard floor: nothing ships while any arm is below it,
     however strong the evidence, and the reason names the floor and the counts (an operator
     who set a floor asked for that much data, and the automation ships on this rule);
  4. the lower confidence bound of its improvement (absolute, or relative with
     `relative: true`) is at least `min_improvement`;
  5. its drift-corrected (period-stratified) improvement is at least `min_improvement` too,
     so an arm that only looks better because it got its traffic in a good period cannot ship
     (checked whenever the metric has per-period statistics, which the primary reward always has);
  6. no guardrail is breached on it (see `guardrails`).
Among several such arms the one with the highest mean ships.

Otherwise, in this order: a breached guardrail stops the experiment (`stop_guardrail`, even
under an SRM: stopping is the safe side); a flagged SRM keeps it running with a warning
(nothing can be concluded); a minimum sample size not yet reached keeps it running with the
further units needed; a reached minimum sample size without a shippable arm, or always-valid
confidence sequences that rule out the required improvement for every arm, stop it
(`stop_no_winner`); anything else keeps it running. The Bayesian figures inform, they do not decide.
"""

from __future__ import annotations

import math

from bandit_service.core.reporting.values import (
    ComparisonFigures,
    GuardrailCheck,
    MetricReport,
    Recommendation,
    SampleSizeCheck,
    SrmResult,
)

__all__ = ["recommend"]


def _fmt(x: float) -> str:
    return "n/a" if not math.isfinite(x) else f"{x:.4g}"


def _need(min_improvement: float, relative: bool) -> str:
    return f"{min_improvement * 100:.4g}% (relative)" if relative else f"{min_improvement:g}"


def _keep(reason: str, more_units: int | None = None) -> Recommendation:
    return Recommendation(action="keep_running", arm=None, guardrail=None, more_units=more_units, reason=reason)


class _Rule:
    """The per-arm ship conditions for one decision metric."""

    def __init__(
        self, metric: MetricReport, control: int, alpha: float, min_improvement: float, relative: bool, horizon: bool
    ) -> None:
        self.metric = metric
        self.control = control
        self.alpha = alpha
        self.min_improvement = min_improvement
        self.relative = relative
        self.horizon = horizon
        self.means = {a.arm: a.mean for a in metric.arms}
        self.corrected = {a.arm: a.corrected_mean for a in metric.arms}
        self.control_name = metric.arms[control].arm

    def lower_bound(self, comp: ComparisonFigures) -> float:
        return comp.relative_interval[0] if self.relative else comp.difference_interval[0]

    def corrected_lift(self, comp: ComparisonFigures) -> float:
        if not self.relative:
            return comp.corrected_difference
        base = self.corrected[self.control_name]
        return self.corrected[comp.arm] / base - 1.0 if base > 0 else math.nan

    def blocker(self, comp: ComparisonFigures, breached: set[str]) -> str | None:
        """Why this arm cannot ship (None: it can)."""
        if not math.isfinite(comp.p_value_holm):
            return f"{comp.arm}: not enough data to test against {self.control_name}"
        if comp.p_value_holm >= self.alpha or comp.difference <= 0:
            return f"{comp.arm}: not significantly better (Holm p = {_fmt(comp.p_value_holm)})"
        if not self.horizon and not comp.always_valid_p_holm < self.alpha:
            return (
                f"{comp.arm}: significant at a fixed horizon (Holm p = {_fmt(comp.p_value_holm)}) but not yet "
                f"under continuous monitoring (always-valid p = {_fmt(comp.always_valid_p_holm)})"
            )
        unit = "relative " if self.relative else ""
        if not self.lower_bound(comp) >= self.min_improvement:
            return (
                f"{comp.arm}: the confidence bound of the {unit}improvement, {_fmt(self.lower_bound(comp))}, "
                f"is below the required {_need(self.min_improvement, self.relative)}"
            )
        corrected = self.corrected_lift(comp)
        if not math.isnan(corrected) and not corrected >= self.min_improvement:
            return (
                f"{comp.arm}: the drift-corrected {unit}improvement, {_fmt(corrected)}, is below "
                f"the required {_need(self.min_improvement, self.relative)} (the naive figure is inflated by when "
                "the arm got its traffic)"
            )
        if comp.arm in breached:
            return f"{comp.arm}: breaches a guardrail"
        return None

    def futile(self, comp: ComparisonFigures) -> bool:
        """The always-valid confidence sequence rules out the required improvement."""
        base = self.means[self.control_name]
        needed = self.min_improvement * base if self.relative else self.min_improvement
        if self.relative and not base > 0:
            return False
        return comp.confidence_sequence[1] < needed


def _below_floor(rule: _Rule, size: SampleSizeCheck) -> str:
    """Why the minimum sample size holds the experiment: the floor, the counts, what is missing."""
    arms = [a.arm for a in rule.metric.arms]
    short = ", ".join(f"{arm} {m}" for arm, m in zip(arms, size.missing, strict=False) if m > 0)
    if not short:  # the floor cannot be computed yet (a power calculation without the control's data)
        return f"minimum sample size not reached: {size.note}" if size.note else "minimum sample size not reached"
    if len(set(size.required)) == 1:
        floor = f"{size.required[0]} observations per arm"
    else:
        floor = ", ".join(f"{arm} {r}" for arm, r in zip(arms, size.required, strict=False))
    observed = ", ".join(f"{arm} {o}" for arm, o in zip(arms, size.observed, strict=False))
    why = f"minimum sample size not reached (observations still missing: {short}; floor {floor}, observed {observed})"
    if size.more_units is not None:
        why += f"; about {size.more_units} more units at the current weights"
    elif size.note:
        why += f"; {size.note}"
    return why


def recommend(
    metric: MetricReport | None,
    *,
    metric_name: str,
    control: int,
    alpha: float,
    min_improvement: float,
    relative: bool,
    guardrails: tuple[GuardrailCheck, ...],
    srm: SrmResult,
    size: SampleSizeCheck,
) -> Recommendation:
    """Apply the decision rule of the module docstring."""
    breaches = [g for g in guardrails if g.breached]
    if metric is None:
        candidates: list[ComparisonFigures] = []
        blockers: list[str] = [f"the primary metric {metric_name!r} has no data yet"]
        rule = None
    else:
        rule = _Rule(metric, control, alpha, min_improvement, relative, size.reached is True)
        breached = {g.arm for g in breaches}
        candidates, blockers = [], []
        for comp in metric.comparisons:
            why = rule.blocker(comp, breached) if not srm.flagged else "sample ratio mismatch"
            if why is None:
                candidates.append(comp)
            else:
                blockers.append(why)

    below_floor = size.configured and size.reached is not True
    if candidates and rule is not None and not below_floor:
        best = max(candidates, key=lambda comp: rule.means[comp.arm])
        return Recommendation(
            action="ship",
            arm=best.arm,
            guardrail=None,
            more_units=None,
            reason=(
                f"ship {best.arm}: it beats {rule.control_name} on {metric_name} by {_fmt(best.difference)} "
                f"({_fmt(best.relative * 100)}%; interval [{_fmt(best.difference_interval[0])}, "
                f"{_fmt(best.difference_interval[1])}]), Holm p = {_fmt(best.p_value_holm)}, always-valid "
                f"p = {_fmt(best.always_valid_p_holm)}, drift-corrected difference "
                f"{_fmt(best.corrected_difference)}; required improvement {_need(min_improvement, relative)} met, "
                f"no guardrail breached, no sample ratio mismatch (p = {_fmt(srm.p_value)})"
            ),
        )
    if breaches:
        g = breaches[0]
        return Recommendation(
            action="stop_guardrail",
            arm=g.arm,
            guardrail=g.metric,
            more_units=None,
            reason=(
                f"stop: {g.arm} breaches the {g.metric} guardrail ({g.bound} {g.limit:g}): observed change "
                f"{_fmt(g.estimate)}, one-sided {1 - alpha:.0%} bound {_fmt(g.one_sided_bound)}"
            ),
        )
    if srm.flagged:
        return _keep(
            f"sample ratio mismatch (chi-square {_fmt(srm.statistic)}, p = {srm.p_value:.3g} < {srm.threshold:g}): "
            "the arms' traffic does not match the allocation used, so no result can be trusted; check the "
            "assignment and logging before reading further"
        )
    if rule is None:
        return _keep(blockers[0])
    if below_floor:
        why = _below_floor(rule, size)
        if candidates:
            best = max(candidates, key=lambda comp: rule.means[comp.arm])
            why += (
                f"; {best.arm} beats {rule.control_name} on the data so far (Holm p = {_fmt(best.p_value_holm)}, "
                f"always-valid p = {_fmt(best.always_valid_p_holm)}) but the minimum sample size is a hard floor "
                "for shipping"
            )
        return _keep(why, size.more_units)
    if size.reached is True:
        return Recommendation(
            action="stop_no_winner",
            arm=None,
            guardrail=None,
            more_units=None,
            reason="minimum sample size reached and no arm beats the control as required: " + "; ".join(blockers),
        )
    if rule.metric.comparisons and all(rule.futile(c) for c in rule.metric.comparisons):
        return Recommendation(
            action="stop_no_winner",
            arm=None,
            guardrail=None,
            more_units=None,
            reason=(
                "every arm's always-valid confidence sequence rules out the required improvement of "
                f"{_need(min_improvement, relative)} over {rule.control_name}"
            ),
        )
    return _keep(
        "no decision yet (no minimum sample size configured, so only always-valid evidence can end the "
        "experiment): " + "; ".join(blockers)
    )
