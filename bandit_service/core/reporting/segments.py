"""Reports split by the values of one decision attribute (`?segment=language`)."""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from bandit_service.core.reporting.guardrails import metric_stats
from bandit_service.core.reporting.inputs import ReportInput
from bandit_service.core.reporting.report import build_report
from bandit_service.core.reporting.values import Recommendation, SegmentEntry, SegmentReport

__all__ = ["DEFAULT_MIN_OBSERVATIONS", "build_segment_reports"]

# Below 100 observations per arm a 0/1 metric's interval is wider than +-10 points near a rate
# of 0.5, and the normal approximations behind the tests are not yet trustworthy.
DEFAULT_MIN_OBSERVATIONS = 100

SEGMENT_NOTE = (
    "segment figures are exploratory: p-values are corrected across arms but not across segments, "
    "so decide on the whole experiment, not on the best-looking segment"
)


def build_segment_reports(
    attribute: str, segments: Mapping[str, ReportInput], *, min_observations: int = DEFAULT_MIN_OBSERVATIONS
) -> SegmentReport:
    """One report per value of `attribute`, each built from that segment's own counters.

    A segment is too small when some arm has fewer than `min_observations` observations of the
    primary criterion's metric: its figures are still given, with a note, and its
    recommendation is always `keep_running`.
    """
    if not attribute:
        raise ValueError("attribute: must be a non-empty attribute name")
    if isinstance(min_observations, bool) or not isinstance(min_observations, int) or min_observations < 1:
        raise ValueError(f"min_observations: must be a positive integer, got {min_observations!r}")
    entries = []
    for value in sorted(segments):
        inp = segments[value]
        report = build_report(inp)
        stats = metric_stats(inp, inp.criteria.primary.metric)
        counts = [0.0] * inp.k if stats is None else stats.n.tolist()
        small = [f"{arm} ({int(n)})" for arm, n in zip(inp.arms, counts, strict=True) if n < min_observations]
        note = None
        if small:
            note = (
                f"too small to say anything: fewer than {min_observations} observations of "
                f"{inp.criteria.primary.metric} for {', '.join(small)}"
            )
            hold = Recommendation(action="keep_running", arm=None, guardrail=None, more_units=None, reason=note)
            report = msgspec.structs.replace(report, recommendation=hold)
        entries.append(SegmentEntry(value=value, too_small=bool(small), note=note, report=report))
    return SegmentReport(
        attribute=attribute, min_observations=min_observations, segments=tuple(entries), note=SEGMENT_NOTE
    )
