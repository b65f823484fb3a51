"""The report as frozen, JSON-encodable values (NaN and infinity encode as null)."""

from __future__ import annotations

from typing import Literal

import msgspec

from bandit_service.core.reporting.inputs import BoundKind, RewardKind
from policies.frequentist import TestKind
from policies.srm import SrmResult

__all__ = [
    "Action",
    "ArmFigures",
    "Attribution",
    "ComparisonFigures",
    "GuardrailCheck",
    "Health",
    "MetricKind",
    "MetricReport",
    "OperationalArm",
    "Quantiles",
    "Recommendation",
    "Report",
    "SampleSizeCheck",
    "SegmentEntry",
    "SegmentReport",
    "SrmResult",
]

MetricKind = Literal["binary", "continuous"]
Action = Literal["keep_running", "ship", "stop_no_winner", "stop_guardrail"]
Interval = tuple[float, float]


class ArmFigures(msgspec.Struct, frozen=True, kw_only=True):
    """One arm's figures for one metric."""

    arm: str
    weight: float  # current allocation weight
    units: int
    trials: int  # what the statistics count: units' trials or single decisions
    rewarded: int  # trials with a reward
    n: int  # observations of this metric
    mean: float  # naive pooled mean
    sd: float
    std_error: float
    confidence_interval: Interval  # Wilson for 0/1 metrics, Student t otherwise
    credible_interval: Interval  # equal-tailed, conjugate posterior
    corrected_mean: float  # period-stratified, drift-corrected (NaN without per-period statistics)
    corrected_std_error: float
    prob_best: float  # posterior P(this arm has the highest mean)
    expected_loss: float  # posterior E[max_j theta_j - theta_arm]


class ComparisonFigures(msgspec.Struct, frozen=True, kw_only=True):
    """One arm against the control for one metric, frequentist and Bayesian side by side."""

    arm: str
    test: TestKind
    difference: float
    difference_interval: Interval
    relative: float  # mean / control mean - 1
    relative_interval: Interval  # delta method
    p_value: float  # two-sided, fixed horizon
    p_value_holm: float  # Holm across the arms of this metric; NaN where the test is undefined
    always_valid_p_value: float  # mSPRT
    always_valid_p_holm: float
    confidence_sequence: Interval  # always-valid interval on the difference
    corrected_difference: float  # stratified means, drift-corrected
    corrected_interval: Interval
    prob_beats_control: float
    difference_credible_interval: Interval
    lift_credible_interval: Interval  # posterior of mean / control mean - 1


class MetricReport(msgspec.Struct, frozen=True, kw_only=True):
    """All figures of one metric: per arm, and each non-control arm against the control."""

    name: str
    kind: MetricKind  # binary: z-test and Beta posteriors; continuous: Welch and Student-t posteriors
    arms: tuple[ArmFigures, ...]
    comparisons: tuple[ComparisonFigures, ...]


class Quantiles(msgspec.Struct, frozen=True, kw_only=True):
    """Quantiles of a sketched metric (within the sketch's relative accuracy)."""

    count: int
    p50: float
    p95: float
    p99: float


class OperationalArm(msgspec.Struct, frozen=True, kw_only=True):
    """What an operator watches during a rollout, per arm."""

    arm: str
    weight: float
    units: int
    trials: int
    exposures: int | None  # decisions served (a unit trial's repeated decisions included); None: not known
    rewarded: int
    pending: int
    excluded: int  # trials whose window closed without a reward, left out (missing "exclude")
    error_rate: float | None  # mean of the error metric, None when no such metric
    quantiles: dict[str, Quantiles]
    local: int = 0  # decisions SDKs evaluated locally and logged (in the counts above too)
    contradicted: int = 0  # of those, decisions whose arm differed from the unit's sticky arm on the service


class GuardrailCheck(msgspec.Struct, frozen=True, kw_only=True):
    """One guardrail on one non-control arm: breached when the one-sided bound passes the limit."""

    metric: str
    arm: str
    bound: BoundKind
    limit: float
    estimate: float  # observed change (absolute or relative, as the bound)
    one_sided_bound: float  # lower bound for an increase limit, upper bound for a decrease limit
    breached: bool
    note: str | None


class SampleSizeCheck(msgspec.Struct, frozen=True, kw_only=True):
    """Is the minimum sample size reached, and how much more traffic is needed if not."""

    configured: bool
    required: tuple[int, ...]  # observations needed per arm (empty when not configured or not computable)
    observed: tuple[int, ...]  # observations of the primary criterion's metric per arm
    missing: tuple[int, ...]  # per arm, max(0, required - observed)
    reached: bool | None  # None when not configured or not computable yet
    more_units: int | None  # further units at the current weights until every arm is there
    note: str | None


class Health(msgspec.Struct, frozen=True, kw_only=True):
    """Sample-ratio mismatch against the allocation actually used, and the sample-size check."""

    srm: SrmResult
    sample_size: SampleSizeCheck


class Recommendation(msgspec.Struct, frozen=True, kw_only=True):
    """What to do now, and why."""

    action: Action
    arm: str | None  # the arm to ship, or the arm breaching a guardrail
    guardrail: str | None  # the breached guardrail's metric
    more_units: int | None  # keep_running: further units needed, when known
    reason: str


class Attribution(msgspec.Struct, frozen=True, kw_only=True):
    """What the report counts: trials of units or single decisions, and how a trial gets its value."""

    trial: Literal["unit", "decision"]
    aggregate: Literal["sum", "max", "mean", "last"]  # how a unit trial's rewards combine
    missing: float | None  # the value of a trial without a reward; None: such trials are excluded
    excluded: int  # trials left out because they got no reward


class Report(msgspec.Struct, frozen=True, kw_only=True):
    """The experiment report: primary reward and extra metrics, operations, health, recommendation."""

    arms: tuple[str, ...]
    control: str
    reward: RewardKind
    attribution: Attribution
    level: float
    seed: int
    primary: MetricReport
    metrics: tuple[MetricReport, ...]  # extra metrics, by name
    operational: tuple[OperationalArm, ...]
    guardrails: tuple[GuardrailCheck, ...]
    health: Health
    recommendation: Recommendation
    notes: tuple[str, ...]


class SegmentEntry(msgspec.Struct, frozen=True, kw_only=True):
    """The report of one value of the segmenting attribute."""

    value: str
    too_small: bool
    note: str | None
    report: Report


class SegmentReport(msgspec.Struct, frozen=True, kw_only=True):
    """Every figure split by the values of one decision attribute."""

    attribute: str
    min_observations: int  # per arm, below which a segment is too small
    segments: tuple[SegmentEntry, ...]
    note: str
