"""Group commit: one writer task turns the writes of concurrent requests into one transaction.

Requests queue (job, item) pairs and wait on a future. The writer takes everything queued (up
to `max_batch`), runs it in a worker thread as one transaction, and resolves each future with
its own outcome only after COMMIT: a 2xx answer therefore means the write is durable, and
requests that arrive together share one commit (and one fsync). While a batch commits, the
next one accumulates, so batches grow with load without adding latency at low load.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy.exc import OperationalError

from bandit_service.errors import UnavailableError
from bandit_service.storage.repository import Job, Repository

__all__ = ["GroupCommitWriter"]

log = logging.getLogger(__name__)

_Entry = tuple[Job, Any, "asyncio.Future[Any]"]


class GroupCommitWriter:
    """The single writer of one process; `submit` returns when the item is committed (or refused)."""

    def __init__(self, repository: Repository, *, max_batch: int = 512, linger_s: float = 0.0) -> None:
        self._repository = repository
        self._max_batch = max_batch
        self._linger_s = linger_s
        self._queue: asyncio.Queue[_Entry | None] = asyncio.Queue()
        self._executor: ThreadPoolExecutor | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.batches = 0  # committed transactions, for tests and metrics
        self.items = 0

    async def start(self) -> None:
        """Start the writer task (inside the running event loop)."""
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bandit-writer")
        self._task = asyncio.create_task(self._run(), name="bandit-group-commit")

    async def close(self) -> None:
        """Commit what is queued, then stop; later submissions are refused with `UnavailableError`."""
        if self._task is None or self._closing:
            return
        self._closing = True
        self._queue.put_nowait(None)
        await self._task
        if self._executor is not None:
            self._executor.shutdown(wait=True)

    async def submit(self, job: Job, item: Any) -> Any:
        """Queue one item for `job`; returns its result after COMMIT or raises the error that refused it."""
        if self._task is None or self._closing:
            raise UnavailableError("the service is not accepting writes (starting up or shutting down); retry")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((job, item, future))
        return await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        stopping = False
        while not stopping:
            first = await self._queue.get()
            if first is None:
                break
            batch = [first]
            if self._linger_s > 0:
                await asyncio.sleep(self._linger_s)
            while len(batch) < self._max_batch and not self._queue.empty():
                entry = self._queue.get_nowait()
                if entry is None:
                    stopping = True
                    break
                batch.append(entry)
            await self._commit(loop, batch)

    async def _commit(self, loop: asyncio.AbstractEventLoop, batch: list[_Entry]) -> None:
        # Group items by job, in order of first appearance, so each job runs once per batch.
        groups: dict[Job, list[int]] = {}
        for i, (job, _, _) in enumerate(batch):
            groups.setdefault(job, []).append(i)
        work = [(job, [batch[i][1] for i in idx]) for job, idx in groups.items()]
        outcomes: list[Any] = [None] * len(batch)
        try:
            results = await loop.run_in_executor(self._executor, self._repository.run_batch, work)
        except OperationalError as exc:
            log.warning("write batch of %d failed: %s", len(batch), exc)
            failure: BaseException = UnavailableError(f"the database is busy or unavailable ({exc.orig}); retry")
            outcomes = [failure] * len(batch)
        except Exception as exc:  # forwarded to every request of the failed transaction, never swallowed
            log.exception("write batch of %d failed", len(batch))
            outcomes = [exc] * len(batch)
        else:
            self.batches += 1
            self.items += len(batch)
            for idx, group_results in zip(groups.values(), results, strict=True):
                for i, outcome in zip(idx, group_results, strict=True):
                    outcomes[i] = outcome
        for (_, _, future), outcome in zip(batch, outcomes, strict=True):
            if future.done():  # the request was cancelled (client went away); the write stands
                continue
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
