"""The experiment cache of one process: the decision path reads experiments and weights from memory.

Every change to an experiment, by any process, gets a change number in commit order (see
`Storage.changes`). Before answering from memory, the cache makes sure it has asked the database
for new change numbers within the last `bound_s` seconds: if not, the request waits for that one
cheap query (shared by all requests arriving meanwhile), and entries that changed are dropped and
re-read. So an answer never reflects a state older than `bound_s` at the moment it is given, after
idle as under load: the check happens at request time, not on a timer. Under load the poll costs
one indexed query per `bound_s` per process; a change made by this process replaces its entry at once.
The feature cache (`services.features`) shares the same polls through `subscribe`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from bandit_service.core.model import Experiment, ExperimentChanges
from bandit_service.ports import Clock, Storage

__all__ = ["ChangeListener", "ExperimentCache"]

ChangeListener = Callable[[ExperimentChanges, bool], None]
"""Told of every poll's changes, and of each change this process commits; True: the first poll."""

log = logging.getLogger(__name__)


class _Entry:
    __slots__ = ("experiment",)

    def __init__(self, experiment: Experiment | None) -> None:
        self.experiment = experiment


class ExperimentCache:
    """Experiments by key (None for a key that does not exist), never staler than `bound_s`."""

    def __init__(self, storage: Storage, clock: Clock, bound_s: float, max_entries: int = 10_000) -> None:
        self._storage = storage
        self._clock = clock
        self._bound_s = bound_s
        self._max_entries = max_entries
        self._entries: dict[str, _Entry] = {}
        self._loading: dict[str, asyncio.Task[Experiment | None]] = {}
        # The lowest revision an entry may have: raised by a poll that saw a change, so a read
        # that started before the change cannot store what it found.
        self._floor: dict[str, int] = {}
        self._seen: int | None = None  # the last change number this process has applied
        self._checked_at = -float("inf")  # when the last poll that succeeded *started*
        self._polling: asyncio.Task[None] | None = None
        self._listeners: list[ChangeListener] = []

    def subscribe(self, listener: ChangeListener) -> None:
        """Share this cache's polls: `listener` sees what each poll and each local change reports."""
        self._listeners.append(listener)

    async def fresh(self) -> None:
        """Make sure a poll started within `bound_s` (waiting for one if not), as `get` does first."""
        await self._fresh()

    async def get(self, key: str) -> Experiment | None:
        """The experiment as of at most `bound_s` ago; may wait for one poll and one read."""
        await self._fresh()
        entry = self._entries.get(key)
        if entry is None:
            return await asyncio.shield(self._refresh(key))
        return entry.experiment

    async def reload(self, key: str) -> Experiment | None:
        """Forget the entry and read the experiment from the database now."""
        self._entries.pop(key, None)
        return await asyncio.shield(self._refresh(key))

    def put(self, experiment: Experiment) -> None:
        """Record a change this process just committed (never replaces a newer revision)."""
        self._store(experiment.key, experiment)
        feature = experiment.config.feature
        change = ExperimentChanges(
            seq=self._seen or 0,
            revisions={experiment.key: experiment.revision},
            experiment_features={} if feature is None else {experiment.key: feature},
        )
        for listener in self._listeners:
            listener(change, False)

    async def close(self) -> None:
        """Cancel reads and polls still in flight."""
        tasks: list[asyncio.Task[object]] = [*self._loading.values()]
        if self._polling is not None:
            tasks.append(self._polling)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _fresh(self) -> None:
        if self._clock.monotonic() - self._checked_at < self._bound_s:
            return
        if self._polling is None:
            self._polling = asyncio.create_task(self._poll())
        task = self._polling
        try:
            await asyncio.shield(task)
        finally:
            if self._polling is task and task.done():
                self._polling = None

    async def _poll(self) -> None:
        started = self._clock.monotonic()
        changes = await self._storage.changes(self._seen)
        if self._seen is None:
            # First poll: nothing cached can predate it (entries are read after it), so start here.
            self._entries.clear()
        for key, revision in changes.revisions.items():
            self._floor[key] = max(self._floor.get(key, 0), revision)
            entry = self._entries.get(key)
            if entry is None or entry.experiment is None or entry.experiment.revision < revision:
                self._entries.pop(key, None)
        for listener in self._listeners:
            listener(changes, self._seen is None)
        self._seen = changes.seq
        self._checked_at = started

    def _refresh(self, key: str) -> asyncio.Task[Experiment | None]:
        task = self._loading.get(key)
        if task is None:
            task = asyncio.create_task(self._load(key))
            self._loading[key] = task
            task.add_done_callback(lambda t: self._done(key, t))
        return task

    async def _load(self, key: str) -> Experiment | None:
        for _ in range(3):
            experiment = await self._storage.experiment(key)
            revision = experiment.revision if experiment is not None else 0
            if revision >= self._floor.get(key, 0):
                break
            # The read started before a change a poll has since reported: read again.
        if experiment is None:
            if len(self._entries) >= self._max_entries:
                self._evict()
            self._entries[key] = _Entry(None)
            return None
        return self._store(key, experiment)

    def _store(self, key: str, experiment: Experiment) -> Experiment:
        entry = self._entries.get(key)
        if entry is not None and entry.experiment is not None and entry.experiment.revision > experiment.revision:
            return entry.experiment
        if entry is None and len(self._entries) >= self._max_entries:
            self._evict()
        self._entries[key] = _Entry(experiment)
        return experiment

    def _evict(self) -> None:
        # Drop the oldest tenth (dicts keep insertion order); a hot key is simply re-read.
        for key in list(self._entries)[: max(1, self._max_entries // 10)]:
            del self._entries[key]

    def _done(self, key: str, task: asyncio.Task[Experiment | None]) -> None:
        self._loading.pop(key, None)
        if not task.cancelled() and task.exception() is not None:
            log.warning("reading experiment %r failed: %s", key, task.exception())
