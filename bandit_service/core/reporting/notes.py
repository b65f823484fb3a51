"""The report's notes on its own reliability: drift, small counts, undefined and unreliable relative figures.

Documented minimums (README, "Reading a report"): a 0/1 metric needs at least `MIN_EVENTS`
successes and as many failures in every arm, any other metric `MIN_OBSERVATIONS` observations
per arm, before its normal-approximation intervals and p-values are to be trusted (the usual
np >= 10 rule for proportions; Agresti & Caffo, 2000, show Wald-type intervals fail below it).
A Fieller interval is flagged unreliable when g = (z se_c / m_c)^2 exceeds `FIELLER_G`
(Fieller, 1954; the ratio is poorly determined well before the set becomes unbounded at g = 1).
"""

from __future__ import annotations

import math

from scipy import stats as sps

from bandit_service.core.reporting.values import MetricReport

__all__ = ["FIELLER_G", "MIN_EVENTS", "MIN_OBSERVATIONS", "metric_notes"]

MIN_EVENTS = 10
MIN_OBSERVATIONS = 30
FIELLER_G = 0.1


def _few(m: MetricReport) -> str | None:
    """Arms below the documented minimum of events (0/1 metrics) or observations."""
    short = []
    for a in m.arms:
        if a.n == 0:
            continue
        if m.kind == "binary":
            events = round(a.pooled_mean * a.n) if math.isfinite(a.pooled_mean) else 0
            if min(events, a.n - events) < MIN_EVENTS:
                short.append(f"{a.arm} {events}/{a.n}")
        elif a.n < MIN_OBSERVATIONS:
            short.append(f"{a.arm} n = {a.n}")
    if not short:
        return None
    need = (
        f"fewer than {MIN_EVENTS} successes or {MIN_EVENTS} failures"
        if m.kind == "binary"
        else f"fewer than {MIN_OBSERVATIONS} observations"
    )
    return (
        f"{m.name}: few {'events' if m.kind == 'binary' else 'observations'} ({', '.join(short)}; {need}):"
        " intervals and p-values rest on normal "
        "approximations that are unreliable at these counts; read them as rough"
    )


def _relative(m: MetricReport, control: str, z: float) -> list[str]:
    """Zero control, unbounded or unreliable relative intervals."""
    base = next(a for a in m.arms if a.arm == control)
    if base.n > 0 and base.mean == 0:
        return [
            f"{m.name}: relative lift undefined: control mean is 0 ({control} "
            f"{'has no events yet' if m.kind == 'binary' else 'averages exactly 0'}); the relative "
            "figures are left out (null), the differences stand"
        ]
    notes: list[str] = []
    if m.kind == "binary":
        return notes  # the log-ratio interval is covered by the few-events note
    if base.mean != 0 and math.isfinite(base.std_error):
        g = (z * base.std_error / base.mean) ** 2
        if g >= 1:
            notes.append(
                f"{m.name}: relative interval undefined: {control}'s mean is not distinguishable from 0, so "
                "Fieller's interval for the lift is unbounded; read the differences instead"
            )
        elif g > FIELLER_G:
            notes.append(
                f"{m.name}: relative intervals unreliable: {control}'s mean is uncertain (Fieller's g = {g:.2f} > "
                f"{FIELLER_G:g}); the lift interval is wide and skewed; read the differences instead"
            )
    return notes


def _drift(m: MetricReport, alpha: float) -> str | None:
    """The naive pooled difference points the other way from the headline one, and its own test calls it real.

    A flip of two differences that are both noise is not the paradox: the note asks for a pooled
    p-value below alpha, so it fires when the naive figure would have misled a reader.
    """
    flipped = [
        c
        for c in m.comparisons
        if math.isfinite(c.difference)
        and math.isfinite(c.pooled_difference)
        and c.difference * c.pooled_difference < 0
        and c.pooled_p_value < alpha
    ]
    if not flipped:
        return None
    parts = ", ".join(f"{c.arm}: {c.pooled_difference:+.4g} pooled, {c.difference:+.4g} corrected" for c in flipped)
    return (
        f"{m.name}: the naive pooled difference points the other way from the drift-corrected one ({parts}): "
        "the arms got their traffic in periods with different rates (Simpson's paradox); trust the corrected figure"
    )


def _empty_sequence(m: MetricReport) -> str | None:
    empty = [c.arm for c in m.comparisons if c.confidence_sequence[0] > c.confidence_sequence[1]]
    if not empty:
        return None
    return (
        f"{m.name}: the running intersection of the confidence sequences of {', '.join(empty)} is empty: under the "
        "model this happens with probability at most alpha; more often it means the effect drifted over time"
    )


def _unshared(m: MetricReport, control: str) -> str | None:
    """Comparisons stratified over fewer periods than the metric has: one arm had no data in the others."""
    if m.estimator != "stratified":
        return None
    parts = []
    for c in m.comparisons:
        if c.periods == 0:
            parts.append(f"{c.arm} against {control} is undefined: no weights period where both had data")
        elif c.periods < m.periods:
            parts.append(
                f"{c.arm} against {control} uses the {c.periods} of {m.periods} weights periods where both had data"
            )
    if not parts:
        return None
    return (
        f"{m.name}: " + "; ".join(parts) + " (an arm at weight 0 in a period has no estimate there, and comparing "
        "the arms over different periods would bring back the drift bias)"
    )


def metric_notes(m: MetricReport, control: str, level: float) -> list[str]:
    """Every reliability note of one metric, in reading order."""
    z = float(sps.norm.ppf(0.5 + level / 2.0))
    notes = [_drift(m, 1.0 - level), _unshared(m, control), _few(m), *_relative(m, control, z), _empty_sequence(m)]
    return [n for n in notes if n is not None]
