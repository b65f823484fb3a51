"""The `Storage` port over SQL (SQLite or PostgreSQL): blocking reads in a worker thread, writes
through the group-commit writer, reports through their own read snapshot."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from bandit_service.core.looks import SequentialLook
from bandit_service.core.model import (
    ArmCounts,
    Experiment,
    ExperimentChanges,
    ExperimentStatus,
    Feature,
    LoggedEvent,
    Rollout,
    WeightsRecord,
)
from bandit_service.core.report_data import DailyCounters, ReportData, SegmentData
from bandit_service.core.roles import ApiKey
from bandit_service.core.webhooks import DeliveryEntry, DeliveryStatus
from bandit_service.ports import DueKind, Job, WriteStats
from bandit_service.storage.database import Database
from bandit_service.storage.looks import record_looks_job
from bandit_service.storage.report_reads import SqlReportStore
from bandit_service.storage.sql import SqlRepository
from bandit_service.storage.writer import GroupCommitWriter

__all__ = ["SqlStorage"]

T = TypeVar("T")


class SqlStorage:
    """The SQL storage of one process: its repository, its single writer and its report reads."""

    def __init__(
        self, database: Database, *, max_batch: int = 512, linger_s: float = 0.0, sqlite_speedups: bool = True
    ) -> None:
        """`sqlite_speedups=False` runs a SQLite database the plain way (see `sqlite_speedups`)."""
        self.database = database
        self.repository = SqlRepository(database, sqlite_speedups=sqlite_speedups)
        self.writer = GroupCommitWriter(self.repository, max_batch=max_batch, linger_s=linger_s)
        self._reports = SqlReportStore(database)
        self._reads: set[asyncio.Future[Any]] = set()  # reads in worker threads, awaited by `close`

    @property
    def webhook_url(self) -> str | None:
        """The global webhook: every audit-log entry is also queued for it."""
        return self.repository.webhook_url

    @webhook_url.setter
    def webhook_url(self, url: str | None) -> None:
        self.repository.webhook_url = url

    async def open(self) -> None:
        """Create missing tables (holding the schema lock), then start the writer thread."""
        await asyncio.to_thread(self.repository.create_schema)
        await self.writer.start()

    async def close(self) -> None:
        """Commit what is queued, stop the writer, wait for reads in flight, release the connections."""
        await self.writer.close()
        # A read whose caller was cancelled (a cache refresh at shutdown) still holds a connection in
        # its thread: disposing the engine under it would leave that connection to the garbage collector.
        await asyncio.gather(*self._reads, return_exceptions=True)
        await asyncio.to_thread(self.repository.close)

    async def _read(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a blocking read in a worker thread; it runs to its end even if the caller is cancelled."""
        read = asyncio.ensure_future(asyncio.to_thread(fn, *args))
        self._reads.add(read)
        read.add_done_callback(self._reads.discard)
        return await asyncio.shield(read)

    async def ping(self) -> None:
        """Raise if the database cannot be reached."""
        await self._read(self.repository.ping)

    def stats(self) -> WriteStats:
        """Transactions the writer committed, the writes in them, how long the current one has run."""
        return WriteStats(commits=self.writer.batches, writes=self.writer.items, busy_s=self.writer.busy_s())

    async def write(self, job: Job, item: Any) -> Any:
        """Queue the item for the writer; its outcome after COMMIT."""
        return await self.writer.submit(job, item)

    async def changes(self, since: int | None) -> ExperimentChanges:
        """Experiments changed after change number `since` (None: just the latest number)."""
        return await self._read(self.repository.changes, since)

    async def experiment(self, key: str) -> Experiment | None:
        """The experiment with this key."""
        return await self._read(self.repository.experiment, key)

    async def experiments(self, status: ExperimentStatus | None, limit: int, offset: int) -> list[Experiment]:
        """Experiments, newest first."""
        return await self._read(self.repository.experiments, status, limit, offset)

    async def arm_counts(self, experiment: Experiment) -> list[ArmCounts]:
        """Per-arm counters in arm order."""
        return await self._read(self.repository.arm_counts, experiment)

    async def weights_history(self, experiment_id: int, limit: int) -> list[WeightsRecord]:
        """The most recent rows, oldest first."""
        return await self._read(self.repository.weights_history, experiment_id, limit)

    async def assignment_counts(self, experiment_id: int, before_version: int) -> dict[int, int]:
        """Sticky assignments per arm stored before weights `before_version`."""
        return await self._read(self.repository.assignment_counts, experiment_id, before_version)

    async def rollouts(self, experiment_id: int) -> dict[str, Rollout]:
        """The experiment's plans by kind."""
        return await self._read(self.repository.rollouts, experiment_id)

    async def events(self, experiment_id: int, after: int, limit: int) -> list[LoggedEvent]:
        """Audit-log entries after a cursor."""
        return await self._read(self.repository.events, experiment_id, after, limit)

    async def due(self, kind: DueKind, now: float, limit: int) -> list[str]:
        """The scheduler's work list of one kind."""
        return await self._read(self.repository.due, kind, now, limit)

    async def api_key(self, digest: str) -> ApiKey | None:
        """The key with this digest."""
        return await self._read(self.repository.api_key, digest)

    async def api_keys(self) -> list[ApiKey]:
        """Every API key, by name."""
        return await self._read(self.repository.api_keys)

    async def feature(self, key: str) -> Feature | None:
        """The feature with this key (None: none, or deleted)."""
        return await self._read(self.repository.feature, key)

    async def features(self) -> list[Feature]:
        """Every feature, by key."""
        return await self._read(self.repository.features)

    async def feature_experiments(self, key: str) -> list[Experiment]:
        """Experiments that serve feature `key`, by id."""
        return await self._read(self.repository.feature_experiments, key)

    async def due_deliveries(self, now: float, limit: int) -> list[DeliveryEntry]:
        """Pending webhook deliveries due at `now`, with their events."""
        return await self._read(self.repository.due_deliveries, now, limit)

    async def deliveries(
        self, experiment_id: int | None, status: DeliveryStatus | None, before: int | None, limit: int
    ) -> list[DeliveryEntry]:
        """Webhook deliveries newest first."""
        return await self._read(self.repository.deliveries, experiment_id, status, before, limit)

    async def sequential_looks(self, experiment_id: int) -> tuple[SequentialLook, ...]:
        """The experiment's stored always-valid looks, by (metric, arm)."""
        return await self._read(self.repository.sequential_looks, experiment_id)

    async def record_looks(self, experiment_id: int, looks: Sequence[SequentialLook]) -> tuple[SequentialLook, ...]:
        """Merge looks through the writer (one upsert per row); the merged rows, after COMMIT."""
        merged: tuple[SequentialLook, ...] = await self.write(record_looks_job, (experiment_id, tuple(looks)))
        return merged

    async def report_data(
        self, experiment: Experiment, *, since_day: int | None = None, until_day: int | None = None
    ) -> ReportData:
        """Counters, sketches and history in one read snapshot (of the trials opened in the window, if given)."""
        read = functools.partial(self._reports.report_data, since_day=since_day, until_day=until_day)
        return await self._read(read, experiment)

    async def segment_data(
        self,
        experiment: Experiment,
        attribute: str,
        max_segments: int,
        since_day: int | None = None,
        until_day: int | None = None,
    ) -> SegmentData:
        """Counters per value of a decision attribute in one read snapshot."""
        return await self._read(self._reports.segment_data, experiment, attribute, max_segments, since_day, until_day)

    async def daily_counters(
        self, experiment: Experiment, since_day: int | None = None, until_day: int | None = None
    ) -> DailyCounters:
        """Counters per UTC day and arm in one read snapshot."""
        return await self._read(self._reports.daily_counters, experiment, since_day, until_day)
