"""The recommendation: ship, keep running, or stop, from the criteria stored on the experiment.

Rule, applied to the primary criterion's metric (higher is better), on its headline figures
(pooled while the weights never changed, period-stratified once they did: the naive pooled
comparison never decides):

An arm (not the control) may ship only when all of these hold:
  1. no sample-ratio mismatch, pooled or in any weights period;
  2. peeking-safe evidence: its always-valid (mSPRT) p-value, the running minimum over every
     look so far and adjusted across the arms by the report's correction, is below
     alpha = 1 - level, and its difference is positive. The fixed-horizon p-value does not ship
     anything: it is valid for one look at a planned horizon, and an operator who reads the
     report every day is not taking one look;
  3. the lower end of its confidence sequence (the running intersection over the looks) shows
     at least `min_improvement` (absolute, or relative to the control's mean with
     `relative: true`);
  4. a configured minimum sample size (`min_sample_size`, or the power calculation for
     `minimum_detectable_effect`) is reached by every arm: a hard floor, however strong the
     evidence (an operator who set a floor asked for that much data);
  5. no guardrail is breached on it (see `guardrails`).
Among several such arms the one with the highest mean ships.

Otherwise, in this order: a breached guardrail stops the experiment (`stop_guardrail`, even
under an SRM: stopping is the safe side); a sample-ratio mismatch keeps it running with a
warning (nothing can be concluded); a minimum sample size not yet reached keeps it running with
the further units needed; at a reached minimum sample size -- the planned horizon, where the
fixed-horizon test may take its one look -- no arm significantly better at the fixed horizon
stops it (`stop_no_winner`: stopping never ships, so this look costs no false ships); always-
valid confidence sequences that rule out the required improvement for every arm stop it too;
anything else keeps it running. The Bayesian figures inform, they do not decide.
"""

from __future__ import annotations

import math

from bandit_service.core.reporting.values import (
    ComparisonFigures,
    GuardrailCheck,
    Health,
    MetricReport,
    Recommendation,
    SampleSizeCheck,
)

__all__ = ["recommend"]


def _fmt(x: float) -> str:
    return "n/a" if not math.isfinite(x) else f"{x:.4g}"


def _pct(x: float) -> str:
    return "relative lift undefined" if not math.isfinite(x) else f"{x * 100:+.3g}%"


def _need(min_improvement: float, relative: bool) -> str:
    return f"{min_improvement * 100:.4g}% (relative)" if relative else f"{min_improvement:g}"


def _keep(reason: str, more_units: int | None = None) -> Recommendation:
    return Recommendation(action="keep_running", arm=None, guardrail=None, more_units=more_units, reason=reason)


def _no_winner(reason: str) -> Recommendation:
    return Recommendation(action="stop_no_winner", arm=None, guardrail=None, more_units=None, reason=reason)


class _Rule:
    """The per-arm ship conditions for one decision metric."""

    def __init__(
        self, metric: MetricReport, control: int, alpha: float, min_improvement: float, relative: bool
    ) -> None:
        self.metric = metric
        self.control = control
        self.alpha = alpha
        self.min_improvement = min_improvement
        self.relative = relative
        self.means = {a.arm: a.mean for a in metric.arms}
        self.control_name = metric.arms[control].arm
        self.base = self.means[self.control_name]
        # The control's confidence interval: a relative bound divides by its far end, so the
        # control's own uncertainty cannot make the lift look surer than it is.
        self.base_low, self.base_high = metric.arms[control].confidence_interval

    def sequence_lift(self, comp: ComparisonFigures) -> float:
        """The lower end of the confidence sequence on the scale of `min_improvement`.

        Relative: lower / the control's upper confidence bound, a lower bound of the lift whenever
        the difference's lower end is non-negative (the only case in which it can clear the criterion).
        """
        lower = comp.confidence_sequence[0]
        if not self.relative:
            return lower
        # A control mean of 0 leaves the lift undefined: no relative criterion can be met.
        return lower / self.base_high if self.base > 0 and self.base_high > 0 else math.nan

    def blocker(self, comp: ComparisonFigures, breached: set[str]) -> str | None:
        """Why this arm cannot ship (None: it can)."""
        if not math.isfinite(comp.p_value_adjusted):
            return f"{comp.arm}: not enough data to test against {self.control_name}"
        if comp.difference <= 0 or not comp.always_valid_p_adjusted < self.alpha:
            return (
                f"{comp.arm}: not yet better under continuous monitoring (always-valid p = "
                f"{_fmt(comp.always_valid_p_adjusted)} over {comp.looks} look(s); fixed-horizon p = "
                f"{_fmt(comp.p_value_adjusted)}, valid for one planned look only)"
            )
        if _empty(comp):
            return (
                f"{comp.arm}: the confidence sequences of the looks no longer intersect (the effect moved over "
                "time); not shipping on figures that contradict each other"
            )
        unit = "relative " if self.relative else ""
        lift = self.sequence_lift(comp)
        if not lift >= self.min_improvement:
            return (
                f"{comp.arm}: the lower end of the confidence sequence on the {unit}improvement, {_fmt(lift)}, "
                f"is below the required {_need(self.min_improvement, self.relative)}"
            )
        if comp.arm in breached:
            return f"{comp.arm}: breaches a guardrail"
        return None

    def wins_at_horizon(self, comp: ComparisonFigures) -> bool:
        """The fixed-horizon test's one look: significantly better by the required improvement."""
        if not (comp.p_value_adjusted < self.alpha and comp.difference > 0):
            return False
        lower = comp.relative_interval[0] if self.relative else comp.difference_interval[0]
        return lower >= self.min_improvement

    def futile(self, comp: ComparisonFigures) -> bool:
        """The always-valid confidence sequence rules out the required improvement."""
        if _empty(comp) or (self.relative and not self.base_low > 0):
            return False
        needed = self.min_improvement * self.base_low if self.relative else self.min_improvement
        return comp.confidence_sequence[1] < needed


def _empty(comp: ComparisonFigures) -> bool:
    """The running intersection of the confidence sequences is empty."""
    lower, upper = comp.confidence_sequence
    return lower > upper


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
    health: Health,
) -> Recommendation:
    """Apply the decision rule of the module docstring."""
    srm, size = health.srm, health.sample_size
    breaches = [g for g in guardrails if g.breached]
    mismatch = health.srm_flagged
    if metric is None:
        candidates: list[ComparisonFigures] = []
        blockers: list[str] = [f"the primary metric {metric_name!r} has no data yet"]
        rule = None
    else:
        rule = _Rule(metric, control, alpha, min_improvement, relative)
        breached = {g.arm for g in breaches}
        candidates, blockers = [], []
        for comp in metric.comparisons:
            why = rule.blocker(comp, breached) if not mismatch else "sample ratio mismatch"
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
                f"({_pct(best.relative)}), always-valid p = {_fmt(best.always_valid_p_adjusted)} over "
                f"{best.looks} look(s), confidence sequence [{_fmt(best.confidence_sequence[0])}, "
                f"{_fmt(best.confidence_sequence[1])}]; required improvement {_need(min_improvement, relative)} "
                f"met, no guardrail breached, no sample ratio mismatch (p = {_fmt(srm.p_value)})"
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
    if mismatch:
        return _keep(_mismatch(health))
    if rule is None:
        return _keep(blockers[0])
    if below_floor:
        why = _below_floor(rule, size)
        if candidates:
            best = max(candidates, key=lambda comp: rule.means[comp.arm])
            why += (
                f"; {best.arm} beats {rule.control_name} on the data so far (always-valid p = "
                f"{_fmt(best.always_valid_p_adjusted)}) but the minimum sample size is a hard floor for shipping"
            )
        return _keep(why, size.more_units)
    comparisons = rule.metric.comparisons
    if comparisons and all(rule.futile(c) for c in comparisons):
        return _no_winner(
            "every arm's always-valid confidence sequence rules out the required improvement of "
            f"{_need(min_improvement, relative)} over {rule.control_name}"
        )
    if size.reached is True:
        ahead = [c for c in comparisons if rule.wins_at_horizon(c)]
        if not ahead:
            return _no_winner(
                "minimum sample size reached (the planned horizon) and no arm beats the control as required "
                "at the fixed horizon: " + "; ".join(blockers)
            )
        names = ", ".join(f"{c.arm} (p = {_fmt(c.p_value_adjusted)})" for c in ahead)
        return _keep(
            f"at the planned horizon {names} beat(s) {rule.control_name} at the fixed horizon, but not yet under "
            "continuous monitoring: keep running until the always-valid evidence is there (shipping on the "
            "fixed-horizon p-value after more than one look inflates false ships): " + "; ".join(blockers)
        )
    return _keep(
        "no decision yet (no minimum sample size configured, so only always-valid evidence can end the "
        "experiment): " + "; ".join(blockers)
    )


def _mismatch(health: Health) -> str:
    srm = health.srm
    if srm.flagged:
        return (
            f"sample ratio mismatch (chi-square {_fmt(srm.statistic)}, p = {srm.p_value:.3g} < {srm.threshold:g}): "
            "the arms' traffic does not match the allocation used, so no result can be trusted; check the "
            "assignment and logging before reading further"
        )
    bad = [p for p in health.srm_periods if p.flagged]
    versions = ", ".join(f"{p.version} (p = {p.p_value:.3g})" for p in bad)
    return (
        f"sample ratio mismatch in weights period(s) {versions}, each tested against its own weights with the "
        f"threshold {srm.threshold:g} split over the periods: the arms' traffic did not match the allocation used "
        "then, so no result can be trusted; check the assignment and logging of that time"
    )
