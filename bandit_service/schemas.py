"""Wire schemas: the frozen msgspec Structs that requests decode into and responses encode from.

Constraints live in the types (`Meta`), so a body is validated once, while it is decoded, and
every struct forbids unknown fields. Cross-field rules (duplicate arm names, weights that sum
to 1, a control that is one of the arms) are checked by the domain, which names the field.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

from bandit_service.reporting.inputs import DecisionCriteria
from policies import PolicyConfig, ThompsonSampling

__all__ = [
    "ArmIn",
    "ArmOut",
    "ArmStatsOut",
    "AttributeValue",
    "Attributes",
    "CompleteIn",
    "CompletionOut",
    "DecisionCriteria",
    "DecisionIn",
    "DecisionOut",
    "EventList",
    "EventOut",
    "ExperimentIn",
    "ExperimentList",
    "ExperimentOut",
    "ExperimentPatch",
    "ExperimentStatus",
    "ExposureIn",
    "HealthOut",
    "MetricStatsOut",
    "Namespace",
    "PlanStatus",
    "Problem",
    "RampIn",
    "RampOut",
    "RampStepIn",
    "RewardBatchOut",
    "RewardIn",
    "RewardKind",
    "RewardOut",
    "RewardResult",
    "ShiftStepIn",
    "StatsOut",
    "Targeting",
    "WeightsHistoryOut",
    "WeightsIn",
    "WeightsReason",
    "WeightsRecordOut",
]

NO_NUL = r"^[^\x00]*$"

Key = Annotated[
    str,
    Meta(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$", description="Slug: lowercase letters, digits, '-' and '_'."),
]
ArmName = Annotated[
    str,
    Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:@/+-]{0,63}$", description="1-64 characters: letters, digits, _.:@/+-"),
]
Name = Annotated[str, Meta(min_length=1, max_length=200, pattern=NO_NUL)]
Description = Annotated[str, Meta(max_length=4_000, pattern=NO_NUL)]
UnitId = Annotated[str, Meta(min_length=1, max_length=256, pattern=NO_NUL, description="User, tenant or request id.")]
DecisionId = Annotated[str, Meta(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
IdempotencyKey = Annotated[str, Meta(min_length=1, max_length=200, pattern=NO_NUL)]
AttributeKey = Annotated[str, Meta(pattern=r"^[A-Za-z_][A-Za-z0-9_.:-]{0,63}$")]
MetricName = Annotated[str, Meta(pattern=r"^[A-Za-z_][A-Za-z0-9_.:-]{0,63}$")]
Probability = Annotated[float, Meta(ge=0.0, le=1.0)]
# JSON cannot carry NaN or infinity; the bound also keeps sums of squares finite for 1e9 events.
Finite = Annotated[float, Meta(ge=-1e15, le=1e15, description="A finite number, |x| <= 1e15.")]
Count = Annotated[int, Meta(ge=0, le=1_000_000_000)]
Seconds = Annotated[int, Meta(ge=1, le=366 * 86_400)]
SampleSize = Annotated[int, Meta(ge=1, le=1_000_000_000, description="Observations per arm.")]
AttributeValue = (
    Annotated[str, Meta(max_length=256, pattern=NO_NUL)] | bool | Annotated[int, Meta(ge=-(2**53), le=2**53)] | Finite
)
Attributes = Annotated[dict[AttributeKey, AttributeValue], Meta(max_length=64)]
Targeting = Annotated[
    dict[AttributeKey, AttributeValue | Annotated[list[AttributeValue], Meta(min_length=1, max_length=100)]],
    Meta(max_length=32, description="attribute -> allowed value or list of allowed values; all must match"),
]
Metrics = Annotated[dict[MetricName, Finite], Meta(max_length=32)]

ExperimentStatus = Literal["draft", "active", "paused", "completed"]
RewardKind = Literal["bernoulli", "continuous"]
WeightsReason = Literal["start", "schedule", "manual", "shift"]
PlanStatus = Literal["running", "done", "stopped", "cancelled"]
HoldSeconds = Annotated[int, Meta(ge=1, le=10 * 365 * 86_400, description="Seconds to hold a step.")]


class _Wire(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Common options: immutable, unknown fields refused."""


class Namespace(_Wire, frozen=True, kw_only=True):
    """A mutually exclusive group: the experiment takes units whose namespace hash is in [start, end)."""

    name: Key
    start: Probability = 0.0
    end: Probability = 1.0

    def __post_init__(self) -> None:
        # Checked while decoding, so the problem names `namespace` like any other bad value.
        if self.start >= self.end:
            raise ValueError(f"start ({self.start}) must be below end ({self.end})")


class ArmIn(_Wire, frozen=True, kw_only=True):
    """An arm: its name, an optional starting (or fixed) weight, and any JSON the app needs."""

    name: ArmName
    weight: Probability | None = None
    payload: Any = None


class ExperimentIn(_Wire, frozen=True, kw_only=True):
    """Body of POST /v1/experiments."""

    key: Key
    name: Name
    description: Description = ""
    arms: Annotated[tuple[ArmIn, ...], Meta(min_length=2, max_length=50)]
    control: ArmName | None = None
    policy: PolicyConfig = ThompsonSampling()
    reward: RewardKind = "bernoulli"
    reweight_every_s: Seconds = 3_600
    exposure: Probability = 1.0
    targeting: Targeting = msgspec.field(default_factory=dict)
    sticky: bool = True
    reward_window_s: Seconds = 86_400
    default_reward: Finite = 0.0
    namespace: Namespace | None = None
    # Analysis: the report's decision rule and the sample size it plans for (changeable at any time).
    criteria: DecisionCriteria | None = None
    min_sample_size: SampleSize | None = None
    minimum_detectable_effect: Finite | None = None  # absolute, or a share of the control's mean with mde_relative
    mde_relative: bool = False


class ExperimentPatch(_Wire, frozen=True, kw_only=True):
    """Body of PATCH /v1/experiments/{key}; arms, control, policy and reward settings only while draft."""

    name: Name | UnsetType = UNSET
    description: Description | UnsetType = UNSET
    exposure: Probability | UnsetType = UNSET
    targeting: Targeting | UnsetType = UNSET
    reweight_every_s: Seconds | UnsetType = UNSET
    arms: Annotated[tuple[ArmIn, ...], Meta(min_length=2, max_length=50)] | UnsetType = UNSET
    control: ArmName | UnsetType | None = UNSET
    policy: PolicyConfig | UnsetType = UNSET
    reward: RewardKind | UnsetType = UNSET
    sticky: bool | UnsetType = UNSET
    reward_window_s: Seconds | UnsetType = UNSET
    default_reward: Finite | UnsetType = UNSET
    namespace: Namespace | UnsetType | None = UNSET
    criteria: DecisionCriteria | UnsetType | None = UNSET
    min_sample_size: SampleSize | UnsetType | None = UNSET
    minimum_detectable_effect: Finite | UnsetType | None = UNSET
    mde_relative: bool | UnsetType = UNSET


class ShiftStepIn(_Wire, frozen=True, kw_only=True):
    """One step of a gradual completion: the winner's share of traffic, held `hold_s` seconds."""

    share: Probability
    hold_s: HoldSeconds | None = None


class CompleteIn(_Wire, frozen=True, kw_only=True):
    """Body of POST .../complete: the winning arm (or null: the control), and optionally a plan to shift to it."""

    winner: ArmName | None = None
    plan: Annotated[tuple[ShiftStepIn, ...], Meta(min_length=1, max_length=100)] | None = None


class WeightsIn(_Wire, frozen=True, kw_only=True):
    """Body of PUT .../weights: manual weights of a fixed split, one per arm, summing to 1."""

    weights: Annotated[dict[ArmName, Finite], Meta(min_length=1, max_length=50)]


class DecisionIn(_Wire, frozen=True, kw_only=True):
    """Body of POST /v1/decisions."""

    experiment: Key
    unit: UnitId | None = None
    attributes: Attributes = msgspec.field(default_factory=dict)


class DecisionOut(_Wire, frozen=True, kw_only=True):
    """The arm to use, with what is needed to report its reward and analyse it later."""

    decision_id: str
    experiment: str
    arm: str
    payload: Any
    propensity: float
    weights_version: int
    in_experiment: bool


class RewardIn(_Wire, frozen=True, kw_only=True):
    """Body of POST /v1/rewards (and one item of POST /v1/rewards/batch)."""

    decision_id: DecisionId
    reward: Finite
    metrics: Metrics = msgspec.field(default_factory=dict)
    idempotency_key: IdempotencyKey | None = None


class RewardOut(_Wire, frozen=True, kw_only=True):
    """A recorded reward; an idempotent retry gets exactly the same answer."""

    decision_id: str
    experiment: str
    arm: str
    reward: float
    metrics: dict[str, float]
    recorded_at: datetime


class Problem(msgspec.Struct, frozen=True, omit_defaults=True, kw_only=True):
    """An RFC 9457 problem detail; `field` names the offending input."""

    type: str
    title: str
    status: int
    detail: str
    field: str | None = None
    current_status: str | None = None


class RewardResult(_Wire, frozen=True, kw_only=True):
    """One item of a reward batch: its own status, and the reward or the problem."""

    decision_id: str
    status: int
    reward: RewardOut | None = None
    problem: Problem | None = None


class RewardBatchOut(_Wire, frozen=True, kw_only=True):
    """Per-item results of POST /v1/rewards/batch, in request order."""

    recorded: int
    failed: int
    results: list[RewardResult]


class ArmOut(_Wire, frozen=True, kw_only=True):
    """An arm as configured."""

    name: str
    weight: float | None
    payload: Any


class MetricStatsOut(_Wire, frozen=True, kw_only=True):
    """Count and mean of one extra metric on one arm."""

    n: int
    mean: float | None


class ArmStatsOut(_Wire, frozen=True, kw_only=True):
    """Per-arm counts and means.

    `units` counts first assignments (sticky experiments only); `n` counts rewards received plus
    expired decisions (counted with the default reward); pending decisions are not in `mean`.
    """

    units: int
    decisions: int
    pending: int
    rewarded: int
    expired: int
    n: int
    mean: float | None
    metrics: dict[str, MetricStatsOut]


class ExperimentOut(_Wire, frozen=True, kw_only=True, omit_defaults=True):
    """An experiment: configuration, status, current weights and (when read by key) per-arm statistics."""

    key: str
    name: str
    description: str
    status: ExperimentStatus
    arms: list[ArmOut]
    control: str
    policy: PolicyConfig
    reward: RewardKind
    reweight_every_s: int
    exposure: float
    targeting: dict[str, Any]
    sticky: bool
    reward_window_s: int
    default_reward: float
    criteria: DecisionCriteria | None
    min_sample_size: int | None
    minimum_detectable_effect: float | None
    mde_relative: bool
    winner: str | None
    weights: dict[str, float]
    weights_version: int
    next_reweight_at: datetime | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    stats: dict[str, ArmStatsOut] | None = None
    namespace: Namespace | None = None


class ExperimentList(_Wire, frozen=True, kw_only=True):
    """Experiments, newest first (without per-arm statistics)."""

    experiments: list[ExperimentOut]


class StatsOut(_Wire, frozen=True, kw_only=True):
    """The sufficient statistics one arm had when weights were computed."""

    n: float
    total: float
    total_sq: float
    mean: float | None


class WeightsRecordOut(_Wire, frozen=True, kw_only=True):
    """One row of the weights history."""

    version: int
    created_at: datetime
    weights: dict[str, float]
    stats: dict[str, StatsOut]
    reason: WeightsReason
    seed: int | None
    churn: float | None


class WeightsHistoryOut(_Wire, frozen=True, kw_only=True):
    """The weights history of an experiment, oldest first."""

    experiment: str
    history: list[WeightsRecordOut]


class HealthOut(_Wire, frozen=True, kw_only=True):
    """GET /healthz."""

    status: Literal["ok"]
    database: Literal["ok"]
    process: int  # the worker's pid: with several workers each answers for itself
    commits: int  # transactions committed by this worker's group-commit writer
    writes: int  # acknowledged writes in those transactions (writes / commits = batch size)


class ExposureIn(_Wire, frozen=True, kw_only=True):
    """Body of PUT .../exposure: the share of units (by hash) that enter the experiment."""

    exposure: Probability


class RampStepIn(_Wire, frozen=True, kw_only=True):
    """One step of an exposure ramp: the exposure, held `hold_s` seconds (none on the last step)."""

    exposure: Probability
    hold_s: HoldSeconds | None = None


class RampIn(_Wire, frozen=True, kw_only=True):
    """Body of PUT .../ramp: exposure steps, advanced by the scheduler while every guardrail holds."""

    steps: Annotated[tuple[RampStepIn, ...], Meta(min_length=1, max_length=100)]


class RampOut(_Wire, frozen=True, kw_only=True):
    """An exposure ramp and where it stands."""

    experiment: str
    steps: list[RampStepIn]
    step: int
    step_started_at: datetime
    next_step_at: datetime | None
    status: PlanStatus
    reason: str | None
    exposure: float
    created_at: datetime
    updated_at: datetime


class CompletionOut(_Wire, frozen=True, kw_only=True):
    """A gradual completion (traffic shifting to the winner) and where it stands."""

    experiment: str
    winner: str
    plan: list[ShiftStepIn]
    step: int
    step_started_at: datetime
    next_step_at: datetime | None
    status: PlanStatus
    reason: str | None
    weights: dict[str, float]
    created_at: datetime
    updated_at: datetime


class EventOut(_Wire, frozen=True, kw_only=True):
    """One audit-log entry: when, who, what, and the values before and after."""

    id: int
    time: datetime
    actor: str
    action: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None


class EventList(_Wire, frozen=True, kw_only=True):
    """Audit-log entries, oldest first; pass `next_after` as `after` for the next page (null: no more)."""

    experiment: str
    events: list[EventOut]
    next_after: int | None
