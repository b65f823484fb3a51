"""The audit log: who changed an experiment, when, and the values before and after.

Operator changes are written by the job that makes them, in the same transaction, so the log
never shows a change that did not happen nor misses one that did. Entries are read oldest
first with an id cursor (`after`): ids only grow, so a page never repeats or skips an entry
while new ones are appended.
"""

from __future__ import annotations

from typing import Any

from bandit_service.core.errors import NotFoundError
from bandit_service.core.model import Event, LoggedEvent
from bandit_service.core.timestamps import to_datetime
from bandit_service.http.schemas import EventList, EventOut
from bandit_service.ports import Storage
from bandit_service.services.reweighting import ACTOR

__all__ = ["ACTOR", "SCHEDULER", "AuditService", "event", "event_out"]

SCHEDULER = "scheduler"
"""The actor of changes the service makes by itself (ramp steps, guarded pauses, shift steps)."""


def event(
    experiment_id: int,
    action: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    now: float,
    actor: str = ACTOR,
) -> Event:
    """An audit-log entry stamped with the injected clock's time."""
    return Event(experiment_id=experiment_id, created_at=now, actor=actor, action=action, before=before, after=after)


def event_out(entry: LoggedEvent) -> EventOut:
    """An audit-log entry as the API shows it."""
    return EventOut(
        id=entry.id,
        time=to_datetime(entry.created_at),
        actor=entry.actor,
        action=entry.action,
        before=entry.before,
        after=entry.after,
    )


class AuditService:
    """GET /v1/experiments/{key}/events."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    async def events(self, key: str, after: int, limit: int) -> EventList:
        """Entries with id > `after`, oldest first, at most `limit`; `next_after` is set while more may follow."""
        experiment = await self._storage.experiment(key)
        if experiment is None:
            raise NotFoundError(f"no experiment with key {key!r}", field="key")
        found = await self._storage.events(experiment.id, after, limit)
        next_after = found[-1].id if len(found) == limit else None
        return EventList(experiment=key, events=[event_out(e) for e in found], next_after=next_after)
