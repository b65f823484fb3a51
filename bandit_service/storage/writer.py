"""Group commit: one writer thread turns the writes of concurrent requests into one transaction.

Requests queue (job, item) pairs and wait on a future. The writer thread takes everything
queued (up to `max_batch`), runs it as one transaction, and resolves each future with its own
outcome only after COMMIT: a 2xx answer therefore means the write is durable, and requests that
arrive together share one commit (and one fsync). While a batch commits, the next one
accumulates, so batches grow with load without adding latency at low load.

The thread takes the next batch itself the moment a commit returns. Handing batches over
through the event loop left the writer idle until the busy loop got round to it, and every
request waits for a whole commit cycle.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Sequence
from typing import Any, Protocol

from sqlalchemy.exc import InterfaceError, OperationalError

from bandit_service.core.errors import UnavailableError
from bandit_service.core.telemetry import NoTelemetry, Telemetry
from bandit_service.ports import Job
from bandit_service.storage.database import describe_unavailable

__all__ = ["GroupCommitWriter"]

log = logging.getLogger(__name__)

_Entry = tuple[Job, Any, "asyncio.Future[Any]"]


class BatchRunner(Protocol):
    """What the writer needs of the database: run groups of jobs in one transaction."""

    def run_batch(self, groups: Sequence[tuple[Job, Sequence[Any]]]) -> list[list[Any]]:
        """Per item, its result or the exception that refused it."""
        ...


class GroupCommitWriter:
    """The single writer of one process; `submit` returns when the item is committed (or refused)."""

    def __init__(self, repository: BatchRunner, *, max_batch: int = 512, linger_s: float = 0.0) -> None:
        self._repository = repository
        self._max_batch = max_batch
        self._linger_s = linger_s
        self._queue: queue.SimpleQueue[_Entry | None] = queue.SimpleQueue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._closing = False
        self.batches = 0  # committed transactions, for tests and metrics
        self.items = 0
        self.telemetry: Telemetry = NoTelemetry()  # set by the app before `start` (metrics on)
        self._batch_started: float | None = None  # monotonic start of the transaction running now

    def busy_s(self) -> float:
        """How long the transaction running now has been running (0 when idle): readiness calls a
        writer stuck when this exceeds the longest a healthy batch can wait for locks."""
        started = self._batch_started
        return 0.0 if started is None else max(time.monotonic() - started, 0.0)

    async def start(self) -> None:
        """Start the writer thread (inside the running event loop, which receives the outcomes)."""
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._run, name="bandit-writer", daemon=True)
        self._thread.start()

    async def close(self) -> None:
        """Commit what is queued, then stop; later submissions are refused with `UnavailableError`."""
        if self._thread is None or self._closing:
            return
        self._closing = True
        self._queue.put(None)
        # The outcomes of the last batches were handed to the loop before the thread ended, so
        # they are resolved before this await returns.
        await asyncio.to_thread(self._thread.join)

    async def submit(self, job: Job, item: Any) -> Any:
        """Queue one item for `job`; returns its result after COMMIT or raises the error that refused it."""
        if self._thread is None or self._closing:
            raise UnavailableError("the service is not accepting writes (starting up or shutting down); retry")
        future: asyncio.Future[Any] = self._loop.create_future()  # type: ignore[union-attr]
        self._queue.put((job, item, future))
        return await future

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                break
            batch = [first]
            if self._linger_s > 0:
                time.sleep(self._linger_s)
            while len(batch) < self._max_batch:
                try:
                    entry = self._queue.get_nowait()
                except queue.Empty:
                    break
                if entry is None:
                    stopping = True
                    break
                batch.append(entry)
            started = time.perf_counter()
            self._batch_started = time.monotonic()
            try:
                outcomes, committed = self._commit(batch)
            finally:
                self._batch_started = None
            self.telemetry.committed(len(batch), time.perf_counter() - started, committed)
            try:
                self._loop.call_soon_threadsafe(self._resolve, batch, outcomes, committed)  # type: ignore[union-attr]
            except RuntimeError:  # the loop is closed: nobody is waiting any more
                log.warning("event loop closed; %d write outcomes dropped after commit", len(batch))
                return

    def _commit(self, batch: list[_Entry]) -> tuple[list[Any], bool]:
        # Group items by job, in order of first appearance, so each job runs once per batch.
        groups: dict[Job, list[int]] = {}
        for i, (job, _, _) in enumerate(batch):
            groups.setdefault(job, []).append(i)
        work = [(job, [batch[i][1] for i in idx]) for job, idx in groups.items()]
        outcomes: list[Any] = [None] * len(batch)
        try:
            results = self._repository.run_batch(work)
        except (OperationalError, InterfaceError) as exc:  # locked, full, unreachable: worth a retry later
            log.warning("write batch of %d failed: %s", len(batch), exc)
            # The driver's text stays in the log: it can name the server's host, port or file.
            failure: BaseException = UnavailableError(f"{describe_unavailable(exc)}; retry")
            return [failure] * len(batch), False
        except Exception as exc:  # forwarded to every request of the failed transaction, never swallowed
            log.exception("write batch of %d failed", len(batch))
            return [exc] * len(batch), False
        for idx, group_results in zip(groups.values(), results, strict=True):
            for i, outcome in zip(idx, group_results, strict=True):
                outcomes[i] = outcome
        return outcomes, True

    def _resolve(self, batch: list[_Entry], outcomes: list[Any], committed: bool) -> None:
        if committed:
            self.batches += 1
            self.items += len(batch)
        for (_, _, future), outcome in zip(batch, outcomes, strict=True):
            if future.done():  # the request was cancelled (client went away); the write stands
                continue
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
