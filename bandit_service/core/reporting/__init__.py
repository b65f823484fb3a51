"""Experiment reports: frequentist and Bayesian comparisons side by side, health checks and a recommendation.

Pure: no I/O, no clock, no database. The service gathers a `ReportInput` from storage and calls
`build_report` (or `build_segment_reports` for `?segment=`); `render_text` serves `?format=text`.
"""

from bandit_service.core.reporting.inputs import PRIMARY, DecisionCriteria, Guardrail, PrimaryCriterion, ReportInput
from bandit_service.core.reporting.report import build_report
from bandit_service.core.reporting.segments import DEFAULT_MIN_OBSERVATIONS, build_segment_reports
from bandit_service.core.reporting.text import render_segments_text, render_text
from bandit_service.core.reporting.values import (
    ArmFigures,
    ComparisonFigures,
    GuardrailCheck,
    Health,
    MetricReport,
    OperationalArm,
    Quantiles,
    Recommendation,
    Report,
    SampleSizeCheck,
    SegmentEntry,
    SegmentReport,
)

__all__ = [
    "DEFAULT_MIN_OBSERVATIONS",
    "PRIMARY",
    "ArmFigures",
    "ComparisonFigures",
    "DecisionCriteria",
    "Guardrail",
    "GuardrailCheck",
    "Health",
    "MetricReport",
    "OperationalArm",
    "PrimaryCriterion",
    "Quantiles",
    "Recommendation",
    "Report",
    "ReportInput",
    "SampleSizeCheck",
    "SegmentEntry",
    "SegmentReport",
    "build_report",
    "build_segment_reports",
    "render_segments_text",
    "render_text",
]
