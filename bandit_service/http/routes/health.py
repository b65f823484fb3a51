"""GET /healthz."""

from __future__ import annotations

import os

from litestar import get
from litestar.di import NamedDependency

from bandit_service.http.schemas import HealthOut
from bandit_service.ports import Storage

__all__ = ["healthz"]


@get("/healthz", tags=["health"])
async def healthz(storage: NamedDependency[Storage]) -> HealthOut:
    """Liveness, database reachability and this worker's group-commit counters."""
    await storage.ping()
    stats = storage.stats()
    return HealthOut(status="ok", database="ok", process=os.getpid(), commits=stats.commits, writes=stats.writes)
