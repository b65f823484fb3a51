"""The ports: what the services need from the outside world, as small protocols.

`Storage` is the whole database as the services see it: a dozen async reads and one `write`.
A write is a *job* (a plain function over a `WriteTx`, in `core`) and one item; the storage
runs it in a transaction and returns the item's outcome only once it is committed. The SQL
storage groups the jobs of concurrent requests into one transaction (group commit); the
in-memory twin runs each at once. Both pass the same contract suite (`tests/storage`).

`Clock` and `IdFactory` are the other two seams; all three are injected through `create_app`.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import Any, Literal, Protocol, runtime_checkable

import msgspec

from bandit_service.core.looks import SequentialLook
from bandit_service.core.model import (
    Arm,
    ArmCounts,
    Assignment,
    Decision,
    DecisionContext,
    Event,
    Experiment,
    ExperimentChanges,
    ExperimentStatus,
    ExpiredDecision,
    Exposure,
    Feature,
    LocalDecision,
    LoggedEvent,
    NewExperiment,
    OpenTrial,
    RewardWrite,
    Rollout,
    StoredReward,
    WeightsRecord,
)
from bandit_service.core.report_data import DailyCounters, ReportData, SegmentData
from bandit_service.core.roles import ApiKey
from bandit_service.core.webhooks import Delivery, DeliveryEntry, DeliveryStatus

__all__ = ["Clock", "DueKind", "IdFactory", "Job", "Storage", "WriteStats", "WriteTx"]

IdFactory = Callable[[], str]
"""Makes decision ids and experiment salts: unique strings."""

DueKind = Literal["reweight", "expired", "rollouts"]
"""What the scheduler asks for: experiments due a reweight, decisions whose reward window closed,
experiments with a running rollout plan."""


class Clock(Protocol):
    """Where the service gets the time; injected so tests can move it by hand."""

    def time(self) -> float:
        """Wall-clock time in seconds since the Unix epoch (timestamps, reward windows, schedules)."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards (cache ages)."""
        ...


class WriteTx(Protocol):
    """Reads and writes inside one write transaction (what a job may do)."""

    def experiment(self, key: str) -> Experiment | None:
        """The experiment with this key, as the transaction sees it."""
        ...

    def experiments_by_id(self, ids: Collection[int]) -> dict[int, Experiment]:
        """Experiments by id."""
        ...

    def namespace_members(self, name: str) -> list[Experiment]:
        """Experiments that are not completed and declare namespace `name`."""
        ...

    def insert_experiment(self, new: NewExperiment) -> Experiment:
        """Store a new experiment and its arms; its id and revision 1 (AlreadyExistsError on a used key)."""
        ...

    def update_experiment(self, experiment: Experiment, arms: Sequence[Arm] | None = None) -> Experiment | None:
        """Compare-and-set on `revision`: write every mutable field (and the arms, if given); None if it moved."""
        ...

    def append_weights(self, record: WeightsRecord) -> None:
        """Add a row to the weights history."""
        ...

    def log_event(self, event: Event) -> None:
        """Add an audit-log entry, and queue it for the webhook URLs of its experiment and of the storage
        (`Storage.webhook_url`), one delivery per distinct URL, in this same transaction."""
        ...

    def update_delivery(self, delivery: Delivery, attempts: int) -> bool:
        """Compare-and-set: write a delivery's state if it is still pending after `attempts` attempts."""
        ...

    def assignments(self, experiment_id: int, units: Collection[str]) -> dict[str, Assignment]:
        """Sticky assignments of these units."""
        ...

    def insert_assignments(self, experiment_id: int, rows: Sequence[tuple[str, Assignment]], now: float) -> set[str]:
        """Store first assignments of (unit, assignment); the units whose row this insert created.

        A unit missing from the answer already had an assignment (a concurrent replica stored it
        first): it is not a new unit for this transaction, and its stored arm wins.
        """
        ...

    def rebalance_page(
        self, experiment_id: int, version: int, after: str | None, limit: int
    ) -> list[tuple[str, Assignment]] | None:
        """Up to `limit` assignments stored before weights `version` (a smaller `weights_version`), by
        unit, after unit `after` (None: from the first); None once the experiment's weights version is
        not `version`. Locks the experiment's row until commit against decisions (which lock it shared),
        so no decision reads an assignment this transaction then moves."""
        ...

    def move_assignments(self, experiment_id: int, moves: Sequence[tuple[str, Assignment, Assignment]]) -> int:
        """Set each unit's assignment from the first value (compare-and-set on its arm and weights
        version) to the second, open trial included; how many moved."""
        ...

    def set_moved(self, experiment_id: int, version: int, moved: float) -> None:
        """Set the moved share of weights version `version` in the weights history."""
        ...

    def open_trials(self, experiment_id: int, trials: Sequence[OpenTrial]) -> None:
        """Record units' newly opened unit trials on their stored assignments."""
        ...

    def count_exposures(self, rows: Sequence[Exposure]) -> None:
        """Count decisions served inside open unit trials (they are not logged)."""
        ...

    def active_experiments(self, ids: Collection[int]) -> set[int]:
        """Those of these experiments that are active, read under a lock that keeps their status
        until this transaction commits (a pause or completion waits for it, or it waits for them)."""
        ...

    def insert_decisions(self, rows: Sequence[Decision]) -> None:
        """Log decisions as pending trials and count them (trial, exposure, new unit) per arm and weights period."""
        ...

    def claim_local_decisions(self, rows: Sequence[LocalDecision]) -> dict[str, bool]:
        """Record the ids of decisions SDKs logged (insert or ignore, by id); those among them recorded
        before, with whether they contradicted: only the others are new (a retried log counts once)."""
        ...

    def count_local_decisions(self, rows: Sequence[LocalDecision]) -> None:
        """Count logged local decisions per arm (`local`; `contradicted` where `contradicts`), and record
        `contradicts` on their claimed ids, so a retry answers as the first time."""
        ...

    def decision_contexts(self, ids: Collection[str]) -> dict[str, DecisionContext]:
        """Decisions by id, with their experiment's key, reward kind, trial rules and status (locked as
        in `active_experiments`), the arm's name and the rewards their trial has (by seq)."""
        ...

    def rewards_by_key(self, keys: Collection[str]) -> dict[str, StoredReward]:
        """Rewards by idempotency key."""
        ...

    def insert_rewards(self, rows: Sequence[RewardWrite]) -> None:
        """Store rewards; a trial's first marks it rewarded (ConflictError if it is not pending); count them."""
        ...

    def expire_decisions(self, ids: Collection[str]) -> list[ExpiredDecision]:
        """Mark still-pending trials expired (or excluded) and count them as their experiment's `missing` says."""
        ...

    def rollouts(self, experiment_id: int) -> dict[str, Rollout]:
        """The experiment's plans by kind ("ramp", "completion"), finished ones included."""
        ...

    def save_rollout(self, rollout: Rollout) -> Rollout | None:
        """Store a plan if its revision is still current (0: new); None if another writer moved it."""
        ...

    def api_keys(self) -> list[ApiKey]:
        """Every API key, by name."""
        ...

    def insert_api_key(self, key: ApiKey) -> bool:
        """Store a new key; False if its name is taken."""
        ...

    def delete_api_key(self, name: str) -> ApiKey | None:
        """Remove a key; the removed key, or None if there was none of that name."""
        ...

    def touch_api_key(self, name: str, now: float) -> None:
        """Record that the key was used at `now` (no-op for a revoked key)."""
        ...

    def probe(self) -> None:
        """A real write that leaves no trace, waiting for the locks a decision waits for (readiness)."""
        ...

    def feature(self, key: str) -> Feature | None:
        """The feature with this key (None: none, or deleted), read under a share lock: it is neither
        replaced nor deleted before this transaction commits."""
        ...

    def save_feature(self, feature: Feature) -> tuple[Feature, bool]:
        """Create or replace a feature (a deleted one comes back new), with the next change number; the
        stored feature (a replaced one keeps its `created_at`) and whether it was created."""
        ...

    def delete_feature(self, key: str, now: float) -> Feature | None:
        """Delete a feature, leaving a tombstone with the next change number (so other processes' caches
        see it); the deleted feature, or None if there was none."""
        ...

    def feature_experiments(self, key: str) -> list[Experiment]:
        """Experiments that serve feature `key`, in any status, by id."""
        ...

    def merge_looks(self, experiment_id: int, looks: Sequence[SequentialLook]) -> tuple[SequentialLook, ...]:
        """Merge each look into the experiment's stored one (`core.looks.merge_look`, applied by the
        database to the row as it is, so concurrent writers lose nothing); the experiment's merged looks."""
        ...


Job = Callable[[WriteTx, Sequence[Any]], list[Any]]
"""A write job: one outcome per item, in order; an exception *instance* as an outcome refuses
that item only (its writes must not have happened), a raised exception refuses the whole call."""


class WriteStats(msgspec.Struct, frozen=True, kw_only=True):
    """What this process's storage has committed: transactions and the writes in them."""

    commits: int
    writes: int
    busy_s: float = 0.0  # how long the writer's current transaction has been running (0: idle)


@runtime_checkable
class Storage(Protocol):
    """The database as the services see it; every method but `stats` is async."""

    webhook_url: str | None
    """The global webhook: every audit-log entry is also queued for it (set from the settings before `open`)."""

    async def open(self) -> None:
        """Create missing tables and start the writer (safe from several processes at once)."""
        ...

    async def close(self) -> None:
        """Commit what is queued and release connections; later writes raise UnavailableError."""
        ...

    async def ping(self) -> None:
        """Raise if the database cannot be reached."""
        ...

    def stats(self) -> WriteStats:
        """Commits and acknowledged writes of this process (for health and metrics)."""
        ...

    async def write(self, job: Job, item: Any) -> Any:
        """Run `job` on `item` in a write transaction; its outcome once committed (or the error that refused it)."""
        ...

    async def changes(self, since: int | None) -> ExperimentChanges:
        """Experiments created or updated (by any process) after change number `since`, and the latest
        number; `since=None` asks for the latest number only. Numbers follow commit order."""
        ...

    async def experiment(self, key: str) -> Experiment | None:
        """The experiment with this key."""
        ...

    async def experiments(self, status: ExperimentStatus | None, limit: int, offset: int) -> list[Experiment]:
        """Experiments, newest first, optionally of one status."""
        ...

    async def arm_counts(self, experiment: Experiment) -> list[ArmCounts]:
        """Per-arm counters (all periods), in arm order."""
        ...

    async def weights_history(self, experiment_id: int, limit: int) -> list[WeightsRecord]:
        """The most recent `limit` weights-history rows, oldest first."""
        ...

    async def assignment_counts(self, experiment_id: int, before_version: int) -> dict[int, int]:
        """Sticky assignments per arm stored before weights `before_version` (arms without any left out)."""
        ...

    async def rollouts(self, experiment_id: int) -> dict[str, Rollout]:
        """The experiment's plans by kind, finished ones included."""
        ...

    async def events(self, experiment_id: int, after: int, limit: int) -> list[LoggedEvent]:
        """Audit-log entries with id > `after`, oldest first."""
        ...

    async def due(self, kind: DueKind, now: float, limit: int) -> list[str]:
        """The scheduler's work: keys of experiments due a reweight or with a running plan, or ids of
        pending decisions whose reward window has closed, oldest first."""
        ...

    async def api_key(self, digest: str) -> ApiKey | None:
        """The key with this digest (how a request's key is found)."""
        ...

    async def api_keys(self) -> list[ApiKey]:
        """Every API key, by name."""
        ...

    async def report_data(
        self, experiment: Experiment, *, since_day: int | None = None, until_day: int | None = None
    ) -> ReportData:
        """Counters per weights period and arm, metric statistics, sketches and the weights history; with a
        window, of the trials opened on UTC days `since_day` to `until_day` (inclusive; None: unbounded)."""
        ...

    async def segment_data(
        self,
        experiment: Experiment,
        attribute: str,
        max_segments: int,
        since_day: int | None = None,
        until_day: int | None = None,
    ) -> SegmentData:
        """The same per value of a decision attribute (InvalidFieldError beyond `max_segments` values)."""
        ...

    async def daily_counters(
        self, experiment: Experiment, since_day: int | None = None, until_day: int | None = None
    ) -> DailyCounters:
        """Counters per UTC day and arm (summed over weights periods) of the trials opened in the window."""
        ...

    async def due_deliveries(self, now: float, limit: int) -> list[DeliveryEntry]:
        """Pending webhook deliveries due at `now`, with their events, the longest-waiting first."""
        ...

    async def deliveries(
        self, experiment_id: int | None, status: DeliveryStatus | None, before: int | None, limit: int
    ) -> list[DeliveryEntry]:
        """Webhook deliveries newest first (of one experiment, or all), optionally of one status, ids < `before`."""
        ...

    async def feature(self, key: str) -> Feature | None:
        """The feature with this key (None: none, or deleted)."""
        ...

    async def features(self) -> list[Feature]:
        """Every feature, by key."""
        ...

    async def feature_experiments(self, key: str) -> list[Experiment]:
        """Experiments that serve feature `key`, in any status, by id."""
        ...

    async def sequential_looks(self, experiment_id: int) -> tuple[SequentialLook, ...]:
        """The experiment's stored always-valid looks, by (metric, arm)."""
        ...

    async def record_looks(self, experiment_id: int, looks: Sequence[SequentialLook]) -> tuple[SequentialLook, ...]:
        """Merge a report's looks into the stored ones, atomically, once committed; the experiment's merged looks."""
        ...
