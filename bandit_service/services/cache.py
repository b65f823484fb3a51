"""The experiment cache of one process: the decision path reads experiments and weights from memory.

An entry is replaced at once after a change made by this process, and re-read from the
database in the background once it is older than `ttl_s` (the stale entry is served meanwhile),
so the workers of one deployment converge within about `ttl_s` of a change made by another.
"""

from __future__ import annotations

import asyncio
import logging

from bandit_service.core.model import Experiment
from bandit_service.ports import Clock, Storage

__all__ = ["ExperimentCache"]

log = logging.getLogger(__name__)


class _Entry:
    __slots__ = ("experiment", "loaded_at")

    def __init__(self, experiment: Experiment | None, loaded_at: float) -> None:
        self.experiment = experiment
        self.loaded_at = loaded_at


class ExperimentCache:
    """Experiments by key (None for a key that does not exist), refreshed at most every `ttl_s`."""

    def __init__(self, storage: Storage, clock: Clock, ttl_s: float, max_entries: int = 10_000) -> None:
        self._storage = storage
        self._clock = clock
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        self._entries: dict[str, _Entry] = {}
        self._loading: dict[str, asyncio.Task[Experiment | None]] = {}

    async def get(self, key: str) -> Experiment | None:
        """The cached experiment; the first request for a key waits for the database read."""
        entry = self._entries.get(key)
        if entry is None:
            return await asyncio.shield(self._refresh(key))
        if self._clock.monotonic() - entry.loaded_at >= self._ttl_s:
            self._refresh(key)
        return entry.experiment

    def put(self, experiment: Experiment) -> None:
        """Record a change this process just committed (never replaces a newer revision)."""
        self._store(experiment.key, experiment)

    async def close(self) -> None:
        """Cancel refreshes still in flight."""
        tasks = list(self._loading.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _refresh(self, key: str) -> asyncio.Task[Experiment | None]:
        task = self._loading.get(key)
        if task is None:
            task = asyncio.create_task(self._load(key))
            self._loading[key] = task
            task.add_done_callback(lambda t: self._done(key, t))
        return task

    async def _load(self, key: str) -> Experiment | None:
        experiment = await self._storage.experiment(key)
        if experiment is None:
            entry = self._entries.get(key)
            if entry is not None and entry.experiment is not None:
                return entry.experiment  # experiments are never deleted; keep what we know
            if len(self._entries) >= self._max_entries:
                self._evict()
            self._entries[key] = _Entry(None, self._clock.monotonic())
            return None
        return self._store(key, experiment)

    def _store(self, key: str, experiment: Experiment) -> Experiment:
        entry = self._entries.get(key)
        if entry is not None and entry.experiment is not None and entry.experiment.revision > experiment.revision:
            entry.loaded_at = self._clock.monotonic()
            return entry.experiment
        if entry is None and len(self._entries) >= self._max_entries:
            self._evict()
        self._entries[key] = _Entry(experiment, self._clock.monotonic())
        return experiment

    def _evict(self) -> None:
        # Drop the oldest tenth (dicts keep insertion order); a hot key is simply re-read.
        for key in list(self._entries)[: max(1, self._max_entries // 10)]:
            del self._entries[key]

    def _done(self, key: str, task: asyncio.Task[Experiment | None]) -> None:
        self._loading.pop(key, None)
        if not task.cancelled() and task.exception() is not None:
            log.warning("refreshing experiment %r failed: %s", key, task.exception())
