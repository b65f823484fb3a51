"""GET /healthz."""

from __future__ import annotations

import asyncio

from litestar import get
from litestar.di import NamedDependency

from bandit_service.schemas import HealthOut
from bandit_service.storage.repository import Repository

__all__ = ["healthz"]


@get("/healthz", tags=["health"])
async def healthz(repository: NamedDependency[Repository]) -> HealthOut:
    """Liveness and database reachability."""
    await asyncio.to_thread(repository.ping)
    return HealthOut(status="ok", database="ok")
