"""SQL for rollout plans, namespace members and the audit log (called by `storage.sql`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import and_, insert, select, update
from sqlalchemy.engine import Connection

from bandit_service.core.model import LoggedEvent, Rollout
from bandit_service.core.plans import PlanState, PlanStep
from bandit_service.core.timestamps import to_datetime
from bandit_service.storage.tables import EVENTS, EXPERIMENTS, ROLLOUTS

__all__ = [
    "ROLLOUTS",
    "load_events",
    "load_rollouts",
    "namespace_filter",
    "running_rollout_keys",
    "save_rollout",
]


def _values(r: Rollout) -> dict[str, Any]:
    return {
        "steps": [[s.value, s.hold_s] for s in r.steps],
        "winner": r.winner,
        "base_weights": list(r.base_weights),
        "step": r.state.step,
        "step_started_at": r.state.step_started_at.timestamp(),
        "status": r.state.status,
        "reason": r.state.reason,
        "updated_at": r.updated_at,
    }


def _rollout(m: Mapping[Any, Any]) -> Rollout:
    return Rollout(
        experiment_id=m["experiment_id"],
        kind=m["kind"],
        steps=tuple(PlanStep(value, None if hold is None else int(hold)) for value, hold in m["steps"]),
        state=PlanState(
            step=m["step"],
            step_started_at=to_datetime(m["step_started_at"]),
            status=m["status"],
            reason=m["reason"],
        ),
        winner=m["winner"],
        base_weights=tuple(m["base_weights"]),
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        revision=m["revision"],
    )


def load_rollouts(conn: Connection, experiment_id: int) -> dict[str, Rollout]:
    """An experiment's plans by kind (the latest of each kind; finished ones included)."""
    rows = conn.execute(select(ROLLOUTS).where(ROLLOUTS.c.experiment_id == experiment_id))
    return {r.kind: _rollout(r._mapping) for r in rows}


def save_rollout(conn: Connection, r: Rollout) -> Rollout | None:
    """Insert (revision 0) or replace a plan if its stored revision is still `r.revision`; None if it moved."""
    if r.revision == 0:
        exists = conn.execute(
            select(ROLLOUTS.c.revision).where(ROLLOUTS.c.experiment_id == r.experiment_id, ROLLOUTS.c.kind == r.kind)
        ).first()
        if exists is not None:
            return None
        conn.execute(
            insert(ROLLOUTS).values(
                experiment_id=r.experiment_id, kind=r.kind, created_at=r.created_at, revision=1, **_values(r)
            )
        )
    else:
        result = conn.execute(
            update(ROLLOUTS)
            .where(
                ROLLOUTS.c.experiment_id == r.experiment_id,
                ROLLOUTS.c.kind == r.kind,
                ROLLOUTS.c.revision == r.revision,
            )
            .values(created_at=r.created_at, revision=r.revision + 1, **_values(r))
        )
        if result.rowcount != 1:
            return None
    return Rollout(**{f: getattr(r, f) for f in r.__struct_fields__ if f != "revision"}, revision=r.revision + 1)


def running_rollout_keys(conn: Connection, limit: int) -> list[str]:
    """Keys of active experiments with a running plan (the scheduler's work list)."""
    rows = conn.execute(
        select(EXPERIMENTS.c.key)
        .join(ROLLOUTS, ROLLOUTS.c.experiment_id == EXPERIMENTS.c.id)
        .where(and_(ROLLOUTS.c.status == "running", EXPERIMENTS.c.status == "active"))
        .group_by(EXPERIMENTS.c.key)
        .order_by(EXPERIMENTS.c.key)
        .limit(limit)
    )
    return [r.key for r in rows]


def namespace_filter(name: str) -> Any:
    """WHERE clause: experiments not completed whose configuration declares namespace `name`."""
    return and_(
        EXPERIMENTS.c.config[("namespace", "name")].as_string() == name,
        EXPERIMENTS.c.status != "completed",
    )


def load_events(conn: Connection, experiment_id: int, after: int, limit: int) -> list[LoggedEvent]:
    """Audit-log entries with id > `after`, oldest first."""
    rows = conn.execute(
        select(EVENTS)
        .where(EVENTS.c.experiment_id == experiment_id, EVENTS.c.id > after)
        .order_by(EVENTS.c.id)
        .limit(limit)
    )
    return [
        LoggedEvent(
            id=r.id,
            experiment_id=r.experiment_id,
            created_at=r.created_at,
            actor=r.actor,
            action=r.action,
            before=r.before,
            after=r.after,
        )
        for r in rows
    ]
