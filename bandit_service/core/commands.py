"""Commands: the requests of the use cases, as frozen msgspec Structs validated once, at decode.

The HTTP layer decodes request bodies straight into these; the services take them as they are.
Constraints live in the types (`Meta`) and every struct forbids unknown fields. Cross-field rules
(duplicate arm names, weights that sum to 1, a control that is one of the arms) are checked by
`core.experiment_rules`, which names the field.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from msgspec import UNSET, Meta, UnsetType

from bandit_service.core.automation import Automation
from bandit_service.core.fields import (
    ArmName,
    Attributes,
    DecisionId,
    Description,
    Finite,
    HoldSeconds,
    IdempotencyKey,
    Key,
    Metrics,
    Name,
    Priority,
    Probability,
    SampleSize,
    Seconds,
    Targeting,
    UnitId,
    WebhookUrl,
)
from bandit_service.core.model import Namespace, RewardKind
from bandit_service.core.reporting.inputs import DecisionCriteria
from bandit_service.core.roles import Role
from bandit_service.core.trials import Aggregate, Missing, TrialKind
from policies import PolicyConfig, ThompsonSampling
from policies.corrections import Correction

EndsAt = Annotated[datetime, Meta(tz=True, description="RFC 3339 time with an offset, e.g. 2026-12-31T00:00:00Z")]
ReportLevel = Annotated[float, Meta(ge=0.8, le=0.999, description="The report's confidence level, e.g. 0.95.")]
TuningN = Annotated[
    int,
    Meta(ge=100, le=100_000_000, description="Observations per arm where the always-valid boundary is tightest."),
]


class _Wire(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Common options: immutable, unknown fields refused."""


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
    # How the report reads: its confidence level, the correction across arms' comparisons with the
    # control (holm, bonferroni or none), and where the always-valid figures are tightest.
    level: ReportLevel = 0.95
    correction: Correction = "holm"
    sequential_tuning_n: TuningN = 5_000
    # Trials: what the statistics count (default: "unit" when sticky, else "decision"), how a unit
    # trial's rewards combine (default: "max" for bernoulli, "sum" for continuous), and what a
    # trial without a reward counts as (default: {"value": default_reward}).
    trial: TrialKind | None = None
    aggregate: Aggregate | None = None
    missing: Missing | None = None
    # The feature this experiment serves, and its place among the feature's experiments (lower first).
    feature: Key | None = None
    priority: Priority = 0
    # When it ends on its own (an RFC 3339 time, and/or a duration from its first start).
    ends_at: EndsAt | None = None
    max_duration_s: Seconds | None = None
    automation: Automation | None = None
    webhook_url: WebhookUrl | None = None


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
    level: ReportLevel | UnsetType = UNSET
    correction: Correction | UnsetType = UNSET
    sequential_tuning_n: TuningN | UnsetType = UNSET
    trial: TrialKind | UnsetType = UNSET
    aggregate: Aggregate | UnsetType = UNSET
    missing: Missing | UnsetType = UNSET
    feature: Key | UnsetType | None = UNSET
    priority: Priority | UnsetType = UNSET
    ends_at: EndsAt | UnsetType | None = UNSET
    max_duration_s: Seconds | UnsetType | None = UNSET
    automation: Automation | UnsetType | None = UNSET
    webhook_url: WebhookUrl | UnsetType | None = UNSET


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
    rebalance: bool = False
    """False: sticky units keep their arm (new units follow the new weights). True: move the fewest
    stored units that makes them, too, split by the new weights (see `core.rebalance`)."""


class DecisionIn(_Wire, frozen=True, kw_only=True):
    """Body of POST /v1/decisions: give `experiment` (its key) or `feature` (what the app asks about), not both."""

    experiment: Key | None = None
    feature: Key | None = None
    unit: UnitId | None = None
    attributes: Attributes = msgspec.field(default_factory=dict)


class FeatureIn(_Wire, frozen=True, kw_only=True):
    """Body of PUT /v1/features/{key}: what it is for, and the payload apps get when no experiment serves them."""

    description: Description = ""
    default_payload: Any


class RewardIn(_Wire, frozen=True, kw_only=True):
    """Body of POST /v1/rewards (and one item of POST /v1/rewards/batch).

    It names its trial by `decision_id`, or by `experiment` and `unit` (the unit's current trial,
    for `trial: "unit"` experiments); exactly one of the two.
    """

    decision_id: DecisionId | None = None
    experiment: Key | None = None
    unit: UnitId | None = None
    reward: Finite
    metrics: Metrics = msgspec.field(default_factory=dict)
    idempotency_key: IdempotencyKey | None = None


MAX_REWARD_BATCH = 1_000
RewardBatchIn = Annotated[list[RewardIn], Meta(min_length=1, max_length=MAX_REWARD_BATCH)]
"""Body of POST /v1/rewards/batch (the service checks the length itself, to name it in its problem)."""


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


KeyName = Annotated[
    str,
    Meta(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$",
        description="Who holds the key (the audit log's actor): 1-64 letters, digits, _ . @ -",
        examples=["checkout-service"],
    ),
]


class KeyIn(_Wire, frozen=True, kw_only=True):
    """Body of POST /v1/keys."""

    name: KeyName
    role: Role
