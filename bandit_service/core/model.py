"""Domain values: what storage hands to the domain and back (never database rows)."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from bandit_service.core.automation import Automation
from bandit_service.core.fields import Key, Probability
from bandit_service.core.plans import PlanState, PlanStep
from bandit_service.core.reporting.inputs import DecisionCriteria
from bandit_service.core.trials import Aggregate, Missing, TrialKind, missing_value
from policies import ArmStats, PolicyConfig
from policies.corrections import Correction

__all__ = [
    "Arm",
    "ArmCounts",
    "Assignment",
    "Decision",
    "DecisionContext",
    "DecisionStatus",
    "Event",
    "EventPage",
    "Experiment",
    "ExperimentChanges",
    "ExperimentConfig",
    "ExperimentCounts",
    "ExperimentPlan",
    "ExpiredDecision",
    "Exposure",
    "Feature",
    "LocalDecision",
    "LoggedEvent",
    "NewExperiment",
    "OpenTrial",
    "RewardWrite",
    "Rollout",
    "RolloutKind",
    "Served",
    "StoredReward",
    "WeightsHistory",
    "WeightsRecord",
]

ExperimentStatus = Literal["draft", "active", "paused", "completed"]
RewardKind = Literal["bernoulli", "continuous"]
WeightsReason = Literal["start", "schedule", "manual", "shift"]
PlanStatus = Literal["running", "done", "stopped", "cancelled"]
DecisionStatus = Literal["pending", "rewarded", "expired", "excluded"]
RolloutKind = Literal["ramp", "completion"]


class Namespace(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A mutually exclusive group: the experiment takes units whose namespace hash is in [start, end)."""

    name: Key
    start: Probability = 0.0
    end: Probability = 1.0

    def __post_init__(self) -> None:
        # Checked while decoding, so the problem names `namespace` like any other bad value.
        if self.start >= self.end:
            raise ValueError(f"start ({self.start}) must be below end ({self.end})")


class _Value(msgspec.Struct, frozen=True, kw_only=True):
    """Immutable domain value."""


class Arm(_Value, frozen=True, kw_only=True):
    """An arm as configured: name, configured weight (None: not given) and the app's payload."""

    name: str
    weight: float | None = None
    payload: Any = None


class ExperimentConfig(_Value, frozen=True, kw_only=True):
    """The settings of an experiment that are stored as one JSON document."""

    control: str
    policy: PolicyConfig  # as the operator gave it; `bound_policy` adds the reward kind and weights
    reward: RewardKind
    reweight_every_s: int
    exposure: float
    targeting: dict[str, Any]
    sticky: bool
    reward_window_s: int
    default_reward: float
    namespace: Namespace | None = None
    criteria: DecisionCriteria | None = None  # the report's decision rule: primary metric and guardrails
    min_sample_size: int | None = None  # observations per arm the report waits for
    minimum_detectable_effect: float | None = None  # or the sample size that detects this effect
    mde_relative: bool = False  # the effect is a share of the control's mean
    # How the report reads: its confidence level, the correction across the arms' comparisons with the
    # control, and the observations per arm where the always-valid mixture is tuned (stored before
    # these existed: the defaults).
    level: float = 0.95
    correction: Correction = "holm"
    sequential_tuning_n: int = 5_000
    # What a trial is, how its rewards combine, and what a trial without a reward counts as.
    trial: TrialKind = "decision"  # stored resolved; experiments stored before trials existed count decisions
    aggregate: Aggregate = "last"
    missing: Missing | None = None  # None (stored before trials existed): the value default_reward
    # The feature it serves (None: asked for by key only), and its place among the feature's experiments.
    feature: Key | None = None
    priority: int = 0
    # When it ends on its own, what the scheduler may do by itself, and where lifecycle events go.
    ends_at: float | None = None
    max_duration_s: int | None = None
    automation: Automation | None = None
    webhook_url: str | None = None

    @property
    def missing_reward(self) -> float | None:
        """The value a trial without a reward counts with; None when such trials are excluded."""
        return self.default_reward if self.missing is None else missing_value(self.missing)


class NewExperiment(_Value, frozen=True, kw_only=True):
    """An experiment before storage has given it an id."""

    key: str
    name: str
    description: str
    status: ExperimentStatus
    arms: tuple[Arm, ...]
    config: ExperimentConfig
    salt: str
    winner: str | None = None
    weights: tuple[float, ...] = ()
    weights_version: int = 0
    next_reweight_at: float | None = None
    reweighted_at: float | None = None
    created_at: float
    updated_at: float
    started_at: float | None = None
    completed_at: float | None = None


class Experiment(NewExperiment, frozen=True, kw_only=True):
    """A stored experiment; `revision` grows with every change (compare-and-set guard)."""

    id: int
    revision: int

    @property
    def arm_names(self) -> tuple[str, ...]:
        """Arm names in configured order (the order of `weights`)."""
        return tuple(arm.name for arm in self.arms)

    @property
    def control_index(self) -> int:
        """Position of the control arm."""
        return self.arm_names.index(self.config.control)

    def arm_index(self, name: str) -> int:
        """Position of an arm by name (ValueError if absent)."""
        return self.arm_names.index(name)


class ArmCounts(_Value, frozen=True, kw_only=True):
    """Incremental counters of one arm: traffic, trial status and sufficient statistics.

    `trials` are what the statistics count (units' trials, or single decisions); `exposures` count
    every decision served inside the experiment (a unit trial's repeated decisions included).
    A trial is pending, rewarded, expired (counted with the missing value) or excluded.
    """

    units: int = 0
    trials: int = 0
    exposures: int = 0
    rewarded: int = 0
    expired: int = 0
    excluded: int = 0
    stats: ArmStats = ArmStats()
    metrics: dict[str, ArmStats] = msgspec.field(default_factory=dict)
    local: int = 0  # decisions SDKs evaluated locally and logged (POST /v1/decisions/log)
    contradicted: int = 0  # of those, decisions whose arm differed from the unit's stored sticky arm

    @property
    def pending(self) -> int:
        """Trials still waiting for their reward (neither rewarded, expired nor excluded)."""
        return self.trials - self.rewarded - self.expired - self.excluded


class WeightsRecord(_Value, frozen=True, kw_only=True):
    """One row of the weights history."""

    experiment_id: int
    version: int
    created_at: float
    weights: tuple[float, ...]
    stats: tuple[ArmStats, ...]
    reason: WeightsReason
    seed: int | None
    churn: float | None
    """Expected share of units the hash would put on another arm than under the previous weights."""
    moved: float | None = None
    """Share of the stored sticky units a rebalance moved (`PUT .../weights` with `rebalance`); None: no rebalance."""


class Assignment(_Value, frozen=True, kw_only=True):
    """A unit's sticky arm and the probability it had of getting it, and its latest unit trial."""

    arm: int
    propensity: float
    weights_version: int
    trial_id: str | None = None  # the decision that opened the unit's latest trial (trial "unit")
    trial_expires_at: float | None = None  # when that trial's window closes


class OpenTrial(_Value, frozen=True, kw_only=True):
    """A unit's newly opened trial: its opening decision and when its window closes."""

    unit: str
    trial_id: str
    expires_at: float


class Exposure(_Value, frozen=True, kw_only=True):
    """A decision served inside an open unit trial: counted as an exposure of the trial, not logged."""

    experiment_id: int
    arm: int
    weights_version: int  # the trial's
    trial_id: str  # the trial's opening decision (the exposure counts on the day it was made)


class Decision(_Value, frozen=True, kw_only=True):
    """One logged decision: a trial's opening decision, made inside the experiment.

    Decisions outside the experiment are not logged, nor are the exposures of an open unit trial
    (they are counted per arm).
    """

    id: str
    experiment_id: int
    unit: str | None
    arm: int
    propensity: float
    weights_version: int
    attributes: dict[str, Any]
    created_at: float
    expires_at: float
    new_unit: bool


class LocalDecision(_Value, frozen=True, kw_only=True):
    """A decision an SDK evaluated locally and logged: what its dedupe row and the local counters keep.

    `contradicts`: the arm the SDK served differs from the unit's stored sticky arm (which is kept).
    """

    decision_id: str
    experiment_id: int
    arm: int
    logged_at: float
    contradicts: bool = False


class StoredReward(_Value, frozen=True, kw_only=True):
    """A recorded reward, with what is needed to answer a retry exactly as the first time.

    `decision_id` is its trial's opening decision; `seq` numbers the trial's rewards from 0 (a
    decision trial has one reward, a unit trial may have several) and `trial_value` is the trial's
    value once this reward counted (its rewards combined by the experiment's `aggregate`).
    """

    decision_id: str
    seq: int = 0
    experiment_id: int
    experiment_key: str
    arm: int
    arm_name: str
    weights_version: int
    value: float
    metrics: dict[str, float]
    idempotency_key: str | None
    body_hash: str
    created_at: float
    trial_value: float | None = None

    @property
    def counted_value(self) -> float:
        """The trial's value once this reward counted (a reward stored before trials existed: its own value)."""
        return self.trial_value if self.trial_value is not None else self.value


class RewardWrite(_Value, frozen=True, kw_only=True):
    """A new reward to store, with its trial's value before it (None: the trial's first) and after it."""

    reward: StoredReward
    before: float | None
    after: float


class DecisionContext(_Value, frozen=True, kw_only=True):
    """What a reward needs to know about its decision and experiment, and the reward it already has."""

    decision_id: str
    experiment_id: int
    experiment_key: str
    reward_kind: RewardKind
    arm: int
    arm_name: str
    weights_version: int
    status: DecisionStatus
    expires_at: float
    experiment_status: ExperimentStatus
    trial: TrialKind = "decision"
    aggregate: Aggregate = "last"
    rewards: tuple[StoredReward, ...] = ()  # the rewards it already has, by seq

    @property
    def reward(self) -> StoredReward | None:
        """The first reward it has (a decision trial's only one)."""
        return self.rewards[0] if self.rewards else None


class ExperimentChanges(_Value, frozen=True, kw_only=True):
    """What changed since a change number: the latest number, and the changed experiments' revisions by key."""

    seq: int
    revisions: dict[str, int]
    # Features created, replaced or deleted (key -> change number), and the feature each changed
    # experiment serves now (experiments that serve none are absent): what feature caches drop.
    features: dict[str, int] = msgspec.field(default_factory=dict)
    experiment_features: dict[str, str] = msgspec.field(default_factory=dict)


class ExpiredDecision(_Value, frozen=True, kw_only=True):
    """A trial whose reward window closed without a reward; it counts as its experiment's `missing` says."""

    decision_id: str
    experiment_id: int
    arm: int
    weights_version: int


class Event(_Value, frozen=True, kw_only=True):
    """An audit-log entry: who changed what, and the values before and after."""

    experiment_id: int
    created_at: float
    actor: str
    action: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None


class LoggedEvent(Event, frozen=True, kw_only=True):
    """An audit-log entry as read back, with its id (ids grow with time: the pagination cursor)."""

    id: int


class Feature(_Value, frozen=True, kw_only=True):
    """A feature: what apps ask for by key, and the payload they get when no experiment serves them."""

    key: str
    description: str
    default_payload: Any
    created_at: float
    updated_at: float


class Served(_Value, frozen=True, kw_only=True):
    """The answer to a decision request: the arm (index) a unit gets, and whether it is in the experiment.

    Asked by feature, `feature` is set; when no experiment of it serves the unit, `experiment` and
    `arm` are None and the unit gets the feature's default payload.
    """

    decision_id: str
    experiment: Experiment | None
    arm: int | None
    propensity: float
    in_experiment: bool
    feature: Feature | None = None


class EventPage(_Value, frozen=True, kw_only=True):
    """A page of an experiment's audit log; `next_after` is the cursor of the next page (None: no more)."""

    experiment: str
    events: tuple[LoggedEvent, ...]
    next_after: int | None


class Rollout(_Value, frozen=True, kw_only=True):
    """A stored plan of an experiment: an exposure ramp or a gradual completion (shift to `winner`).

    `base_weights` are the weights when a completion began: every step is computed from them, so a
    step's weights do not depend on when the scheduler ran. `revision` 0 means not stored yet;
    storage writes a plan only if its revision is still the one read (compare-and-set).
    """

    experiment_id: int
    kind: RolloutKind
    steps: tuple[PlanStep, ...]
    state: PlanState
    winner: str | None = None
    base_weights: tuple[float, ...] = ()
    created_at: float
    updated_at: float
    revision: int = 0


class ExperimentPlan(_Value, frozen=True, kw_only=True):
    """An experiment with one of its rollout plans (a ramp or a gradual completion)."""

    experiment: Experiment
    plan: Rollout


class ExperimentCounts(_Value, frozen=True, kw_only=True):
    """An experiment with its per-arm counters, in arm order."""

    experiment: Experiment
    counts: tuple[ArmCounts, ...]


class WeightsHistory(_Value, frozen=True, kw_only=True):
    """Rows of an experiment's weights history, oldest first."""

    experiment: Experiment
    records: tuple[WeightsRecord, ...]
