"""GET /healthz."""

from __future__ import annotations

import asyncio
import os

from litestar import get
from litestar.di import NamedDependency

from bandit_service.http.schemas import HealthOut
from bandit_service.storage.repository import Repository
from bandit_service.storage.writer import GroupCommitWriter

__all__ = ["healthz"]


@get("/healthz", tags=["health"])
async def healthz(repository: NamedDependency[Repository], writer: NamedDependency[GroupCommitWriter]) -> HealthOut:
    """Liveness, database reachability and this worker's group-commit counters."""
    await asyncio.to_thread(repository.ping)
    return HealthOut(status="ok", database="ok", process=os.getpid(), commits=writer.batches, writes=writer.items)
