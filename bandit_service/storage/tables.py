"""SQLModel tables. Rows stay inside `bandit_service.storage`; the domain sees values from `domain.model`.

Times are Unix seconds (float): portable across SQLite and PostgreSQL, and compared in SQL
without time-zone surprises. JSON columns hold configuration, payloads and attributes.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index, Integer, Table
from sqlmodel import Field, SQLModel

__all__ = [
    "API_KEYS",
    "ARMS",
    "ARM_COUNTERS",
    "ARM_METRICS",
    "ASSIGNMENTS",
    "BUCKETS",
    "CHANGE_COUNTER",
    "DECISIONS",
    "EVENTS",
    "EXPERIMENTS",
    "FEATURES",
    "LOGGED_DECISIONS",
    "PERIODS",
    "PERIOD_METRICS",
    "REWARDS",
    "ROLLOUTS",
    "SEQUENTIAL_LOOKS",
    "SKETCHES",
    "WEBHOOK_DELIVERIES",
    "WEIGHTS",
    "ArmCounterRow",
    "ArmMetricRow",
    "ArmRow",
    "ArmSketchRow",
    "AssignmentRow",
    "ChangeCounterRow",
    "DecisionRow",
    "EventRow",
    "ExperimentRow",
    "FeatureRow",
    "LoggedDecisionRow",
    "PeriodCounterRow",
    "PeriodMetricRow",
    "RewardRow",
    "RolloutRow",
    "SequentialLookRow",
    "SketchBucketRow",
    "WebhookDeliveryRow",
    "WeightsRow",
    "metadata",
    "table_of",
]


class ExperimentRow(SQLModel, table=True):
    """One experiment: configuration as JSON, lifecycle status, current weights and schedule."""

    __tablename__ = "experiments"
    __table_args__ = (Index("ix_experiments_due", "status", "next_reweight_at"),)

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=64, unique=True)
    name: str
    description: str
    status: str = Field(max_length=16)
    config: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    salt: str = Field(max_length=64)
    winner: str | None = Field(default=None, max_length=64)
    weights: list[float] = Field(sa_column=Column(JSON, nullable=False))
    weights_version: int = 0
    next_reweight_at: float | None = None
    reweighted_at: float | None = None
    revision: int = 1
    # The change number of the experiment's last change (see ChangeCounterRow); caches poll it.
    change_seq: int = Field(default=0, index=True)
    created_at: float
    updated_at: float
    started_at: float | None = None
    completed_at: float | None = None


class ChangeCounterRow(SQLModel, table=True):
    """One row: the number of the last experiment change, cluster-wide.

    Every transaction that creates or updates an experiment increments it and stamps the
    experiment with the new number. The increment holds the row's lock until COMMIT, so numbers
    are handed out in commit order: a process that has seen number n has seen every change up to n.
    """

    __tablename__ = "change_counter"

    id: int = Field(default=1, primary_key=True)
    seq: int = 0


class FeatureRow(SQLModel, table=True):
    """A feature: what apps ask for by key, and the payload they get when no experiment serves them.

    Experiments name their feature in their config. A deleted feature stays as a tombstone
    (`deleted_at`) with the change number of its deletion, so every process's cache learns of it.
    """

    __tablename__ = "features"

    key: str = Field(primary_key=True, max_length=64)
    description: str
    default_payload: Any = Field(default=None, sa_column=Column(JSON, nullable=True))
    created_at: float
    updated_at: float
    deleted_at: float | None = None
    # The change number of the feature's last change (the experiments' counter, see ChangeCounterRow).
    change_seq: int = Field(default=0, index=True)


class ArmRow(SQLModel, table=True):
    """An arm of an experiment, by position (arms are fixed once the experiment leaves draft)."""

    __tablename__ = "arms"

    experiment_id: int = Field(foreign_key="experiments.id", primary_key=True)
    position: int = Field(primary_key=True)
    name: str = Field(max_length=64)
    weight: float | None = None
    payload: Any = Field(default=None, sa_column=Column(JSON, nullable=True))


class AssignmentRow(SQLModel, table=True):
    """A unit's sticky arm: looked up by primary key on every decision with a unit."""

    __tablename__ = "assignments"

    experiment_id: int = Field(primary_key=True)
    unit: str = Field(primary_key=True, max_length=256)
    arm: int
    propensity: float
    weights_version: int
    created_at: float
    # The unit's latest trial (trial "unit"): its opening decision and when its window closes.
    trial_id: str | None = Field(default=None, max_length=64)
    trial_expires_at: float | None = None


class DecisionRow(SQLModel, table=True):
    """A decision made inside an experiment: arm, propensity, weights version, reward status."""

    __tablename__ = "decisions"
    __table_args__ = (
        Index("ix_decisions_pending", "status", "expires_at"),
        Index("ix_decisions_experiment", "experiment_id", "created_at"),
    )

    id: str = Field(primary_key=True, max_length=64)
    experiment_id: int
    unit: str | None = Field(default=None, max_length=256)
    arm: int
    propensity: float
    weights_version: int
    attributes: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    created_at: float
    expires_at: float
    status: str = Field(max_length=16)  # pending, rewarded, expired or excluded (a trial's status)
    new_unit: bool = False  # the unit's first assignment (counts it in `units`; reports split it by segment)


class LoggedDecisionRow(SQLModel, table=True):
    """The id of a decision an SDK evaluated locally and logged: a retried log finds it and counts nothing again."""

    __tablename__ = "logged_decisions"

    decision_id: str = Field(primary_key=True, max_length=64)
    experiment_id: int
    logged_at: float
    contradicts: bool = False  # its arm differed from the unit's stored sticky arm


class RewardRow(SQLModel, table=True):
    """A reward of one trial (a decision trial has one, a unit trial several), with its idempotency key."""

    __tablename__ = "rewards"

    decision_id: str = Field(primary_key=True, max_length=64)  # the trial's opening decision
    seq: int = Field(default=0, primary_key=True)  # the trial's rewards numbered from 0
    experiment_id: int
    arm: int
    weights_version: int
    value: float
    metrics: dict[str, float] = Field(sa_column=Column(JSON, nullable=False))
    idempotency_key: str | None = Field(default=None, max_length=200, unique=True)
    body_hash: str = Field(max_length=64)
    created_at: float
    trial_value: float | None = None  # the trial's value once this reward counted


class _Counters(SQLModel):
    """Counters shared by the per-arm and per-period tables; updated with atomic increments."""

    units: int = 0
    trials: int = 0
    exposures: int = 0
    rewarded: int = 0
    expired: int = 0
    excluded: int = 0
    n: float = 0.0
    total: float = 0.0
    total_sq: float = 0.0


class ArmCounterRow(_Counters, table=True):
    """Per-arm counters over the whole experiment (the policy's statistics)."""

    __tablename__ = "arm_counters"

    experiment_id: int = Field(primary_key=True)
    arm: int = Field(primary_key=True)
    # Decisions SDKs logged, and those whose arm contradicted the unit's sticky arm. A server default
    # only: the hot path's upsert names its columns, and a Python default would add these to it.
    local: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    contradicted: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))


class PeriodCounterRow(_Counters, table=True):
    """Per-arm counters of the trials opened under one weights version (a weights period) on one UTC day.

    `day`: whole days since 1970-01-01 of the trial's opening decision (its exposures, rewards and
    expiry count on that day too).
    """

    __tablename__ = "period_counters"

    experiment_id: int = Field(primary_key=True)
    weights_version: int = Field(primary_key=True)
    day: int = Field(primary_key=True)
    arm: int = Field(primary_key=True)


class _MetricCounters(SQLModel):
    n: float = 0.0
    total: float = 0.0
    total_sq: float = 0.0


class ArmMetricRow(_MetricCounters, table=True):
    """Sufficient statistics of one extra metric on one arm."""

    __tablename__ = "arm_metrics"

    experiment_id: int = Field(primary_key=True)
    arm: int = Field(primary_key=True)
    metric: str = Field(primary_key=True, max_length=64)


class PeriodMetricRow(_MetricCounters, table=True):
    """Sufficient statistics of one extra metric on one arm within one weights period and UTC day (as above)."""

    __tablename__ = "period_metrics"

    experiment_id: int = Field(primary_key=True)
    weights_version: int = Field(primary_key=True)
    day: int = Field(primary_key=True)
    arm: int = Field(primary_key=True)
    metric: str = Field(primary_key=True, max_length=64)


class WeightsRow(SQLModel, table=True):
    """One version of an experiment's weights: when, why, from which statistics, with which seed."""

    __tablename__ = "weights_history"

    experiment_id: int = Field(primary_key=True)
    version: int = Field(primary_key=True)
    created_at: float
    weights: list[float] = Field(sa_column=Column(JSON, nullable=False))
    stats: list[list[float]] = Field(sa_column=Column(JSON, nullable=False))
    reason: str = Field(max_length=16)
    seed: int | None = Field(default=None, sa_type=BigInteger)
    churn: float | None = None
    moved: float | None = None  # share of stored sticky units a rebalance moved (null: not a rebalance)


class EventRow(SQLModel, table=True):
    """The audit log: operator changes with actor and before/after values."""

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_experiment", "experiment_id", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    experiment_id: int
    created_at: float
    actor: str = Field(max_length=200)
    action: str = Field(max_length=32)
    before: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    after: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))


class ApiKeyRow(SQLModel, table=True):
    """An API key: its name (the audit log's actor), role and SHA-256 digest; never the key itself."""

    __tablename__ = "api_keys"

    name: str = Field(primary_key=True, max_length=64)
    role: str = Field(max_length=16)
    digest: str = Field(max_length=64, unique=True)
    created_at: float
    last_used_at: float | None = None


class ArmSketchRow(SQLModel, table=True):
    """Summary of one latency-like metric's quantile sketch on one arm (see `storage.sketches`)."""

    __tablename__ = "arm_sketches"

    experiment_id: int = Field(primary_key=True)
    arm: int = Field(primary_key=True)
    metric: str = Field(primary_key=True, max_length=64)
    count: int = Field(default=0, sa_type=BigInteger)
    zero_count: int = Field(default=0, sa_type=BigInteger)
    total: float = 0.0
    minimum: float
    maximum: float


class SketchBucketRow(SQLModel, table=True):
    """One bucket of a quantile sketch: how many values fell in (gamma^(bucket-1), gamma^bucket]."""

    __tablename__ = "sketch_buckets"

    experiment_id: int = Field(primary_key=True)
    arm: int = Field(primary_key=True)
    metric: str = Field(primary_key=True, max_length=64)
    bucket: int = Field(primary_key=True)
    count: int = Field(default=0, sa_type=BigInteger)


class RolloutRow(SQLModel, table=True):
    """An experiment's exposure ramp or gradual completion: its steps and where it stands."""

    __tablename__ = "rollouts"
    __table_args__ = (Index("ix_rollouts_status", "status"),)

    experiment_id: int = Field(primary_key=True)
    kind: str = Field(primary_key=True, max_length=16)
    steps: list[list[float | None]] = Field(sa_column=Column(JSON, nullable=False))  # [value, hold_s]
    winner: str | None = Field(default=None, max_length=64)
    base_weights: list[float] = Field(sa_column=Column(JSON, nullable=False))
    step: int
    step_started_at: float
    status: str = Field(max_length=16)
    reason: str | None = None
    revision: int
    created_at: float
    updated_at: float


class WebhookDeliveryRow(SQLModel, table=True):
    """One audit-log entry queued for one webhook URL, and where its delivery stands (see `core.webhooks`)."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
        Index("ix_webhook_deliveries_experiment", "experiment_id", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    event_id: int
    experiment_id: int
    url: str = Field(max_length=2_000)
    status: str = Field(max_length=16)
    attempts: int = 0
    next_attempt_at: float | None = None
    last_attempt_at: float | None = None
    last_status_code: int | None = None
    last_error: str | None = Field(default=None, max_length=300)
    created_at: float
    delivered_at: float | None = None


metadata = SQLModel.metadata


def table_of(model: type[SQLModel]) -> Table:
    """The SQLAlchemy table behind a SQLModel table class (for Core statements)."""
    table: Table = model.__table__  # type: ignore[attr-defined]
    return table


# The Core tables, one handle each, for the storage modules' statements.
API_KEYS = table_of(ApiKeyRow)
ARMS = table_of(ArmRow)
CHANGE_COUNTER = table_of(ChangeCounterRow)
ARM_COUNTERS = table_of(ArmCounterRow)
ARM_METRICS = table_of(ArmMetricRow)
ASSIGNMENTS = table_of(AssignmentRow)
BUCKETS = table_of(SketchBucketRow)
DECISIONS = table_of(DecisionRow)
EVENTS = table_of(EventRow)
EXPERIMENTS = table_of(ExperimentRow)
FEATURES = table_of(FeatureRow)
LOGGED_DECISIONS = table_of(LoggedDecisionRow)
PERIODS = table_of(PeriodCounterRow)
PERIOD_METRICS = table_of(PeriodMetricRow)
REWARDS = table_of(RewardRow)
ROLLOUTS = table_of(RolloutRow)
SKETCHES = table_of(ArmSketchRow)
WEBHOOK_DELIVERIES = table_of(WebhookDeliveryRow)
WEIGHTS = table_of(WeightsRow)


class SequentialLookRow(SQLModel, table=True):
    """The always-valid figures of one arm against the control on one metric, merged over the looks so far.

    NULL stands for NaN (no figure yet); bounds may be infinite (see `storage.looks`).
    """

    __tablename__ = "sequential_looks"

    experiment_id: int = Field(primary_key=True)
    metric: str = Field(primary_key=True, max_length=64)
    arm: str = Field(primary_key=True, max_length=64)
    p_value: float | None = None
    lower: float | None = None
    upper: float | None = None
    looks: int = 0
    first_at: float = 0.0
    last_at: float = 0.0
    settings: str = Field(default="", max_length=64)


SEQUENTIAL_LOOKS = table_of(SequentialLookRow)
