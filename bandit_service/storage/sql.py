"""The SQL implementation of the repository and of write transactions (SQLite or PostgreSQL)."""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Sequence
from typing import Any, assert_never

import msgspec
from sqlalchemy import and_, bindparam, delete, func, insert, literal_column, select, text, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError, OperationalError

from bandit_service.core.errors import AlreadyExistsError, ConflictError
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
from bandit_service.core.report_data import day_of
from bandit_service.core.roles import ApiKey
from bandit_service.core.webhooks import Delivery, DeliveryEntry, DeliveryStatus
from bandit_service.ports import DueKind, Job
from bandit_service.storage import counter_steps as steps
from bandit_service.storage import webhooks as outbox
from bandit_service.storage.convert import (
    arm_rows,
    experiment_from_rows,
    experiment_values,
    weights_from_row,
    weights_values,
)
from bandit_service.storage.counters import CounterDeltas, CounterStatements
from bandit_service.storage.database import Database, is_transient
from bandit_service.storage.features import (
    change_feed,
    delete_feature,
    load_feature,
    load_features,
    save_feature,
    serves_feature,
)
from bandit_service.storage.keys import delete_key, insert_key, key_by_digest, load_keys, touch_key
from bandit_service.storage.looks import load_looks, merge_looks_sql
from bandit_service.storage.plans import (
    load_events,
    load_rollouts,
    namespace_filter,
    running_rollout_keys,
    save_rollout,
)
from bandit_service.storage.schema import upgrade_schema
from bandit_service.storage.sketches import SketchDeltas, SketchStatements
from bandit_service.storage.sqlite_speedups import choose_execution
from bandit_service.storage.statements import Execution
from bandit_service.storage.tables import (
    ARM_COUNTERS,
    ARM_METRICS,
    ARMS,
    ASSIGNMENTS,
    CHANGE_COUNTER,
    DECISIONS,
    EVENTS,
    EXPERIMENTS,
    LOGGED_DECISIONS,
    REWARDS,
    WEIGHTS,
)
from policies import ArmStats

__all__ = ["SqlRepository", "SqlTransaction"]

log = logging.getLogger(__name__)

DECISION_COLUMNS = (
    "id",
    "experiment_id",
    "unit",
    "arm",
    "propensity",
    "weights_version",
    "attributes",
    "created_at",
    "expires_at",
    "status",
    "new_unit",
)
REWARD_COLUMNS = (
    "decision_id",
    "experiment_id",
    "arm",
    "weights_version",
    "value",
    "metrics",
    "idempotency_key",
    "body_hash",
    "created_at",
    "seq",
    "trial_value",
)

# How often a write batch that lost a deadlock or a serialization check is run again, and the
# pause before each new attempt (doubled every time), before its requests are answered 503.
WRITE_ATTEMPTS = 5
RETRY_PAUSE_S = 0.005

# A rebalance's move of one unit: compare-and-set on the arm and weights version it was read with.
_MOVE_ASSIGNMENT = (
    update(ASSIGNMENTS)
    .where(
        ASSIGNMENTS.c.experiment_id == bindparam("e_id"),
        ASSIGNMENTS.c.unit == bindparam("u"),
        ASSIGNMENTS.c.arm == bindparam("old_arm"),
        ASSIGNMENTS.c.weights_version == bindparam("old_version"),
    )
    .values(
        arm=bindparam("new_arm"),
        propensity=bindparam("new_propensity"),
        weights_version=bindparam("new_version"),
        trial_id=bindparam("t_id"),
        trial_expires_at=bindparam("t_at"),
    )
)

# A unit's stored assignment, as `Assignment` holds it.
ASSIGNMENT_COLUMNS = tuple(
    ASSIGNMENTS.c[name] for name in ("unit", "arm", "propensity", "weights_version", "trial_id", "trial_expires_at")
)

# The columns of a decision's existing reward in the decision_contexts query.
_PRIOR_REWARD_COLUMNS = ("value", "metrics", "idempotency_key", "body_hash", "created_at", "seq", "trial_value")


def _load_experiments(
    conn: Connection, where: Any, order: Any = None, limit: int | None = None, offset: int = 0
) -> list[Experiment]:
    query = select(EXPERIMENTS).where(where)
    if order is not None:
        query = query.order_by(*order)
    if limit is not None:
        query = query.limit(limit).offset(offset)
    rows = conn.execute(query).all()
    if not rows:
        return []
    ids = [r.id for r in rows]
    arms: dict[int, list[Any]] = {i: [] for i in ids}
    for arm in conn.execute(
        select(ARMS).where(ARMS.c.experiment_id.in_(ids)).order_by(ARMS.c.experiment_id, ARMS.c.position)
    ):
        arms[arm.experiment_id].append(arm)
    return [experiment_from_rows(r, arms[r.id]) for r in rows]


def _storable(key: str) -> bool:
    """Whether a key could be stored: PostgreSQL refuses a NUL byte in text (an error, not "no row"),
    and no stored key has one (keys are slugs), so such a key is simply not found."""
    return "\x00" not in key


def _stored_reward(m: Any) -> StoredReward:
    return StoredReward(
        decision_id=m.decision_id,
        experiment_id=m.experiment_id,
        experiment_key=m.experiment_key,
        arm=m.arm,
        arm_name=m.arm_name,
        weights_version=m.weights_version,
        value=m.value,
        metrics=m.metrics,
        idempotency_key=m.idempotency_key,
        body_hash=m.body_hash,
        created_at=m.created_at,
        seq=m.seq,
        trial_value=m.trial_value,
    )


class Statements:
    """The statements of the hot paths, built once per database: building SQL costs more than running it."""

    def __init__(self, db: Database, execution: Execution) -> None:
        self.counters = CounterStatements(db, execution)
        self.sketches = SketchStatements(db, execution)
        self.assignments = select(*ASSIGNMENT_COLUMNS).where(
            ASSIGNMENTS.c.experiment_id == bindparam("experiment_id"),
            ASSIGNMENTS.c.unit.in_(bindparam("units", expanding=True)),
        )
        new_assignments = db.upsert(ASSIGNMENTS).on_conflict_do_nothing(index_elements=["experiment_id", "unit"])
        self.insert_assignments = execution.statement(
            new_assignments,
            (
                "experiment_id",
                "unit",
                "arm",
                "propensity",
                "weights_version",
                "created_at",
                "trial_id",
                "trial_expires_at",
            ),
        )
        self.open_trials = execution.statement(
            update(ASSIGNMENTS)
            .where(ASSIGNMENTS.c.experiment_id == bindparam("e_id"), ASSIGNMENTS.c.unit == bindparam("u"))
            .values(trial_id=bindparam("t_id"), trial_expires_at=bindparam("t_at")),
            ("e_id", "u", "t_id", "t_at"),
        )
        # Where writers are not serialised (PostgreSQL), the rows an insert created, by unit.
        self.insert_assignments_returning = new_assignments.returning(ASSIGNMENTS.c.unit)
        # Statuses under a share lock (FOR SHARE on PostgreSQL; SQLite's writer already holds the
        # database's write lock): a pause or completion cannot commit before this transaction does.
        self.locked_statuses = execution.key_query(
            select(EXPERIMENTS.c.id, EXPERIMENTS.c.status)
            .where(EXPERIMENTS.c.id.in_(bindparam("ids", expanding=True)))
            .order_by(EXPERIMENTS.c.id)
            .with_for_update(read=True),
            "ids",
        )
        self.insert_decisions = execution.statement(insert(DECISIONS), DECISION_COLUMNS)
        # The ids of decisions SDKs logged: insert or ignore (a retry finds its id and counts nothing).
        claim = db.upsert(LOGGED_DECISIONS).on_conflict_do_nothing(index_elements=["decision_id"])
        self.claim_logged = execution.statement(claim, ("decision_id", "experiment_id", "logged_at", "contradicts"))
        self.claim_logged_returning = claim.returning(LOGGED_DECISIONS.c.decision_id)
        self.logged_flags = select(LOGGED_DECISIONS.c.decision_id, LOGGED_DECISIONS.c.contradicts).where(
            LOGGED_DECISIONS.c.decision_id.in_(bindparam("ids", expanding=True))
        )
        self.flag_contradicted = (
            update(LOGGED_DECISIONS)
            .where(LOGGED_DECISIONS.c.decision_id.in_(bindparam("ids", expanding=True)))
            .values(contradicts=True)
        )
        # A reward's decision, its experiment's key and reward kind, its arm's name and the
        # reward it already has (if any), in one query by decision id.
        self.decision_contexts = execution.key_query(
            select(
                DECISIONS.c.id,
                DECISIONS.c.experiment_id,
                DECISIONS.c.arm,
                DECISIONS.c.weights_version,
                DECISIONS.c.status,
                DECISIONS.c.expires_at,
                EXPERIMENTS.c.key,
                EXPERIMENTS.c.status.label("experiment_status"),
                # Only the reward kind, extracted by the database: decoding the whole config JSON
                # per reward was a measurable share of the writer thread's time under load.
                EXPERIMENTS.c.config["reward"].as_string().label("reward_kind"),
                EXPERIMENTS.c.config["trial"].as_string().label("trial"),
                EXPERIMENTS.c.config["aggregate"].as_string().label("aggregate"),
                ARMS.c.name,
                *(REWARDS.c[name] for name in _PRIOR_REWARD_COLUMNS),
                DECISIONS.c.created_at.label("opened_at"),  # the day the trial's counters are dated by
            )
            .join(EXPERIMENTS, EXPERIMENTS.c.id == DECISIONS.c.experiment_id)
            .join(ARMS, and_(ARMS.c.experiment_id == DECISIONS.c.experiment_id, ARMS.c.position == DECISIONS.c.arm))
            .outerjoin(REWARDS, REWARDS.c.decision_id == DECISIONS.c.id)
            .where(DECISIONS.c.id.in_(bindparam("ids", expanding=True)))
            .with_for_update(read=True, of=EXPERIMENTS),  # the status holds until COMMIT (see locked_statuses)
            "ids",
        )
        self.rewards_by_key = (
            select(REWARDS, EXPERIMENTS.c.key.label("experiment_key"), ARMS.c.name.label("arm_name"))
            .join(EXPERIMENTS, EXPERIMENTS.c.id == REWARDS.c.experiment_id)
            .join(ARMS, and_(ARMS.c.experiment_id == REWARDS.c.experiment_id, ARMS.c.position == REWARDS.c.arm))
            .where(REWARDS.c.idempotency_key.in_(bindparam("keys", expanding=True)))
        )
        # When trials opened (their counters' day), for those not read in this transaction already.
        self.opened_at = execution.key_query(
            select(DECISIONS.c.id, DECISIONS.c.created_at).where(DECISIONS.c.id.in_(bindparam("ids", expanding=True))),
            "ids",
        )
        # Constants as literals: a statement binds exactly its named columns.
        self.excluded = (
            update(DECISIONS).where(DECISIONS.c.id.in_(bindparam("ids", expanding=True))).values(status="excluded")
        )
        self.mark_rewarded = execution.statement(
            update(DECISIONS)
            .where(DECISIONS.c.id == bindparam("decision_id"), DECISIONS.c.status == literal_column("'pending'"))
            .values(status=literal_column("'rewarded'")),
            ("decision_id",),
        )
        self.insert_rewards = execution.statement(insert(REWARDS), REWARD_COLUMNS)
        self.expire = (
            update(DECISIONS)
            .where(DECISIONS.c.id.in_(bindparam("ids", expanding=True)), DECISIONS.c.status == "pending")
            .values(status="expired")
            .returning(
                DECISIONS.c.id,
                DECISIONS.c.experiment_id,
                DECISIONS.c.arm,
                DECISIONS.c.weights_version,
                DECISIONS.c.created_at,
            )
        )


class SqlTransaction:
    """One job group's view of the write transaction; its counter increments are collected, not written."""

    def __init__(self, conn: Connection, db: Database, statements: Statements, webhook_url: str | None = None) -> None:
        self.conn = conn
        self.db = db
        self.statements = statements
        self.webhook_url = webhook_url  # the global webhook (see `Storage.webhook_url`)
        self.counts = CounterDeltas()
        self.sketches = SketchDeltas()
        # Decision id -> the UTC day it opened its trial, for the decisions this job group wrote or read:
        # exposures and rewards count on that day, mostly without another read.
        self.opened_on: dict[str, int] = {}

    def _opening_days(self, ids: Collection[str]) -> dict[str, int]:
        """The UTC day each of these trials opened (from `opened_on`, else read); a missing decision is a bug."""
        missing = sorted({i for i in ids if i not in self.opened_on})
        for decision_id, created_at in self.statements.opened_at.rows(self.conn, missing):
            self.opened_on[decision_id] = day_of(created_at)
        unknown = [i for i in missing if i not in self.opened_on]
        if unknown:
            raise RuntimeError(f"no decision {unknown[0]!r}: its trial's counters have no day")
        return self.opened_on

    def experiment(self, key: str) -> Experiment | None:
        """The experiment with this key."""
        if not _storable(key):
            return None
        found = _load_experiments(self.conn, EXPERIMENTS.c.key == key)
        return found[0] if found else None

    def experiments_by_id(self, ids: Collection[int]) -> dict[int, Experiment]:
        """Experiments by id."""
        return {e.id: e for e in _load_experiments(self.conn, EXPERIMENTS.c.id.in_(list(ids)))}

    def _next_change(self) -> int:
        """The next change number: the counter row stays locked until COMMIT, so numbers follow commit order.

        Taken before the experiment row is written, so writers of several experiments queue here
        first instead of locking experiment rows in different orders.
        """
        seq = self.conn.execute(
            update(CHANGE_COUNTER)
            .where(CHANGE_COUNTER.c.id == 1)
            .values(seq=CHANGE_COUNTER.c.seq + 1)
            .returning(CHANGE_COUNTER.c.seq)
        ).scalar_one_or_none()
        if seq is None:
            raise RuntimeError("the change_counter row is missing: run `bandit-service migrate`")
        return int(seq)

    def insert_experiment(self, new: NewExperiment) -> Experiment:
        """Store a new experiment and its arms."""
        if self.conn.execute(select(EXPERIMENTS.c.id).where(EXPERIMENTS.c.key == new.key)).first() is not None:
            raise AlreadyExistsError(f"an experiment with key {new.key!r} already exists", field="key")
        values = experiment_values(new)
        statement = (
            insert(EXPERIMENTS).values(**values, revision=1, change_seq=self._next_change()).returning(EXPERIMENTS.c.id)
        )
        experiment_id = int(self.conn.execute(statement).scalar_one())
        self.conn.execute(insert(ARMS), arm_rows(experiment_id, new.arms))
        return Experiment(**{f: getattr(new, f) for f in new.__struct_fields__}, id=experiment_id, revision=1)

    def update_experiment(self, experiment: Experiment, arms: Sequence[Arm] | None = None) -> Experiment | None:
        """Compare-and-set on `revision`: write all mutable columns (and the arms, if given), or None if it moved on.

        Arms are only replaced while an experiment is a draft, so nothing refers to them yet.
        """
        values = experiment_values(experiment)
        del values["key"], values["salt"], values["created_at"]
        result = self.conn.execute(
            update(EXPERIMENTS)
            .where(EXPERIMENTS.c.id == experiment.id, EXPERIMENTS.c.revision == experiment.revision)
            .values(**values, revision=experiment.revision + 1, change_seq=self._next_change())
        )
        if result.rowcount != 1:
            return None
        if arms is not None:
            self.conn.execute(delete(ARMS).where(ARMS.c.experiment_id == experiment.id))
            self.conn.execute(insert(ARMS), arm_rows(experiment.id, arms))
        return Experiment(
            **{f: getattr(experiment, f) for f in experiment.__struct_fields__ if f != "revision"},
            revision=experiment.revision + 1,
        )

    def append_weights(self, record: WeightsRecord) -> None:
        """Add a row to the weights history."""
        self.conn.execute(insert(WEIGHTS).values(**weights_values(record)))

    def log_event(self, event: Event) -> None:
        """Add an audit-log entry and queue its webhook deliveries."""
        event_id = self.conn.execute(
            insert(EVENTS)
            .values(
                experiment_id=event.experiment_id,
                created_at=event.created_at,
                actor=event.actor,
                action=event.action,
                before=event.before,
                after=event.after,
            )
            .returning(EVENTS.c.id)
        ).scalar_one()
        outbox.queue_deliveries(self.conn, int(event_id), event, self.webhook_url)

    def update_delivery(self, delivery: Delivery, attempts: int) -> bool:
        """Compare-and-set a webhook delivery on its attempt count."""
        return outbox.update_delivery(self.conn, delivery, attempts)

    def assignments(self, experiment_id: int, units: Collection[str]) -> dict[str, Assignment]:
        """Sticky assignments of these units."""
        if not units:
            return {}
        rows = self.conn.execute(self.statements.assignments, {"experiment_id": experiment_id, "units": list(units)})
        return {
            r.unit: Assignment(
                arm=r.arm,
                propensity=r.propensity,
                weights_version=r.weights_version,
                trial_id=r.trial_id,
                trial_expires_at=r.trial_expires_at,
            )
            for r in rows
        }

    def insert_assignments(self, experiment_id: int, rows: Sequence[tuple[str, Assignment]], now: float) -> set[str]:
        """Store first assignments; the units whose row this insert created (a concurrent replica's may exist).

        Sorted by unit, so two replicas inserting the same units wait for each other in one order.
        """
        if not rows:
            return set()
        params = [
            {
                "experiment_id": experiment_id,
                "unit": unit,
                "arm": a.arm,
                "propensity": a.propensity,
                "weights_version": a.weights_version,
                "created_at": now,
                "trial_id": a.trial_id,
                "trial_expires_at": a.trial_expires_at,
            }
            for unit, a in sorted(rows, key=lambda row: row[0])
        ]
        if not self.db.serialised_writes:
            return set(self.conn.execute(self.statements.insert_assignments_returning, params).scalars())
        # One writer at a time (SQLite): the job read these units as unassigned in this
        # transaction, so nobody can have stored them since; the count confirms it.
        inserted = self.statements.insert_assignments.execute(self.conn, params)
        if inserted != len(rows):
            raise ConflictError("unit: an assignment changed concurrently; retry", field="unit")
        return {unit for unit, _ in rows}

    def rebalance_page(
        self, experiment_id: int, version: int, after: str | None, limit: int
    ) -> list[tuple[str, Assignment]] | None:
        """Assignments stored before weights `version`, by unit after `after`; None once the version moved on.

        The experiment's row is locked FOR UPDATE: decisions hold it shared while they read and store
        assignments (`active_experiments`), so this page waits for them and they wait for it, as
        SQLite's single writer makes them do anyway.
        """
        current = self.conn.execute(
            select(EXPERIMENTS.c.weights_version).where(EXPERIMENTS.c.id == experiment_id).with_for_update()
        ).scalar_one_or_none()
        if current != version:
            return None
        query = select(*ASSIGNMENT_COLUMNS).where(
            ASSIGNMENTS.c.experiment_id == experiment_id, ASSIGNMENTS.c.weights_version < version
        )
        if after is not None:
            query = query.where(ASSIGNMENTS.c.unit > after)
        rows = self.conn.execute(query.order_by(ASSIGNMENTS.c.unit).limit(limit))
        return [
            (unit, Assignment(arm=arm, propensity=p, weights_version=v, trial_id=t_id, trial_expires_at=t_at))
            for unit, arm, p, v, t_id, t_at in rows
        ]

    def move_assignments(self, experiment_id: int, moves: Sequence[tuple[str, Assignment, Assignment]]) -> int:
        """Compare-and-set each unit's assignment on its arm and weights version (sorted by unit); how many moved."""
        params = [
            {
                "e_id": experiment_id,
                "u": unit,
                "old_arm": old.arm,
                "old_version": old.weights_version,
                "new_arm": new.arm,
                "new_propensity": new.propensity,
                "new_version": new.weights_version,
                "t_id": new.trial_id,
                "t_at": new.trial_expires_at,
            }
            for unit, old, new in sorted(moves, key=lambda move: move[0])
        ]
        if not params:
            return 0
        if self.db.write.dialect.supports_sane_multi_rowcount:
            return int(self.conn.execute(_MOVE_ASSIGNMENT, params).rowcount)
        return sum(int(self.conn.execute(_MOVE_ASSIGNMENT, [p]).rowcount) for p in params)

    def set_moved(self, experiment_id: int, version: int, moved: float) -> None:
        """Set the moved share of a weights-history row."""
        row = and_(WEIGHTS.c.experiment_id == experiment_id, WEIGHTS.c.version == version)
        self.conn.execute(update(WEIGHTS).where(row).values(moved=moved))

    def open_trials(self, experiment_id: int, trials: Sequence[OpenTrial]) -> None:
        """Record units' newly opened trials on their assignments (sorted: one lock order across replicas)."""
        if trials:
            self.statements.open_trials.execute(
                self.conn,
                [
                    {"e_id": experiment_id, "u": t.unit, "t_id": t.trial_id, "t_at": t.expires_at}
                    for t in sorted(trials, key=lambda t: t.unit)
                ],
            )

    def count_exposures(self, rows: Sequence[Exposure]) -> None:
        """Count decisions served inside open unit trials."""
        days = self._opening_days({e.trial_id for e in rows})
        for e in rows:
            self.counts.add(e.experiment_id, e.weights_version, days[e.trial_id], e.arm, steps.exposure())

    def active_experiments(self, ids: Collection[int]) -> set[int]:
        """Those of these experiments that are active; their status holds until this transaction commits."""
        if not ids:
            return set()
        rows = self.statements.locked_statuses.rows(self.conn, sorted(ids))
        return {experiment_id for experiment_id, status in rows if status == "active"}

    def insert_decisions(self, rows: Sequence[Decision]) -> None:
        """Log decisions as pending and count them."""
        if not rows:
            return
        self.statements.insert_decisions.execute(
            self.conn,
            [
                {
                    "id": d.id,
                    "experiment_id": d.experiment_id,
                    "unit": d.unit,
                    "arm": d.arm,
                    "propensity": d.propensity,
                    "weights_version": d.weights_version,
                    "attributes": d.attributes,
                    "created_at": d.created_at,
                    "expires_at": d.expires_at,
                    "status": "pending",
                    "new_unit": d.new_unit,
                }
                for d in rows
            ],
        )
        for d in rows:
            day = self.opened_on[d.id] = day_of(d.created_at)
            self.counts.add(d.experiment_id, d.weights_version, day, d.arm, steps.opened(d.new_unit))

    def claim_local_decisions(self, rows: Sequence[LocalDecision]) -> dict[str, bool]:
        """Record SDK-logged decision ids (insert or ignore, sorted: one lock order across replicas); those
        recorded before, with their `contradicts`."""
        if not rows:
            return {}
        ordered = sorted(rows, key=lambda r: r.decision_id)
        ids = [r.decision_id for r in ordered]
        params: list[dict[str, Any]] = [
            # `contradicts` is set by `count_local_decisions`, once the job knows it.
            {
                "decision_id": r.decision_id,
                "experiment_id": r.experiment_id,
                "logged_at": r.logged_at,
                "contradicts": False,
            }
            for r in ordered
        ]
        if self.db.serialised_writes:
            # One writer at a time (SQLite): what this read finds cannot change before the insert.
            before = self._logged_flags(ids)
            self.statements.claim_logged.execute(self.conn, [p for p in params if p["decision_id"] not in before])
            return before
        # A concurrent replica's insert of the same id makes this one wait for its commit, then skip it.
        created = set(self.conn.execute(self.statements.claim_logged_returning, params).scalars())
        return self._logged_flags([i for i in ids if i not in created])

    def _logged_flags(self, ids: Sequence[str]) -> dict[str, bool]:
        if not ids:
            return {}
        rows = self.conn.execute(self.statements.logged_flags, {"ids": list(ids)})
        return {decision_id: bool(contradicts) for decision_id, contradicts in rows}

    def count_local_decisions(self, rows: Sequence[LocalDecision]) -> None:
        """Count SDK-logged decisions per arm and record which contradicted the unit's sticky arm."""
        for r in rows:
            self.counts.local_decision(r.experiment_id, r.arm, r.contradicts)
        flagged = sorted(r.decision_id for r in rows if r.contradicts)
        if flagged:
            self.conn.execute(self.statements.flag_contradicted, {"ids": flagged})

    def decision_contexts(self, ids: Collection[str]) -> dict[str, DecisionContext]:
        """Decisions by id, with their experiment's key, reward kind and trial rules, their arm's name and rewards."""
        out: dict[str, DecisionContext] = {}
        rewards: dict[str, list[StoredReward]] = {}
        for row in self.statements.decision_contexts.rows(self.conn, list(ids)):
            decision_id, experiment_id, arm, weights_version, status, expires_at, key, experiment_status = row[:8]
            reward_kind, trial, aggregate, arm_name = row[8:12]
            value, metrics, idempotency_key, body_hash, created_at, seq, trial_value = row[12:19]
            self.opened_on[decision_id] = day_of(row[19])
            if body_hash is not None:  # the outer join found a reward (one row per reward)
                rewards.setdefault(decision_id, []).append(
                    StoredReward(
                        decision_id=decision_id,
                        seq=seq,
                        experiment_id=experiment_id,
                        experiment_key=key,
                        arm=arm,
                        arm_name=arm_name,
                        weights_version=weights_version,
                        value=value,
                        metrics=metrics,
                        idempotency_key=idempotency_key,
                        body_hash=body_hash,
                        created_at=created_at,
                        trial_value=trial_value,
                    )
                )
            if decision_id in out:
                continue
            out[decision_id] = DecisionContext(
                decision_id=decision_id,
                experiment_id=experiment_id,
                experiment_key=key,
                reward_kind=reward_kind,
                arm=arm,
                arm_name=arm_name,
                weights_version=weights_version,
                status=status,
                expires_at=expires_at,
                experiment_status=experiment_status,
                # Experiments stored before trials existed have no `trial`: each decision was its own.
                trial=trial or "decision",
                aggregate=aggregate or "last",
            )
        for decision_id, found in rewards.items():
            out[decision_id] = msgspec.structs.replace(
                out[decision_id], rewards=tuple(sorted(found, key=lambda r: r.seq))
            )
        return out

    def rewards_by_key(self, keys: Collection[str]) -> dict[str, StoredReward]:
        """Rewards by idempotency key."""
        if not keys:
            return {}
        rows = self.conn.execute(self.statements.rewards_by_key, {"keys": list(keys)})
        return {r.idempotency_key: _stored_reward(r) for r in rows}

    def insert_rewards(self, rows: Sequence[RewardWrite]) -> None:
        """Store rewards, mark the trials of first rewards rewarded (only if still pending), count them."""
        if not rows:
            return
        firsts = sorted({w.reward.decision_id for w in rows if w.before is None})
        # Sorted, so replicas rewarding the same decisions lock their rows in one order.
        params = [{"decision_id": decision_id} for decision_id in firsts]
        mark = self.statements.mark_rewarded
        if not params:
            changed = 0
        elif self.db.write.dialect.supports_sane_multi_rowcount:  # SQLite does
            changed = mark.execute(self.conn, params)
        else:
            changed = sum(mark.execute(self.conn, [p]) for p in params)
        if changed != len(firsts):
            # Another replica expired or rewarded one of these decisions since we read it.
            raise ConflictError("decision_id: the decision changed concurrently; retry", field="decision_id")
        self.statements.insert_rewards.execute(
            self.conn,
            [
                {
                    "decision_id": r.decision_id,
                    "experiment_id": r.experiment_id,
                    "arm": r.arm,
                    "weights_version": r.weights_version,
                    "value": r.value,
                    "metrics": r.metrics,
                    "idempotency_key": r.idempotency_key,
                    "body_hash": r.body_hash,
                    "created_at": r.created_at,
                    "seq": r.seq,
                    "trial_value": r.trial_value,
                }
                for r in (w.reward for w in rows)
            ],
        )
        days = self._opening_days({w.reward.decision_id for w in rows})
        for w in rows:
            r = w.reward
            day = days[r.decision_id]
            self.counts.add(r.experiment_id, r.weights_version, day, r.arm, steps.reward(w.before, w.after))
            self.counts.metrics(r.experiment_id, r.weights_version, day, r.arm, r.metrics)
            self.sketches.reward(r.experiment_id, r.arm, r.metrics)

    def expire_decisions(self, ids: Collection[str]) -> list[ExpiredDecision]:
        """Mark still-pending trials expired and count them as their experiment's `missing` says."""
        if not ids:
            return []
        rows = self.conn.execute(self.statements.expire, {"ids": sorted(ids)}).all()
        for row in rows:
            self.opened_on[row.id] = day_of(row.created_at)
        expired = [
            ExpiredDecision(
                decision_id=row.id, experiment_id=row.experiment_id, arm=row.arm, weights_version=row.weights_version
            )
            for row in rows
        ]
        experiments = self.experiments_by_id({r.experiment_id for r in expired})
        excluded = []
        for r in expired:
            value = experiments[r.experiment_id].config.missing_reward
            if value is None:
                excluded.append(r.decision_id)
            day = self.opened_on[r.decision_id]
            self.counts.add(r.experiment_id, r.weights_version, day, r.arm, steps.unrewarded(value))
        if excluded:
            self.conn.execute(self.statements.excluded, {"ids": sorted(excluded)})
        return expired

    def rollouts(self, experiment_id: int) -> dict[str, Rollout]:
        """The experiment's plans by kind."""
        return load_rollouts(self.conn, experiment_id)

    def save_rollout(self, rollout: Rollout) -> Rollout | None:
        """Compare-and-set a plan on its revision."""
        return save_rollout(self.conn, rollout)

    def api_keys(self) -> list[ApiKey]:
        """Every API key, by name."""
        return load_keys(self.conn)

    def insert_api_key(self, key: ApiKey) -> bool:
        """Store a new key; False if its name is taken."""
        return insert_key(self.conn, key)

    def delete_api_key(self, name: str) -> ApiKey | None:
        """Remove a key; the removed key or None."""
        return delete_key(self.conn, name)

    def touch_api_key(self, name: str, now: float) -> None:
        """Record the key's last use."""
        touch_key(self.conn, name, now)

    def namespace_members(self, name: str) -> list[Experiment]:
        """Experiments not completed in namespace `name`."""
        return _load_experiments(self.conn, namespace_filter(name))

    def probe(self) -> None:
        """A real write that leaves no trace (readiness): bump the change counter and put it back.

        The experiments are read under a share lock first, as every decision's transaction reads
        them, so a lock that would stop decisions (a `LOCK TABLE`) stops the probe too. Writing the
        row twice makes SQLite write its page (it skips a row written with the bytes it has).
        """
        self.conn.execute(select(EXPERIMENTS.c.id).limit(1).with_for_update(read=True)).all()
        counter = update(CHANGE_COUNTER).where(CHANGE_COUNTER.c.id == 1)
        self.conn.execute(counter.values(seq=CHANGE_COUNTER.c.seq + 1))
        self.conn.execute(counter.values(seq=CHANGE_COUNTER.c.seq - 1))

    def feature(self, key: str) -> Feature | None:
        """The feature with this key, under a share lock (see `storage.features` for the lock order)."""
        return load_feature(self.conn, key, share_lock=True) if _storable(key) else None

    def save_feature(self, feature: Feature) -> tuple[Feature, bool]:
        """Create or replace a feature with the next change number."""
        return save_feature(self.conn, feature, self._next_change)

    def delete_feature(self, key: str, now: float) -> Feature | None:
        """Delete a feature (a tombstone with the next change number)."""
        return delete_feature(self.conn, key, now, self._next_change) if _storable(key) else None

    def feature_experiments(self, key: str) -> list[Experiment]:
        """Experiments that serve feature `key`, by id."""
        return _load_experiments(self.conn, serves_feature(key), (EXPERIMENTS.c.id,)) if _storable(key) else []

    def merge_looks(self, experiment_id: int, looks: Sequence[SequentialLook]) -> tuple[SequentialLook, ...]:
        """Merge looks into their stored rows in SQL (see `storage.looks`); the experiment's merged rows."""
        merge_looks_sql(self.conn, self.db, experiment_id, looks)
        return load_looks(self.conn, experiment_id)


class SqlRepository:
    """Reads on the read engine; batches of write jobs on the write engine, one transaction each.

    `sqlite_speedups=False` runs a SQLite database the plain way, as every other dialect runs.
    """

    def __init__(self, db: Database, *, sqlite_speedups: bool = True) -> None:
        self.db = db
        self.execution = choose_execution(db, speedups=sqlite_speedups)
        self.statements = Statements(db, self.execution)
        self.webhook_url: str | None = None  # the global webhook (see `Storage.webhook_url`)

    def create_schema(self) -> None:
        """Migrate the schema to the newest revision, holding the schema lock (see `schema`)."""
        upgrade_schema(self.db)

    def close(self) -> None:
        """Release connections."""
        self.execution.writes.close()
        self.db.dispose()

    def ping(self) -> None:
        """Raise if the database cannot be reached."""
        with self.db.read.connect() as conn:
            conn.execute(text("SELECT 1"))

    def changes(self, since: int | None) -> ExperimentChanges:
        """Experiments and features changed after change number `since` (None: only the latest number),
        by the change indexes, in one snapshot (see `storage.features.change_feed`)."""
        with self.db.read.connect() as conn:
            if since is None:
                latest = conn.execute(select(CHANGE_COUNTER.c.seq)).scalar_one_or_none()
                return ExperimentChanges(seq=int(latest or 0), revisions={})
            return change_feed(conn, since)

    def experiment(self, key: str) -> Experiment | None:
        """The experiment with this key."""
        if not _storable(key):
            return None
        with self.db.read.connect() as conn:
            found = _load_experiments(conn, EXPERIMENTS.c.key == key)
        return found[0] if found else None

    def experiments(self, status: ExperimentStatus | None, limit: int, offset: int) -> list[Experiment]:
        """Experiments, newest first."""
        where = EXPERIMENTS.c.status == status if status is not None else EXPERIMENTS.c.id.is_not(None)
        with self.db.read.connect() as conn:
            return _load_experiments(
                conn, where, (EXPERIMENTS.c.created_at.desc(), EXPERIMENTS.c.id.desc()), limit, offset
            )

    def arm_counts(self, experiment: Experiment) -> list[ArmCounts]:
        """Per-arm counters in arm order (zeros for arms without traffic)."""
        with self.db.read.connect() as conn:
            counters = {
                r.arm: r
                for r in conn.execute(select(ARM_COUNTERS).where(ARM_COUNTERS.c.experiment_id == experiment.id))
            }
            metrics: dict[int, dict[str, ArmStats]] = {}
            for r in conn.execute(select(ARM_METRICS).where(ARM_METRICS.c.experiment_id == experiment.id)):
                metrics.setdefault(r.arm, {})[r.metric] = ArmStats(r.n, r.total, r.total_sq)
        out = []
        for i in range(len(experiment.arms)):
            c = counters.get(i)
            if c is None:
                out.append(ArmCounts(metrics=metrics.get(i, {})))
                continue
            out.append(
                ArmCounts(
                    units=c.units,
                    trials=c.trials,
                    exposures=c.exposures,
                    rewarded=c.rewarded,
                    expired=c.expired,
                    excluded=c.excluded,
                    stats=ArmStats(c.n, c.total, max(c.total_sq, 0.0)),
                    metrics=metrics.get(i, {}),
                    local=c.local,
                    contradicted=c.contradicted,
                )
            )
        return out

    def weights_history(self, experiment_id: int, limit: int) -> list[WeightsRecord]:
        """The most recent `limit` rows, oldest first."""
        with self.db.read.connect() as conn:
            rows = conn.execute(
                select(WEIGHTS)
                .where(WEIGHTS.c.experiment_id == experiment_id)
                .order_by(WEIGHTS.c.version.desc())
                .limit(limit)
            ).all()
        return [weights_from_row(r._mapping) for r in reversed(rows)]

    def due(self, kind: DueKind, now: float, limit: int) -> list[str]:
        """The scheduler's work list of one kind (see `ports.Storage.due`)."""
        match kind:
            case "reweight":
                return self._due_for_reweight(now, limit)
            case "expired":
                return self._expired_pending(now, limit)
            case "rollouts":
                return self._running_rollouts(limit)
            case _:
                assert_never(kind)

    def _due_for_reweight(self, now: float, limit: int) -> list[str]:
        """Keys of active experiments whose next reweight time has come (uses the (status, time) index)."""
        with self.db.read.connect() as conn:
            rows = conn.execute(
                select(EXPERIMENTS.c.key)
                .where(EXPERIMENTS.c.status == "active", EXPERIMENTS.c.next_reweight_at <= now)
                .order_by(EXPERIMENTS.c.next_reweight_at)
                .limit(limit)
            )
            return [r.key for r in rows]

    def _expired_pending(self, now: float, limit: int) -> list[str]:
        """Ids of pending decisions whose window has closed (uses the (status, expires_at) index)."""
        with self.db.read.connect() as conn:
            rows = conn.execute(
                select(DECISIONS.c.id)
                .where(DECISIONS.c.status == "pending", DECISIONS.c.expires_at <= now)
                .order_by(DECISIONS.c.expires_at)
                .limit(limit)
            )
            return [r.id for r in rows]

    def assignment_counts(self, experiment_id: int, before_version: int) -> dict[int, int]:
        """Sticky assignments per arm stored before weights `before_version` (one scan of the experiment's keys)."""
        with self.db.read.connect() as conn:
            rows = conn.execute(
                select(ASSIGNMENTS.c.arm, func.count())
                .where(ASSIGNMENTS.c.experiment_id == experiment_id, ASSIGNMENTS.c.weights_version < before_version)
                .group_by(ASSIGNMENTS.c.arm)
            ).all()
        return {int(arm): int(n) for arm, n in rows}

    def rollouts(self, experiment_id: int) -> dict[str, Rollout]:
        """The experiment's plans by kind."""
        with self.db.read.connect() as conn:
            return load_rollouts(conn, experiment_id)

    def _running_rollouts(self, limit: int) -> list[str]:
        """Keys of active experiments with a running plan."""
        with self.db.read.connect() as conn:
            return running_rollout_keys(conn, limit)

    def events(self, experiment_id: int, after: int, limit: int) -> list[LoggedEvent]:
        """Audit-log entries after a cursor, oldest first."""
        with self.db.read.connect() as conn:
            return load_events(conn, experiment_id, after, limit)

    def api_key(self, digest: str) -> ApiKey | None:
        """The key with this digest."""
        with self.db.read.connect() as conn:
            return key_by_digest(conn, digest)

    def api_keys(self) -> list[ApiKey]:
        """Every API key, by name."""
        with self.db.read.connect() as conn:
            return load_keys(conn)

    def feature(self, key: str) -> Feature | None:
        """The feature with this key (None: none, or deleted)."""
        if not _storable(key):
            return None
        with self.db.read.connect() as conn:
            return load_feature(conn, key)

    def features(self) -> list[Feature]:
        """Every feature, by key."""
        with self.db.read.connect() as conn:
            return load_features(conn)

    def feature_experiments(self, key: str) -> list[Experiment]:
        """Experiments that serve feature `key`, by id."""
        if not _storable(key):
            return []
        with self.db.read.connect() as conn:
            return _load_experiments(conn, serves_feature(key), (EXPERIMENTS.c.id,))

    def due_deliveries(self, now: float, limit: int) -> list[DeliveryEntry]:
        """Pending webhook deliveries due at `now`, with their events."""
        with self.db.read.connect() as conn:
            return outbox.due_deliveries(conn, now, limit)

    def deliveries(
        self, experiment_id: int | None, status: DeliveryStatus | None, before: int | None, limit: int
    ) -> list[DeliveryEntry]:
        """Webhook deliveries newest first."""
        with self.db.read.connect() as conn:
            return outbox.load_deliveries(conn, experiment_id, status, before, limit)

    def sequential_looks(self, experiment_id: int) -> tuple[SequentialLook, ...]:
        """The experiment's stored always-valid looks, by (metric, arm)."""
        with self.db.read.connect() as conn:
            return load_looks(conn, experiment_id)

    def run_batch(self, groups: Sequence[tuple[Job, Sequence[Any]]]) -> list[list[Any]]:
        """One transaction; each job group in a savepoint, retried item by item if the group fails.

        A transaction that loses a deadlock or a serialization check (PostgreSQL) is run again
        whole, a few times, before its requests are answered 503: the jobs only read and write
        through their transaction, so a new attempt computes everything afresh.
        """
        for attempt in range(1, WRITE_ATTEMPTS + 1):
            try:
                return self.execution.writes.run_batch(
                    groups, lambda: _BatchRun(self.db, self.statements, self.webhook_url)
                )
            except OperationalError as exc:
                if attempt == WRITE_ATTEMPTS or not is_transient(exc):
                    raise
                log.info("write batch attempt %d lost a lock conflict (%s); running it again", attempt, exc.orig)
                time.sleep(RETRY_PAUSE_S * 2 ** (attempt - 1))
        raise AssertionError("unreachable")  # the last attempt returns or raises


class _BatchRun:
    """One attempt at a batch: job groups in savepoints, their counter increments written once at the end."""

    def __init__(self, db: Database, statements: Statements, webhook_url: str | None = None) -> None:
        self.db = db
        self.statements = statements
        self.webhook_url = webhook_url
        self.counts = CounterDeltas()
        self.sketches = SketchDeltas()

    def group(self, conn: Connection, job: Job, items: Sequence[Any], *, savepoint: bool) -> list[Any]:
        """Per item, its result or the exception that refused it; without a savepoint, a failure raises."""
        if not savepoint:
            return self._run_job(conn, job, items)
        try:
            with conn.begin_nested():
                return self._run_job(conn, job, items)
        except OperationalError:
            raise  # the database itself is unavailable, locked or deadlocked: the whole batch fails
        except IntegrityError as exc:
            if len(items) == 1:  # a concurrent replica stored the same unique key first
                log.info("write refused by a constraint: %s", exc.orig)
                return [ConflictError("a concurrent write stored the same key; retry", field="body")]
            return self._one_by_one(conn, job, items, exc)
        except Exception as exc:  # forwarded to the request(s) that sent these items, never swallowed
            if len(items) == 1:
                return [exc]
            return self._one_by_one(conn, job, items, exc)

    def _one_by_one(self, conn: Connection, job: Job, items: Sequence[Any], exc: Exception) -> list[Any]:
        log.info("write group of %d failed (%s); retrying item by item", len(items), type(exc).__name__)
        return [self.group(conn, job, [item], savepoint=True)[0] for item in items]

    def _run_job(self, conn: Connection, job: Job, items: Sequence[Any]) -> list[Any]:
        tx = SqlTransaction(conn, self.db, self.statements, self.webhook_url)
        results = job(tx, items)
        # Kept only once the job (and its savepoint) succeeded; written by `finish`.
        self.counts.merge(tx.counts)
        self.sketches.merge(tx.sketches)
        return results

    def finish(self, conn: Connection) -> None:
        """Write the batch's counter increments and sketch values, sorted by key (see `counters`)."""
        self.counts.flush(conn, self.statements.counters)
        self.sketches.flush(conn, self.statements.sketches)
