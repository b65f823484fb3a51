"""Wire schemas of the answers: the frozen msgspec Structs that responses encode from.

Requests decode into the commands of `core.commands` (re-exported here, so this module is the
whole wire); the policy configs are the library's own union (`policies.PolicyConfig`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import msgspec

from bandit_service.core.automation import Automation
from bandit_service.core.commands import *  # noqa: F403  (the request half of the wire)
from bandit_service.core.commands import RampStepIn, ShiftStepIn
from bandit_service.core.model import ExperimentStatus, Namespace, PlanStatus, RewardKind, WeightsReason
from bandit_service.core.reporting.inputs import DecisionCriteria
from bandit_service.core.roles import Role
from bandit_service.core.trials import Aggregate, Missing, TrialKind
from bandit_service.core.webhooks import DeliveryStatus
from policies import PolicyConfig
from policies.corrections import Correction


class _Wire(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Common options: immutable, unknown fields refused."""


class DecisionOut(_Wire, frozen=True, kw_only=True, omit_defaults=True):
    """The arm to use, with what is needed to report its reward and analyse it later.

    Asked by feature, `feature` names it (asked by experiment, it is absent); when none of its
    experiments serves the unit, `experiment` and `arm` are null, `payload` is the feature's default,
    and the decision is not logged (its id starts with `out_`, and a reward for it is refused).
    In a `trial: "unit"` experiment, a unit's decisions inside its open trial all answer the
    `decision_id` of the decision that opened it.
    """

    decision_id: str
    experiment: str | None
    arm: str | None
    payload: Any
    propensity: float
    weights_version: int
    in_experiment: bool
    feature: str | None = None


class RewardOut(_Wire, frozen=True, kw_only=True):
    """A recorded reward; an idempotent retry gets exactly the same answer."""

    decision_id: str  # the trial's decision id (for a reward sent by experiment and unit: the unit's trial)
    experiment: str
    arm: str
    reward: float
    metrics: dict[str, float]
    recorded_at: datetime
    trial_value: float  # the trial's value once this reward counted (its rewards combined by `aggregate`)


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

    decision_id: str | None  # as sent (None: the item named its trial by experiment and unit)
    status: int
    reward: RewardOut | None = None
    problem: Problem | None = None


class RewardBatchOut(_Wire, frozen=True, kw_only=True):
    """Per-item results of POST /v1/rewards/batch, in request order."""

    recorded: int
    failed: int
    results: list[RewardResult]


class DecisionLogResult(_Wire, frozen=True, kw_only=True):
    """One item of a decision log: 201 logged, 200 a duplicate (logged before: nothing counted again), or the
    problem that refused it; `contradicts`: its arm differs from the unit's sticky arm on the service."""

    decision_id: str
    status: int
    contradicts: bool = False
    problem: Problem | None = None


class DecisionLogOut(_Wire, frozen=True, kw_only=True):
    """Per-item results of POST /v1/decisions/log, in request order."""

    logged: int
    duplicates: int
    failed: int
    results: list[DecisionLogResult]


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

    `units` counts first assignments (sticky experiments only); `trials` what the statistics count
    (units' trials or single decisions) and `exposures` every decision served in the experiment;
    `n` counts rewarded trials plus expired ones (counted with the missing value); pending and
    excluded trials are not in `mean`. `local` counts the decisions SDKs evaluated locally and
    logged (they are in the other counts too), `contradicted` those whose arm differed from the
    unit's sticky arm on the service.
    """

    units: int
    trials: int
    exposures: int
    pending: int
    rewarded: int
    expired: int
    excluded: int
    n: int
    mean: float | None
    metrics: dict[str, MetricStatsOut]
    local: int = 0
    contradicted: int = 0


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
    level: float
    correction: Correction
    sequential_tuning_n: int
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
    trial: TrialKind
    aggregate: Aggregate
    missing: Missing
    priority: int
    feature: str | None = None
    ends_at: datetime | None = None
    max_duration_s: int | None = None
    automation: Automation | None = None
    webhook_url: str | None = None


class ExperimentList(_Wire, frozen=True, kw_only=True):
    """Experiments, newest first (without per-arm statistics)."""

    experiments: list[ExperimentOut]


class StatsOut(_Wire, frozen=True, kw_only=True):
    """The sufficient statistics one arm had when weights were computed."""

    n: float
    total: float
    total_sq: float
    mean: float | None


class ArmSummaryOut(_Wire, frozen=True, kw_only=True):
    """One arm's posterior when the weights were computed (Beta(1, 1) or Normal-Inverse-Gamma prior)."""

    n: int
    mean: float  # posterior mean
    interval: tuple[float, float]  # 95% equal-tailed credible interval
    prob_best: float


class WeightsRecordOut(_Wire, frozen=True, kw_only=True):
    """One row of the weights history, with the posterior per arm that produced it and why it moved."""

    version: int
    created_at: datetime
    weights: dict[str, float]
    stats: dict[str, StatsOut]
    reason: WeightsReason
    seed: int | None
    churn: float | None  # expected share of units the hash puts on another arm than under the previous weights
    moved: float | None  # share of stored sticky units a rebalance moved (null: not a rebalance)
    arms: dict[str, ArmSummaryOut]  # posterior summary per arm from `stats`
    because: str  # one line: why the weights differ from the previous version's


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


class LiveOut(_Wire, frozen=True, kw_only=True):
    """GET /livez: the process serves requests (nothing else is checked)."""

    status: Literal["alive"]
    process: int  # the worker's pid: with several workers each answers for itself


class ReadyOut(_Wire, frozen=True, kw_only=True):
    """GET /readyz when ready (otherwise a 503 problem naming the failed check)."""

    status: Literal["ready"]
    database: Literal["writable"]  # a probe write committed within `ready_timeout_ms`
    scheduler: Literal["running", "disabled"]
    process: int


class RampOut(_Wire, frozen=True, kw_only=True):
    """An exposure ramp and where it stands."""

    experiment: str
    steps: list[RampStepIn]
    step: int
    step_started_at: datetime
    next_step_at: datetime | None
    status: PlanStatus
    reason: str | None
    exposure: float  # the experiment's exposure now (a cancelled or stopped ramp leaves it at its last step)
    detail: str  # in words: where the ramp stands, what exposure it leaves and why, what changes it
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
    detail: str  # in words: where the shift stands, what weights it leaves and why, what changes them
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


class WebhookDeliveryOut(_Wire, frozen=True, kw_only=True):
    """One audit-log entry sent (or being sent) to one webhook URL: where its delivery stands."""

    id: int
    event_id: int  # the audit-log entry, and the receiver's X-Bandit-Event-Id
    experiment: str
    type: str  # the event's action
    url: str
    status: DeliveryStatus
    attempts: int
    last_status_code: int | None  # the receiver's last answer; null: none yet, or no connection
    last_error: str | None
    created_at: datetime
    last_attempt_at: datetime | None
    next_attempt_at: datetime | None  # when a pending delivery is tried (again)
    delivered_at: datetime | None


class WebhookDeliveryList(_Wire, frozen=True, kw_only=True):
    """Webhook deliveries, newest first; pass `next_before` as `before` for older ones (null: no more)."""

    experiment: str | None  # null: the deliveries of every experiment
    deliveries: list[WebhookDeliveryOut]
    next_before: int | None


class KeyOut(_Wire, frozen=True, kw_only=True):
    """An API key as GET /v1/keys lists it: who holds it, its role, when made and last used; never the key."""

    name: str
    role: Role
    created_at: datetime
    last_used_at: datetime | None
    """When a request last used it (recorded at most once a minute per process; null: never)."""


class NewKeyOut(_Wire, frozen=True, kw_only=True):
    """A key just made: the only answer that ever shows the key itself. Store it now."""

    name: str
    role: Role
    key: str
    created_at: datetime


class KeyList(_Wire, frozen=True, kw_only=True):
    """Every API key, by name."""

    keys: list[KeyOut]


class FeatureExperimentOut(_Wire, frozen=True, kw_only=True):
    """An experiment that serves a feature, as the feature shows it (in evaluation order)."""

    key: str
    name: str
    status: ExperimentStatus
    priority: int
    exposure: float
    targeting: dict[str, Any]
    namespace: Namespace | None
    winner: str | None


class FeatureOut(_Wire, frozen=True, kw_only=True, omit_defaults=True):
    """A feature; read by key, with its experiments in evaluation order (priority, then key)."""

    key: str
    description: str
    default_payload: Any
    created_at: datetime
    updated_at: datetime
    experiments: list[FeatureExperimentOut] | None = None


class FeatureList(_Wire, frozen=True, kw_only=True):
    """Every feature, by key (without their experiments)."""

    features: list[FeatureOut]
