"""The report as frozen, JSON-encodable values (NaN and infinity encode as null)."""

from __future__ import annotations

from typing import Literal

import msgspec

from bandit_service.core.reporting.estimates import Estimator, HeadlineTest
from bandit_service.core.reporting.inputs import BoundKind, RewardKind
from policies.ratios import RatioMethod
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
    "PeriodSrm",
    "Quantiles",
    "Recommendation",
    "Report",
    "SampleSizeCheck",
    "SegmentEntry",
    "SegmentReport",
    "SequentialSettings",
    "SrmResult",
    "WeightsStep",
]

MetricKind = Literal["binary", "continuous"]
Action = Literal["keep_running", "ship", "stop_no_winner", "stop_guardrail"]
Interval = tuple[float, float]


class ArmFigures(msgspec.Struct, frozen=True, kw_only=True):
    """One arm's figures for one metric: the headline (the metric's `estimator`) and the pooled mean beside it."""

    arm: str
    weight: float  # current allocation weight
    units: int
    trials: int  # what the statistics count: units' trials or single decisions
    rewarded: int  # trials with a reward
    n: int  # observations of this metric
    mean: float  # headline: pooled, or period-stratified once the weights changed
    sd: float  # sample standard deviation of the observations (pooled over the periods)
    std_error: float
    confidence_interval: Interval  # pooled: Wilson for 0/1 metrics, Student t otherwise; stratified: normal
    credible_interval: Interval  # equal-tailed; the posterior of the headline mean
    prob_best: float  # posterior P(this arm has the highest mean)
    expected_loss: float  # posterior E[max_j theta_j - theta_arm]
    pooled_mean: float  # naive pooled mean (secondary; biased when weights and rates both drift)
    pooled_std_error: float


class ComparisonFigures(msgspec.Struct, frozen=True, kw_only=True):
    """One arm against the control for one metric, frequentist and Bayesian side by side.

    Every headline figure comes from the metric's `estimator`; the `pooled_*` figures are the naive
    pooled comparison, secondary. Relative figures are null where undefined (a control mean of 0,
    or an unbounded Fieller set). The always-valid figures are the running minimum p-value and the
    running intersection of the confidence sequences over every look so far (`looks`), with this
    look's own values beside them; the fixed-horizon p-value is valid for one planned look only.
    """

    arm: str
    test: HeadlineTest
    difference: float
    difference_interval: Interval
    relative: float  # mean / control mean - 1
    relative_interval: Interval
    relative_method: RatioMethod  # log_ratio (0/1 metrics) or fieller
    p_value: float  # two-sided, fixed horizon
    p_value_adjusted: float  # by the report's correction across the arms; NaN where the test is undefined
    always_valid_p_value: float  # mSPRT, running minimum over the looks
    always_valid_p_adjusted: float
    confidence_sequence: Interval  # always-valid interval on the difference, running intersection
    always_valid_p_this_look: float
    confidence_sequence_this_look: Interval
    mixture_sd: float  # tau of the mSPRT mixture N(0, tau^2) on the difference
    looks: int  # looks merged into the always-valid figures, this one included
    prob_beats_control: float
    difference_credible_interval: Interval
    lift_credible_interval: Interval  # posterior of mean / control mean - 1
    pooled_difference: float
    pooled_interval: Interval
    pooled_p_value: float
    # Weights periods the comparison is stratified over: those where both this arm and the control
    # have data (the metric's `periods` when none is left out).
    periods: int


class MetricReport(msgspec.Struct, frozen=True, kw_only=True):
    """All figures of one metric: per arm, and each non-control arm against the control."""

    name: str
    kind: MetricKind  # binary: z-test and Beta posteriors; continuous: Welch and Student-t posteriors
    estimator: Estimator  # pooled (one weights period) or stratified (the weights changed)
    periods: int  # weights periods with data
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
    correction: str | None  # how the power calculation split alpha over the comparisons (None: no calculation)
    required: tuple[int, ...]  # observations needed per arm (empty when not configured or not computable)
    observed: tuple[int, ...]  # observations of the primary criterion's metric per arm
    missing: tuple[int, ...]  # per arm, max(0, required - observed)
    reached: bool | None  # None when not configured or not computable yet
    more_units: int | None  # further units at the current weights until every arm is there
    note: str | None


class PeriodSrm(msgspec.Struct, frozen=True, kw_only=True):
    """The sample-ratio check of one weights period against that period's weights."""

    version: int
    statistic: float
    df: int
    p_value: float
    flagged: bool  # p below the threshold split over the periods with traffic (Bonferroni)
    observed: tuple[float, ...]
    expected: tuple[float, ...]


class Health(msgspec.Struct, frozen=True, kw_only=True):
    """Sample-ratio mismatch (pooled, and per weights period) and the sample-size check."""

    srm: SrmResult
    srm_periods: tuple[PeriodSrm, ...]
    sample_size: SampleSizeCheck

    @property
    def srm_flagged(self) -> bool:
        """The pooled check or any period's check flags a mismatch."""
        return self.srm.flagged or any(p.flagged for p in self.srm_periods)


class SequentialSettings(msgspec.Struct, frozen=True, kw_only=True):
    """How the always-valid figures are computed: the mSPRT mixture, tuned for `tuning_n` observations per arm."""

    tuning_n: float
    rho: float  # tau = rho * sqrt(s_arm^2 + s_control^2)
    horizon: str  # what the fixed-horizon figures are valid for


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


class WeightsStep(msgspec.Struct, frozen=True, kw_only=True):
    """One of the latest weights-history rows and why its weights moved (the API's history has every row)."""

    version: int
    created_at: float  # unix seconds
    reason: str  # what wrote the row: initial, reweight, manual, ...
    weights: tuple[float, ...]  # in the order of `Report.arms`
    because: str  # one line, every number from the posterior summaries behind the row


class Report(msgspec.Struct, frozen=True, kw_only=True):
    """The experiment report: primary reward and extra metrics, operations, health, recommendation."""

    arms: tuple[str, ...]
    control: str
    reward: RewardKind
    attribution: Attribution
    level: float
    correction: str  # holm, bonferroni or none, across the arms' comparisons with the control
    sequential: SequentialSettings
    seed: int
    primary: MetricReport
    metrics: tuple[MetricReport, ...]  # extra metrics, by name
    operational: tuple[OperationalArm, ...]
    guardrails: tuple[GuardrailCheck, ...]
    health: Health
    recommendation: Recommendation
    notes: tuple[str, ...]
    window: tuple[str, str] | None = None  # UTC days (ISO from, to) of the trials counted; None: all of them
    weights_history: tuple[WeightsStep, ...] = ()  # the latest moves, oldest first (whole-experiment reports)


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
