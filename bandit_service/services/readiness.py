"""Readiness: may this process take traffic? Its writer is not stuck, its scheduler runs, the database takes a write.

The database check is a real write through the group-commit writer (`WriteTx.probe`: it waits
for the locks a decision waits for, writes a page and leaves no trace), bounded by a timeout: a
lock held elsewhere, a full disk or a stopped server fails it the way it fails decisions. One
probe runs at a time, and its outcome is reused for `FRESH_S`, so a flood of /readyz requests
costs the database at most one small write per second.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Literal

from bandit_service.core.errors import UnavailableError
from bandit_service.ports import Storage, WriteTx
from bandit_service.services.scheduler import Scheduler

__all__ = ["FRESH_S", "Readiness", "SchedulerState"]

FRESH_S = 1.0
"""Seconds a finished probe's outcome answers readiness before the next probe is written."""

SchedulerState = Literal["running", "disabled"]


def _probe(tx: WriteTx, items: Sequence[None]) -> list[None]:
    """One probe per batch, however many readiness checks share it."""
    tx.probe()
    return [None] * len(items)


class Readiness:
    """The checks behind GET /readyz; each failure is an `UnavailableError` that names the check."""

    def __init__(
        self, storage: Storage, scheduler: Scheduler | None, *, timeout_s: float, stuck_after_s: float
    ) -> None:
        """`scheduler` None: the scheduler is disabled. `stuck_after_s`: the longest a healthy write
        transaction runs (its lock waits are bounded); a longer one means the writer is stuck."""
        self._storage = storage
        self._scheduler = scheduler
        self._timeout_s = timeout_s
        self._stuck_after_s = stuck_after_s
        self._probe: asyncio.Future[None] | None = None
        self._probe_started = 0.0

    async def check(self) -> SchedulerState:
        """The scheduler's state if this process is ready; UnavailableError naming the failed check if not."""
        busy_s = self._storage.stats().busy_s
        if busy_s > self._stuck_after_s:
            raise UnavailableError(
                f"not ready: writer: its current transaction has run for {busy_s:.1f} s"
                f" (a healthy one ends within {self._stuck_after_s:.1f} s)"
            )
        if self._scheduler is not None and not self._scheduler.running:
            raise UnavailableError("not ready: scheduler: not running")
        await self._writable()
        return "disabled" if self._scheduler is None else "running"

    async def _writable(self) -> None:
        """Wait for the current probe (a new one when the last is older than FRESH_S), at most the timeout."""
        loop = asyncio.get_running_loop()
        probe = self._probe
        if probe is None or (probe.done() and loop.time() - self._probe_started > FRESH_S):
            probe = self._probe = asyncio.ensure_future(self._storage.write(_probe, None))
            probe.add_done_callback(_consume)
            self._probe_started = loop.time()
        try:
            # Shielded: a check that stops waiting leaves the probe queued for the next check.
            await asyncio.wait_for(asyncio.shield(probe), self._timeout_s)
        except TimeoutError:
            raise UnavailableError(f"not ready: database: no write committed within {self._timeout_s:g} s") from None
        except UnavailableError as exc:
            raise UnavailableError(f"not ready: database: {exc.detail}") from exc


def _consume(probe: asyncio.Future[None]) -> None:
    """Retrieve a probe's error, so one that no check awaited any more is not logged as never retrieved."""
    if not probe.cancelled():
        probe.exception()
