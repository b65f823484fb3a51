"""The storage seam: what the domain may ask of the database, in domain values only.

Reads run outside any write transaction. Writes are *jobs*: a domain function that receives a
`Transaction` and a list of queued items of one kind and returns one outcome per item (a
result, or a `DomainError` instance for an item the domain refuses). The group-commit writer
hands batches of jobs to `Repository.run_batch`, which runs them in one transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import Any, Protocol, runtime_checkable

from bandit_service.core.model import (
    Arm,
    ArmCounts,
    Assignment,
    Decision,
    DecisionContext,
    Event,
    Experiment,
    ExperimentStatus,
    ExpiredDecision,
    LoggedEvent,
    NewExperiment,
    Rollout,
    StoredReward,
    WeightsRecord,
)

__all__ = ["Job", "Repository", "Transaction"]


class Transaction(Protocol):
    """Reads and writes inside the current write transaction."""

    def experiment(self, key: str) -> Experiment | None:
        """The experiment with this key, as the transaction sees it."""
        ...

    def experiments_by_id(self, ids: Collection[int]) -> dict[int, Experiment]:
        """Experiments by id."""
        ...

    def insert_experiment(self, new: NewExperiment) -> Experiment:
        """Store a new experiment (and its arms); returns it with its id and revision 1."""
        ...

    def update_experiment(self, experiment: Experiment) -> Experiment | None:
        """Write every mutable field if `experiment.revision` is still current; None if it changed."""
        ...

    def replace_arms(self, experiment_id: int, arms: Sequence[Arm]) -> None:
        """Replace the arms of a draft experiment."""
        ...

    def append_weights(self, record: WeightsRecord) -> None:
        """Add a row to the weights history."""
        ...

    def log_event(self, event: Event) -> None:
        """Add an audit-log entry."""
        ...

    def assignments(self, experiment_id: int, units: Collection[str]) -> dict[str, Assignment]:
        """Sticky assignments of these units (primary-key lookups)."""
        ...

    def insert_assignments(
        self, experiment_id: int, rows: Sequence[tuple[str, Assignment]], now: float
    ) -> dict[str, Assignment]:
        """Store first assignments of (unit, assignment); returns what is stored (a concurrent replica may win)."""
        ...

    def insert_decisions(self, rows: Sequence[Decision]) -> None:
        """Log decisions as pending and count them per arm and per weights period."""
        ...

    def decision_contexts(self, ids: Collection[str]) -> dict[str, DecisionContext]:
        """Decisions by id, with their experiment's key, reward kind, the arm's name and their reward (if any)."""
        ...

    def rewards_by_key(self, keys: Collection[str]) -> dict[str, StoredReward]:
        """Rewards by idempotency key."""
        ...

    def insert_rewards(self, rows: Sequence[StoredReward]) -> None:
        """Store rewards, mark their decisions rewarded, and add them to the per-arm and per-period counters."""
        ...

    def expire_decisions(self, ids: Collection[str]) -> list[ExpiredDecision]:
        """Mark still-pending decisions expired; returns those that were pending."""
        ...

    def count_expired(self, rows: Sequence[ExpiredDecision], default_rewards: dict[int, float]) -> None:
        """Add expired decisions to the counters with their experiment's default reward."""
        ...

    def rollouts(self, experiment_id: int) -> dict[str, Rollout]:
        """The experiment's plans by kind ("ramp", "completion"), finished ones included."""
        ...

    def save_rollout(self, rollout: Rollout) -> Rollout | None:
        """Store a plan if its revision is still current (0: new); None if another writer moved it."""
        ...

    def namespace_members(self, name: str) -> list[Experiment]:
        """Experiments that are not completed and declare namespace `name`."""
        ...


Job = Callable[[Transaction, Sequence[Any]], list[Any]]
"""A write job: one outcome per item, in order; a `DomainError` outcome refuses that item only."""


@runtime_checkable
class Repository(Protocol):
    """Storage as the domain sees it."""

    def create_schema(self) -> None:
        """Create missing tables (safe to call from several processes at once)."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...

    def ping(self) -> None:
        """Raise if the database cannot be reached."""
        ...

    def experiment(self, key: str) -> Experiment | None:
        """The experiment with this key."""
        ...

    def experiments(self, status: ExperimentStatus | None, limit: int, offset: int) -> list[Experiment]:
        """Experiments, newest first, optionally of one status."""
        ...

    def arm_counts(self, experiment: Experiment) -> list[ArmCounts]:
        """Per-arm counters (all periods), in arm order."""
        ...

    def weights_history(self, experiment_id: int, limit: int) -> list[WeightsRecord]:
        """The most recent `limit` weights-history rows, oldest first."""
        ...

    def due_for_reweight(self, now: float, limit: int) -> list[str]:
        """Keys of active experiments whose next reweight time has come."""
        ...

    def expired_pending(self, now: float, limit: int) -> list[str]:
        """Ids of pending decisions whose reward window has closed."""
        ...

    def rollouts(self, experiment_id: int) -> dict[str, Rollout]:
        """The experiment's plans by kind, finished ones included."""
        ...

    def running_rollouts(self, limit: int) -> list[str]:
        """Keys of active experiments with a running plan."""
        ...

    def events(self, experiment_id: int, after: int, limit: int) -> list[LoggedEvent]:
        """Audit-log entries with id > `after`, oldest first."""
        ...

    def run_batch(self, groups: Sequence[tuple[Job, Sequence[Any]]]) -> list[list[Any]]:
        """Run jobs in one transaction; per item, its result or the exception that refused it."""
        ...
