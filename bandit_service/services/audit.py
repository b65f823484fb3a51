"""Reading the audit log: who changed an experiment, when, and the values before and after.

Entries are written by the jobs that make the changes (`core.events`). They are read oldest
first with an id cursor (`after`): ids only grow, so a page never repeats or skips an entry
while new ones are appended.
"""

from __future__ import annotations

from bandit_service.core.model import EventPage
from bandit_service.ports import Storage
from bandit_service.services.lookup import load_experiment

__all__ = ["AuditService"]


class AuditService:
    """GET /v1/experiments/{key}/events."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    async def events(self, key: str, after: int, limit: int) -> EventPage:
        """Entries with id > `after`, oldest first, at most `limit`; `next_after` is set while more may follow."""
        experiment = await load_experiment(self._storage, key)
        found = await self._storage.events(experiment.id, after, limit)
        next_after = found[-1].id if len(found) == limit else None
        return EventPage(experiment=key, events=tuple(found), next_after=next_after)
