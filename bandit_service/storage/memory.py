"""The in-memory twin of the SQL storage: the same port over plain dicts, for fast service tests.

It reproduces what the services can observe of `SqlStorage` (ids, ordering, compare-and-set,
counters, sketches, segment reads); `tests/storage` runs one contract suite on both. A write runs
its job at once, without an await, so it is atomic on the event loop; every change goes through
`MemoryTx._put`, which logs how to undo it, so a job that raises leaves nothing behind.
Values are kept as JSON round-trips of what was written, as a JSON column would keep them, so a
caller that mutates a dict it passed in does not change what is stored.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Collection, Mapping, Sequence
from functools import partial
from typing import Any, TypeVar, assert_never

import msgspec

from bandit_service.core.errors import AlreadyExistsError, ConflictError, InvalidFieldError, UnavailableError
from bandit_service.core.looks import SequentialLook, merge_look
from bandit_service.core.model import (
    Arm,
    ArmCounts,
    Assignment,
    Decision,
    DecisionContext,
    DecisionStatus,
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
from bandit_service.core.report_data import (
    CounterRow,
    DailyCounters,
    MetricRow,
    ReportData,
    SegmentData,
    day_counters,
    day_of,
    period_counters,
)
from bandit_service.core.roles import ApiKey
from bandit_service.core.webhooks import Delivery, DeliveryEntry, DeliveryStatus, targets
from bandit_service.ports import DueKind, Job, WriteStats
from bandit_service.storage import counter_steps as steps
from bandit_service.storage.looks import record_looks_job
from bandit_service.storage.report_reads import segment_label
from bandit_service.storage.sketches import SKETCH_ACCURACY, is_sketched
from policies import ArmStats
from policies.sketch import QuantileSketch

__all__ = ["MemoryStorage", "MemoryTx"]

T = TypeVar("T")
EMPTY_SKETCH = QuantileSketch(relative_accuracy=SKETCH_ACCURACY)
Counters = tuple[Any, ...]  # storage.counters.COUNTER_COLUMNS (a step of storage.counter_steps)
NO_COUNTS: Counters = (0, 0, 0, 0, 0, 0, 0.0, 0.0, 0.0)


def _kept(value: T) -> T:
    """A JSON round-trip of a value: what a JSON column returns, sharing no mutable dict with the caller."""
    return msgspec.json.decode(msgspec.json.encode(value), type=type(value))


def _within(day: int, since_day: int | None, until_day: int | None) -> bool:
    return (since_day is None or day >= since_day) and (until_day is None or day <= until_day)


def _plus(current: Counters | None, step: Counters) -> Counters:
    return step if current is None else tuple(a + b for a, b in zip(current, step, strict=True))


class _Tables:
    """The rows, one dict per SQL table, keyed by its primary key."""

    def __init__(self) -> None:
        self.sequences: dict[str, int] = {"experiments": 0, "events": 0, "changes": 0, "deliveries": 0}
        self.change_seq: dict[int, int] = {}  # experiment id -> the change number of its last change
        self.experiments: dict[int, Experiment] = {}
        self.keys: dict[str, int] = {}  # the unique index on experiments.key
        self.weights: dict[tuple[int, int], WeightsRecord] = {}
        self.events: dict[int, LoggedEvent] = {}
        self.assignments: dict[tuple[int, str], Assignment] = {}
        self.decisions: dict[str, Decision] = {}
        self.status: dict[str, DecisionStatus] = {}
        self.rewards: dict[tuple[str, int], StoredReward] = {}  # by (decision id, seq)
        self.reward_keys: dict[str, tuple[str, int]] = {}  # the unique index on rewards.idempotency_key
        self.arm_counters: dict[tuple[int, int], Counters] = {}
        self.local_counters: dict[tuple[int, int], tuple[int, int]] = {}  # arm_counters.local, .contradicted
        self.logged: dict[str, LocalDecision] = {}  # logged_decisions, by decision id
        self.period_counters: dict[tuple[int, int, int, int], Counters] = {}  # (experiment, version, day, arm)
        self.arm_metrics: dict[tuple[int, int, str], Counters] = {}
        self.period_metrics: dict[tuple[int, int, int, int, str], Counters] = {}
        self.sketches: dict[tuple[int, int, str], QuantileSketch] = {}
        self.rollouts: dict[tuple[int, str], Rollout] = {}
        self.api_keys: dict[str, ApiKey] = {}
        self.features: dict[str, Feature] = {}  # features not deleted, by key
        self.feature_seq: dict[str, int] = {}  # feature key -> change number of its last change (deletes too)
        self.deliveries: dict[int, Delivery] = {}
        self.looks: dict[tuple[int, str, str], SequentialLook] = {}  # sequential_looks, by (experiment, metric, arm)

    def experiment(self, key: str) -> Experiment | None:
        experiment_id = self.keys.get(key)
        return None if experiment_id is None else self.experiments[experiment_id]

    def feature_experiments(self, key: str) -> list[Experiment]:
        return [e for _, e in sorted(self.experiments.items()) if e.config.feature == key]

    def looks_of(self, experiment_id: int) -> tuple[SequentialLook, ...]:
        return tuple(self.looks[key] for key in sorted(self.looks) if key[0] == experiment_id)

    def rollouts_of(self, experiment_id: int) -> dict[str, Rollout]:
        return {kind: r for (e, kind), r in sorted(self.rollouts.items()) if e == experiment_id}

    def rewards_of(self, decision_id: str) -> list[StoredReward]:
        """A trial's rewards by seq (seqs are consecutive from 0)."""
        out: list[StoredReward] = []
        while (decision_id, len(out)) in self.rewards:
            out.append(self.rewards[(decision_id, len(out))])
        return out

    def joined(self, reward: StoredReward) -> StoredReward | None:
        """A reward with its experiment's key and arm's name as stored now (None: the join finds no arm)."""
        experiment = self.experiments[reward.experiment_id]
        if reward.arm >= len(experiment.arms):
            return None
        return msgspec.structs.replace(reward, experiment_key=experiment.key, arm_name=experiment.arms[reward.arm].name)


class MemoryTx:
    """A write transaction over the tables: changes apply at once and are logged so `rollback` can undo them."""

    def __init__(self, tables: _Tables, webhook_url: str | None = None) -> None:
        self._t = tables
        self._webhook_url = webhook_url  # the global webhook (see `Storage.webhook_url`)
        self._undo: list[Callable[[], object]] = []

    def rollback(self) -> None:
        """Undo every change of this transaction, newest first."""
        while self._undo:
            self._undo.pop()()

    def _put(self, table: dict[Any, Any], key: Any, value: Any) -> None:
        """Set a row, remembering how to restore it (restoring keeps the dict's order)."""
        if key in table:
            self._undo.append(partial(table.__setitem__, key, table[key]))
        else:
            self._undo.append(partial(table.pop, key))
        table[key] = value

    def _insert(self, table: dict[Any, Any], key: Any, value: Any, what: str) -> None:
        """Add a row; a used primary key fails the transaction, as an integrity error would."""
        if key in table:
            raise ValueError(f"duplicate {what} {key!r}")
        self._put(table, key, value)

    def _next(self, sequence: str) -> int:
        value = self._t.sequences[sequence] + 1
        self._put(self._t.sequences, sequence, value)
        return value

    def experiment(self, key: str) -> Experiment | None:
        """The experiment with this key."""
        return self._t.experiment(key)

    def experiments_by_id(self, ids: Collection[int]) -> dict[int, Experiment]:
        """Experiments by id."""
        return {i: self._t.experiments[i] for i in ids if i in self._t.experiments}

    def namespace_members(self, name: str) -> list[Experiment]:
        """Experiments not completed in namespace `name`, by id."""
        return [
            e
            for e in self._t.experiments.values()
            if e.status != "completed" and e.config.namespace is not None and e.config.namespace.name == name
        ]

    def insert_experiment(self, new: NewExperiment) -> Experiment:
        """Store a new experiment with the next id and revision 1."""
        if new.key in self._t.keys:
            raise AlreadyExistsError(f"an experiment with key {new.key!r} already exists", field="key")
        experiment = Experiment(**msgspec.structs.asdict(new), id=self._next("experiments"), revision=1)
        self._put(self._t.experiments, experiment.id, _kept(experiment))
        self._put(self._t.change_seq, experiment.id, self._next("changes"))
        self._put(self._t.keys, experiment.key, experiment.id)
        return experiment

    def update_experiment(self, experiment: Experiment, arms: Sequence[Arm] | None = None) -> Experiment | None:
        """Compare-and-set on `revision`; key, salt and creation time are never rewritten."""
        stored = self._t.experiments.get(experiment.id)
        if stored is None or stored.revision != experiment.revision:
            return None
        revision = experiment.revision + 1
        kept_arms = stored.arms if arms is None else tuple(arms)
        row = msgspec.structs.replace(
            experiment,
            key=stored.key,
            salt=stored.salt,
            created_at=stored.created_at,
            arms=kept_arms,
            revision=revision,
        )
        self._put(self._t.experiments, experiment.id, _kept(row))
        self._put(self._t.change_seq, experiment.id, self._next("changes"))
        return msgspec.structs.replace(experiment, revision=revision)

    def append_weights(self, record: WeightsRecord) -> None:
        """Add a row to the weights history."""
        self._insert(self._t.weights, (record.experiment_id, record.version), record, "weights version")

    def log_event(self, event: Event) -> None:
        """Add an audit-log entry with the next id."""
        logged = LoggedEvent(**msgspec.structs.asdict(event), id=self._next("events"))
        self._put(self._t.events, logged.id, _kept(logged))
        experiment = self._t.experiments.get(event.experiment_id)
        own = None if experiment is None else experiment.config.webhook_url
        for url in targets(own, self._webhook_url):
            delivery_id = self._next("deliveries")
            self._put(
                self._t.deliveries,
                delivery_id,
                Delivery(
                    id=delivery_id,
                    event_id=logged.id,
                    experiment_id=event.experiment_id,
                    url=url,
                    status="pending",
                    attempts=0,
                    next_attempt_at=event.created_at,
                    last_attempt_at=None,
                    last_status_code=None,
                    last_error=None,
                    created_at=event.created_at,
                    delivered_at=None,
                ),
            )

    def update_delivery(self, delivery: Delivery, attempts: int) -> bool:
        """Compare-and-set a webhook delivery on its attempt count (what it was queued with never changes)."""
        stored = self._t.deliveries.get(delivery.id)
        if stored is None or stored.status != "pending" or stored.attempts != attempts:
            return False
        fixed = ("id", "event_id", "experiment_id", "url", "created_at")
        kept = msgspec.structs.replace(delivery, **{f: getattr(stored, f) for f in fixed})
        self._put(self._t.deliveries, delivery.id, kept)
        return True

    def assignments(self, experiment_id: int, units: Collection[str]) -> dict[str, Assignment]:
        """Sticky assignments of these units."""
        table = self._t.assignments
        return {u: table[(experiment_id, u)] for u in units if (experiment_id, u) in table}

    def insert_assignments(self, experiment_id: int, rows: Sequence[tuple[str, Assignment]], now: float) -> set[str]:
        """Store first assignments (on conflict do nothing); the units whose row this created."""
        created = set()
        for unit, assignment in rows:
            if (experiment_id, unit) not in self._t.assignments:
                self._put(self._t.assignments, (experiment_id, unit), assignment)
                created.add(unit)
        return created

    def rebalance_page(
        self, experiment_id: int, version: int, after: str | None, limit: int
    ) -> list[tuple[str, Assignment]] | None:
        """Assignments stored before weights `version`, by unit after `after`; None once the version moved on."""
        experiment = self._t.experiments.get(experiment_id)
        if experiment is None or experiment.weights_version != version:
            return None
        found = (
            (unit, a)
            for (e, unit), a in self._t.assignments.items()
            if e == experiment_id and a.weights_version < version and (after is None or unit > after)
        )
        return heapq.nsmallest(limit, found, key=lambda row: row[0])

    def move_assignments(self, experiment_id: int, moves: Sequence[tuple[str, Assignment, Assignment]]) -> int:
        """Compare-and-set each unit's assignment on its arm and weights version; how many moved."""
        moved = 0
        for unit, old, new in moves:
            current = self._t.assignments.get((experiment_id, unit))
            if current is not None and (current.arm, current.weights_version) == (old.arm, old.weights_version):
                self._put(self._t.assignments, (experiment_id, unit), new)
                moved += 1
        return moved

    def set_moved(self, experiment_id: int, version: int, moved: float) -> None:
        """Set the moved share of a weights-history row."""
        key = (experiment_id, version)
        if key in self._t.weights:
            self._put(self._t.weights, key, msgspec.structs.replace(self._t.weights[key], moved=moved))

    def open_trials(self, experiment_id: int, trials: Sequence[OpenTrial]) -> None:
        """Record units' newly opened trials on their assignments."""
        for t in trials:
            key = (experiment_id, t.unit)
            current = self._t.assignments[key]
            self._put(
                self._t.assignments,
                key,
                msgspec.structs.replace(current, trial_id=t.trial_id, trial_expires_at=t.expires_at),
            )

    def count_exposures(self, rows: Sequence[Exposure]) -> None:
        """Count decisions served inside open unit trials."""
        for e in rows:
            self._count(e.experiment_id, e.weights_version, self._opened_on(e.trial_id), e.arm, steps.exposure())

    def active_experiments(self, ids: Collection[int]) -> set[int]:
        """Those of these experiments that are active (one writer at a time: nothing changes before commit)."""
        return {i for i in ids if i in self._t.experiments and self._t.experiments[i].status == "active"}

    def insert_decisions(self, rows: Sequence[Decision]) -> None:
        """Log decisions as pending and count them."""
        for d in rows:
            self._insert(self._t.decisions, d.id, _kept(d), "decision id")
            self._put(self._t.status, d.id, "pending")
            self._count(d.experiment_id, d.weights_version, day_of(d.created_at), d.arm, steps.opened(d.new_unit))

    def claim_local_decisions(self, rows: Sequence[LocalDecision]) -> dict[str, bool]:
        """Record SDK-logged decision ids (insert or ignore); those recorded before, with their `contradicts`."""
        before = {}
        for r in rows:
            found = self._t.logged.get(r.decision_id)
            if found is not None:
                before[r.decision_id] = found.contradicts
            else:
                self._put(self._t.logged, r.decision_id, msgspec.structs.replace(r, contradicts=False))
        return before

    def count_local_decisions(self, rows: Sequence[LocalDecision]) -> None:
        """Count SDK-logged decisions per arm and record which contradicted the unit's sticky arm."""
        for r in rows:
            key = (r.experiment_id, r.arm)
            local, contradicted = self._t.local_counters.get(key, (0, 0))
            self._put(self._t.local_counters, key, (local + 1, contradicted + (1 if r.contradicts else 0)))
            found = self._t.logged.get(r.decision_id)
            if r.contradicts and found is not None:
                self._put(self._t.logged, r.decision_id, msgspec.structs.replace(found, contradicts=True))

    def decision_contexts(self, ids: Collection[str]) -> dict[str, DecisionContext]:
        """Decisions by id joined with their experiment, arm and reward."""
        out = {}
        for i in ids:
            d = self._t.decisions.get(i)
            if d is None:
                continue
            experiment = self._t.experiments[d.experiment_id]
            if d.arm >= len(experiment.arms):
                continue  # the inner join on arms finds nothing
            rewards = [self._t.joined(r) for r in self._t.rewards_of(i)]
            out[i] = DecisionContext(
                decision_id=i,
                experiment_id=d.experiment_id,
                experiment_key=experiment.key,
                reward_kind=experiment.config.reward,
                arm=d.arm,
                arm_name=experiment.arms[d.arm].name,
                weights_version=d.weights_version,
                status=self._t.status[i],
                expires_at=d.expires_at,
                experiment_status=experiment.status,
                trial=experiment.config.trial,
                aggregate=experiment.config.aggregate,
                rewards=tuple(r for r in rewards if r is not None),
            )
        return out

    def rewards_by_key(self, keys: Collection[str]) -> dict[str, StoredReward]:
        """Rewards by idempotency key."""
        out = {}
        for key in keys:
            where = self._t.reward_keys.get(key)
            reward = None if where is None else self._t.joined(self._t.rewards[where])
            if reward is not None:
                out[key] = reward
        return out

    def insert_rewards(self, rows: Sequence[RewardWrite]) -> None:
        """Store rewards and count them; ConflictError if a trial's first finds it no longer pending."""
        for w in rows:
            if w.before is None:
                decision_id = w.reward.decision_id
                if self._t.status.get(decision_id) != "pending":
                    raise ConflictError("decision_id: the decision changed concurrently; retry", field="decision_id")
                self._put(self._t.status, decision_id, "rewarded")
        for w in rows:
            r = w.reward
            self._insert(self._t.rewards, (r.decision_id, r.seq), _kept(r), "reward of decision")
            if r.idempotency_key is not None:
                self._insert(self._t.reward_keys, r.idempotency_key, (r.decision_id, r.seq), "idempotency key")
            day = self._opened_on(r.decision_id)
            self._count(r.experiment_id, r.weights_version, day, r.arm, steps.reward(w.before, w.after))
            self._count_metrics(r.experiment_id, r.weights_version, day, r.arm, r.metrics)
            for name, x in r.metrics.items():
                if x >= 0 and is_sketched(name):
                    key = (r.experiment_id, r.arm, name)
                    self._put(self._t.sketches, key, self._t.sketches.get(key, EMPTY_SKETCH).add(x))

    def expire_decisions(self, ids: Collection[str]) -> list[ExpiredDecision]:
        """Mark still-pending trials expired (or excluded) and count them as their experiment's `missing` says."""
        out = []
        for i in dict.fromkeys(ids):
            if self._t.status.get(i) != "pending":
                continue
            d = self._t.decisions[i]
            value = self._t.experiments[d.experiment_id].config.missing_reward
            self._put(self._t.status, i, "expired" if value is not None else "excluded")
            self._count(d.experiment_id, d.weights_version, day_of(d.created_at), d.arm, steps.unrewarded(value))
            out.append(
                ExpiredDecision(
                    decision_id=i, experiment_id=d.experiment_id, arm=d.arm, weights_version=d.weights_version
                )
            )
        return out

    def rollouts(self, experiment_id: int) -> dict[str, Rollout]:
        """The experiment's plans by kind."""
        return self._t.rollouts_of(experiment_id)

    def save_rollout(self, rollout: Rollout) -> Rollout | None:
        """Insert (revision 0) or replace a plan whose stored revision is still `rollout.revision`."""
        key = (rollout.experiment_id, rollout.kind)
        current = self._t.rollouts.get(key)
        if (current.revision if current is not None else 0) != rollout.revision:
            return None
        saved = msgspec.structs.replace(rollout, revision=rollout.revision + 1)
        self._put(self._t.rollouts, key, saved)
        return saved

    def api_keys(self) -> list[ApiKey]:
        """Every API key, by name."""
        return [self._t.api_keys[name] for name in sorted(self._t.api_keys)]

    def insert_api_key(self, key: ApiKey) -> bool:
        """Store a new key; False if its name is taken (a taken digest fails, as the unique index would)."""
        if key.name in self._t.api_keys:
            return False
        if any(k.digest == key.digest for k in self._t.api_keys.values()):
            raise ValueError("duplicate api key digest")
        self._put(self._t.api_keys, key.name, key)
        return True

    def delete_api_key(self, name: str) -> ApiKey | None:
        """Remove a key; the removed key or None."""
        found = self._t.api_keys.get(name)
        if found is not None:
            self._undo.append(partial(self._t.api_keys.__setitem__, name, found))
            del self._t.api_keys[name]
        return found

    def touch_api_key(self, name: str, now: float) -> None:
        """Record the key's last use (never moves it back)."""
        found = self._t.api_keys.get(name)
        if found is not None and (found.last_used_at is None or found.last_used_at < now):
            self._put(self._t.api_keys, name, msgspec.structs.replace(found, last_used_at=now))

    def probe(self) -> None:
        """Nothing to write: memory is always writable while the process runs."""

    def feature(self, key: str) -> Feature | None:
        """The feature with this key (one writer at a time: nothing changes it before commit)."""
        return self._t.features.get(key)

    def save_feature(self, feature: Feature) -> tuple[Feature, bool]:
        """Create or replace a feature with the next change number; a replaced one keeps its `created_at`."""
        current = self._t.features.get(feature.key)
        if current is not None:
            feature = msgspec.structs.replace(feature, created_at=current.created_at)
        self._put(self._t.features, feature.key, _kept(feature))
        self._put(self._t.feature_seq, feature.key, self._next("changes"))
        return feature, current is None

    def delete_feature(self, key: str, now: float) -> Feature | None:
        """Delete a feature; its change number records the deletion, as the SQL tombstone does."""
        found = self._t.features.get(key)
        if found is not None:
            self._undo.append(partial(self._t.features.__setitem__, key, found))
            del self._t.features[key]
            self._put(self._t.feature_seq, key, self._next("changes"))
        return found

    def feature_experiments(self, key: str) -> list[Experiment]:
        """Experiments that serve feature `key`, by id."""
        return self._t.feature_experiments(key)

    def merge_looks(self, experiment_id: int, looks: Sequence[SequentialLook]) -> tuple[SequentialLook, ...]:
        """Merge looks into their stored ones with `merge_look` (as the SQL upsert does); the merged ones."""
        for look in looks:
            key = (experiment_id, *look.key)
            self._put(self._t.looks, key, merge_look(self._t.looks.get(key), look))
        return self._t.looks_of(experiment_id)

    def _opened_on(self, decision_id: str) -> int:
        """The UTC day a trial's opening decision was made (its counters' day), as the SQL storage reads it."""
        d = self._t.decisions.get(decision_id)
        if d is None:
            raise RuntimeError(f"no decision {decision_id!r}: its trial's counters have no day")
        return day_of(d.created_at)

    def _count(self, experiment_id: int, version: int, day: int, arm: int, step: Counters) -> None:
        tables: list[tuple[dict[Any, Counters], Any]] = [
            (self._t.arm_counters, (experiment_id, arm)),
            (self._t.period_counters, (experiment_id, version, day, arm)),
        ]
        for table, key in tables:
            self._put(table, key, _plus(table.get(key), step))

    def _count_metrics(
        self, experiment_id: int, version: int, day: int, arm: int, metrics: Mapping[str, float]
    ) -> None:
        """One observation of each extra metric, exactly as `storage.counters.CounterDeltas.metrics`."""
        for name, x in metrics.items():
            tables: list[tuple[dict[Any, Counters], Any]] = [
                (self._t.arm_metrics, (experiment_id, arm, name)),
                (self._t.period_metrics, (experiment_id, version, day, arm, name)),
            ]
            for table, key in tables:
                self._put(table, key, _plus(table.get(key), (1.0, x, x * x)))


class MemoryStorage:
    """The `Storage` port over dicts: each write is its own transaction, committed at once."""

    def __init__(self) -> None:
        self._t = _Tables()
        self._open = False
        self._closed = False
        self._commits = 0
        self._writes = 0
        self.webhook_url: str | None = None  # the global webhook (see `Storage.webhook_url`)

    async def open(self) -> None:
        """Start taking writes."""
        self._open = True

    async def close(self) -> None:
        """Stop taking writes (reads still work)."""
        self._closed = True

    async def ping(self) -> None:
        """Always reachable."""

    def stats(self) -> WriteStats:
        """Commits and writes so far (one each per write that ran)."""
        return WriteStats(commits=self._commits, writes=self._writes)

    async def write(self, job: Job, item: Any) -> Any:
        """Run `job` on `item` now; undo its changes if it raises, raise its outcome if that is an error."""
        if not self._open or self._closed:
            raise UnavailableError("the service is not accepting writes (starting up or shutting down); retry")
        tx = MemoryTx(self._t, self.webhook_url)
        # Counted like the SQL writer counts: a refused item still rode in a committed transaction.
        self._commits += 1
        self._writes += 1
        try:
            [outcome] = job(tx, [item])
        except BaseException:
            tx.rollback()
            raise
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    async def changes(self, since: int | None) -> ExperimentChanges:
        """Experiments and features changed after change number `since` (None: just the latest number)."""
        t = self._t
        if since is None:
            return ExperimentChanges(seq=t.sequences["changes"], revisions={})
        changed = [t.experiments[i] for i, seq in t.change_seq.items() if seq > since]
        features = {key: seq for key, seq in t.feature_seq.items() if seq > since}
        return ExperimentChanges(
            seq=max([since, *(t.change_seq[e.id] for e in changed), *features.values()]),
            revisions={e.key: e.revision for e in changed},
            features=features,
            experiment_features={e.key: e.config.feature for e in changed if e.config.feature is not None},
        )

    async def experiment(self, key: str) -> Experiment | None:
        """The experiment with this key."""
        return self._t.experiment(key)

    async def experiments(self, status: ExperimentStatus | None, limit: int, offset: int) -> list[Experiment]:
        """Experiments, newest first (created_at, then id, descending)."""
        found = [e for e in self._t.experiments.values() if status is None or e.status == status]
        found.sort(key=lambda e: (e.created_at, e.id), reverse=True)
        return found[offset : offset + limit]

    async def arm_counts(self, experiment: Experiment) -> list[ArmCounts]:
        """Per-arm counters in arm order (zeros for arms without traffic)."""
        metrics: dict[int, dict[str, ArmStats]] = {}
        for (e, arm, name), (n, total, total_sq) in sorted(self._t.arm_metrics.items()):
            if e == experiment.id:
                metrics.setdefault(arm, {})[name] = ArmStats(n, total, total_sq)
        out = []
        for i in range(len(experiment.arms)):
            units, trials, exposures, rewarded, expired, excluded, n, total, total_sq = self._t.arm_counters.get(
                (experiment.id, i), NO_COUNTS
            )
            local, contradicted = self._t.local_counters.get((experiment.id, i), (0, 0))
            out.append(
                ArmCounts(
                    units=units,
                    trials=trials,
                    exposures=exposures,
                    rewarded=rewarded,
                    expired=expired,
                    excluded=excluded,
                    stats=ArmStats(n, total, max(total_sq, 0.0)),
                    metrics=metrics.get(i, {}),
                    local=local,
                    contradicted=contradicted,
                )
            )
        return out

    async def weights_history(self, experiment_id: int, limit: int) -> list[WeightsRecord]:
        """The most recent `limit` rows, oldest first."""
        return list(self._history(experiment_id)[-limit:]) if limit > 0 else []

    async def assignment_counts(self, experiment_id: int, before_version: int) -> dict[int, int]:
        """Sticky assignments per arm stored before weights `before_version`."""
        counts: dict[int, int] = {}
        for (e, _), a in self._t.assignments.items():
            if e == experiment_id and a.weights_version < before_version:
                counts[a.arm] = counts.get(a.arm, 0) + 1
        return counts

    async def rollouts(self, experiment_id: int) -> dict[str, Rollout]:
        """The experiment's plans by kind."""
        return self._t.rollouts_of(experiment_id)

    async def events(self, experiment_id: int, after: int, limit: int) -> list[LoggedEvent]:
        """Audit-log entries with id > `after`, oldest first."""
        found = [e for i, e in sorted(self._t.events.items()) if i > after and e.experiment_id == experiment_id]
        return found[:limit]

    async def due(self, kind: DueKind, now: float, limit: int) -> list[str]:
        """The scheduler's work, in the order of the SQL queries (ties by insertion, as the indexes give them)."""
        t = self._t
        match kind:
            case "reweight":
                due = [
                    e
                    for e in t.experiments.values()
                    if e.status == "active" and e.next_reweight_at is not None and e.next_reweight_at <= now
                ]
                return [e.key for e in sorted(due, key=lambda e: e.next_reweight_at or 0.0)][:limit]
            case "expired":
                pending = [d for i, d in t.decisions.items() if t.status[i] == "pending" and d.expires_at <= now]
                return [d.id for d in sorted(pending, key=lambda d: d.expires_at)][:limit]
            case "rollouts":
                running = {r.experiment_id for r in t.rollouts.values() if r.state.status == "running"}
                return sorted(t.experiments[i].key for i in running if t.experiments[i].status == "active")[:limit]
            case _:
                assert_never(kind)

    async def api_key(self, digest: str) -> ApiKey | None:
        """The key with this digest."""
        return next((k for k in self._t.api_keys.values() if k.digest == digest), None)

    async def api_keys(self) -> list[ApiKey]:
        """Every API key, by name."""
        return [self._t.api_keys[name] for name in sorted(self._t.api_keys)]

    async def feature(self, key: str) -> Feature | None:
        """The feature with this key (None: none, or deleted)."""
        return self._t.features.get(key)

    async def features(self) -> list[Feature]:
        """Every feature, by key."""
        return [self._t.features[key] for key in sorted(self._t.features)]

    async def feature_experiments(self, key: str) -> list[Experiment]:
        """Experiments that serve feature `key`, by id."""
        return self._t.feature_experiments(key)

    async def sequential_looks(self, experiment_id: int) -> tuple[SequentialLook, ...]:
        """The experiment's stored always-valid looks, by (metric, arm)."""
        return self._t.looks_of(experiment_id)

    async def record_looks(self, experiment_id: int, looks: Sequence[SequentialLook]) -> tuple[SequentialLook, ...]:
        """Merge looks into the stored ones (one write, atomic on the event loop); the merged ones."""
        merged: tuple[SequentialLook, ...] = await self.write(record_looks_job, (experiment_id, tuple(looks)))
        return merged

    async def report_data(
        self, experiment: Experiment, *, since_day: int | None = None, until_day: int | None = None
    ) -> ReportData:
        """Counters per period and arm (of the trials opened in [since_day, until_day], when given), metric
        statistics, sketches and the weights history; a window's sketches and local counts as `SqlReportStore`'s."""
        e, k = experiment.id, len(experiment.arms)
        rows, metric_rows = self._counter_rows(e)
        window = since_day is not None or until_day is not None
        if window:
            sketches = self._window_sketches(experiment, since_day, until_day)
        else:
            by_metric: dict[str, dict[int, QuantileSketch]] = {}
            for (i, arm, name), sketch in self._t.sketches.items():
                if i == e:
                    by_metric.setdefault(name, {})[arm] = sketch
            sketches = {
                name: tuple(by_arm.get(a, EMPTY_SKETCH) for a in range(k)) for name, by_arm in sorted(by_metric.items())
            }
        counters = period_counters(k, rows, metric_rows, sketches, since_day=since_day, until_day=until_day)
        local = [self._t.local_counters.get((e, a), (0, 0)) for a in range(k)]
        if window or not any(n for n, _ in local):
            return ReportData(counters=counters, history=self._history(e))
        return ReportData(
            counters=counters,
            history=self._history(e),
            local=tuple(n for n, _ in local),
            contradicted=tuple(c for _, c in local),
        )

    async def daily_counters(
        self, experiment: Experiment, since_day: int | None = None, until_day: int | None = None
    ) -> DailyCounters:
        """Counters per UTC day and arm of the trials opened in [since_day, until_day] (None: unbounded)."""
        rows, metric_rows = self._counter_rows(experiment.id)
        kept = [r for r in rows if _within(r[1], since_day, until_day)]
        kept_metrics = [r for r in metric_rows if _within(r[1], since_day, until_day)]
        return day_counters(len(experiment.arms), kept, kept_metrics)

    def _counter_rows(self, experiment_id: int) -> tuple[list[CounterRow], list[MetricRow]]:
        rows: list[CounterRow] = [
            (v, day, arm, *c) for (i, v, day, arm), c in self._t.period_counters.items() if i == experiment_id
        ]
        metric_rows: list[MetricRow] = [
            (v, day, arm, name, *m)
            for (i, v, day, arm, name), m in self._t.period_metrics.items()
            if i == experiment_id
        ]
        return rows, metric_rows

    def _window_sketches(
        self, experiment: Experiment, since_day: int | None, until_day: int | None
    ) -> dict[str, tuple[QuantileSketch, ...]]:
        """Sketches of the latency-like values rewarded on trials opened in the window (the stored ones are not
        dated), from the rewards, negative values left out as stored."""
        values: dict[str, dict[int, list[float]]] = {}
        names = {name for (i, _, name) in self._t.arm_metrics if i == experiment.id}
        for (decision_id, _), reward in self._t.rewards.items():
            d = self._t.decisions[decision_id]
            if d.experiment_id != experiment.id or not _within(day_of(d.created_at), since_day, until_day):
                continue
            for name, x in reward.metrics.items():
                if name in names and x >= 0 and is_sketched(name):
                    values.setdefault(name, {}).setdefault(reward.arm, []).append(x)
        k = len(experiment.arms)
        return {
            name: tuple(EMPTY_SKETCH.add(by_arm[a]) if a in by_arm else EMPTY_SKETCH for a in range(k))
            for name, by_arm in sorted(values.items())
        }

    async def due_deliveries(self, now: float, limit: int) -> list[DeliveryEntry]:
        """Pending webhook deliveries due at `now`, the longest-waiting first (ties by id, as the index gives them)."""
        due = [
            d
            for d in self._t.deliveries.values()
            if d.status == "pending" and d.next_attempt_at is not None and d.next_attempt_at <= now
        ]
        due.sort(key=lambda d: (d.next_attempt_at or 0.0, d.id))
        return [self._delivery_entry(d) for d in due[:limit]]

    async def deliveries(
        self, experiment_id: int | None, status: DeliveryStatus | None, before: int | None, limit: int
    ) -> list[DeliveryEntry]:
        """Webhook deliveries newest first, of one experiment or all, optionally of one status, ids < `before`."""
        found = [
            d
            for i, d in sorted(self._t.deliveries.items(), reverse=True)
            if (experiment_id is None or d.experiment_id == experiment_id)
            and (status is None or d.status == status)
            and (before is None or i < before)
        ]
        return [self._delivery_entry(d) for d in found[:limit]]

    def _delivery_entry(self, delivery: Delivery) -> DeliveryEntry:
        experiment = self._t.experiments[delivery.experiment_id].key
        return DeliveryEntry(delivery=delivery, event=self._t.events[delivery.event_id], experiment=experiment)

    async def segment_data(
        self,
        experiment: Experiment,
        attribute: str,
        max_segments: int,
        since_day: int | None = None,
        until_day: int | None = None,
    ) -> SegmentData:
        """Counters per value of a decision attribute, aggregated from the decisions (opened in [since_day,
        until_day], when given) and their rewards."""
        e, k = experiment.id, len(experiment.arms)
        default = experiment.config.missing_reward or 0.0  # excluded trials count nothing
        decisions = [
            d
            for d in self._t.decisions.values()
            if d.experiment_id == e and _within(day_of(d.created_at), since_day, until_day)
        ]
        # Distinct JSON texts, as SQLite's json_type/json_quote give them: a missing value is null.
        texts = {d.id: msgspec.json.encode(d.attributes.get(attribute)).decode() for d in decisions}
        if len(set(texts.values())) > max_segments:
            raise InvalidFieldError(
                f"attribute {attribute!r} has more than {max_segments} values; segment by an attribute "
                "with fewer values",
                field="segment",
            )
        traffic: dict[tuple[str, int, int, int], list[float]] = {}
        metric_sums: dict[tuple[str, int, int, int, str], list[float]] = {}
        values: dict[tuple[str, str], dict[int, list[float]]] = {}
        names = {name for (i, _, name) in self._t.arm_metrics if i == e}
        for d in decisions:
            label, day = segment_label(texts[d.id]), day_of(d.created_at)
            status, rewards = self._t.status[d.id], self._t.rewards_of(d.id)
            cell = traffic.setdefault((label, d.weights_version, day, d.arm), [0, 0, 0, 0, 0, 0.0, 0.0])
            # A trial counts with its value after its last reward (its rewards combined).
            value = 0.0 if not rewards else rewards[-1].counted_value
            flags = (d.new_unit, 1, status == "rewarded", status == "expired", status == "excluded")
            for j, x in enumerate((*flags, value, value * value)):
                cell[j] += x
            for reward in rewards:
                for name, x in reward.metrics.items():
                    if name not in names:
                        continue
                    cell_key = (label, reward.weights_version, day, reward.arm, name)
                    sums = metric_sums.setdefault(cell_key, [0.0, 0.0, 0.0])
                    for j, s in enumerate((1.0, x, x * x)):
                        sums[j] += s
                    if x >= 0 and is_sketched(name):
                        values.setdefault((label, name), {}).setdefault(reward.arm, []).append(x)
        rows: dict[str, list[CounterRow]] = {}
        for (label, v, day, arm), (units, trials, rewarded, expired, excluded, total, total_sq) in traffic.items():
            # An expired trial counts with the missing value, as in the incremental counters.
            n, total, total_sq = rewarded + expired, total + expired * default, total_sq + expired * default * default
            row = (v, day, arm, units, trials, None, rewarded, expired, excluded, n, total, total_sq)
            rows.setdefault(label, []).append(row)
        metric_rows: dict[str, list[MetricRow]] = {}
        for (label, v, day, arm, name), (n, total, total_sq) in metric_sums.items():
            metric_rows.setdefault(label, []).append((v, day, arm, name, n, total, total_sq))
        sketches: dict[str, dict[str, tuple[QuantileSketch, ...]]] = {}
        for (label, name), by_arm in sorted(values.items()):
            sketches.setdefault(label, {})[name] = tuple(
                EMPTY_SKETCH.add(by_arm[a]) if a in by_arm else EMPTY_SKETCH for a in range(k)
            )
        segments = {
            label: period_counters(k, rows.get(label, []), metric_rows.get(label, []), sketches.get(label))
            for label in sorted(set(rows) | set(metric_rows))
        }
        return SegmentData(attribute=attribute, segments=segments, history=self._history(e))

    def _history(self, experiment_id: int) -> tuple[WeightsRecord, ...]:
        return tuple(r for (i, _), r in sorted(self._t.weights.items()) if i == experiment_id)
