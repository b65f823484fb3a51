"""Health checks: GET /livez (the process serves), /readyz (it can take traffic), /healthz (kept as it was).

/livez touches nothing but the event loop: a liveness probe that restarts a process must not fire
because the database is down. /readyz answers 503 (a problem detail with Retry-After naming the
failed check) while the database takes no write, the scheduler is stopped or the writer is stuck,
so a load balancer sends traffic elsewhere without restarting anything.
"""

from __future__ import annotations

import os

from litestar import get
from litestar.di import NamedDependency

from bandit_service.http.schemas import HealthOut, LiveOut, ReadyOut
from bandit_service.ports import Storage
from bandit_service.services.readiness import Readiness

__all__ = ["healthz", "livez", "readyz"]


@get("/healthz", tags=["health"], opt={"role": "public"})
async def healthz(storage: NamedDependency[Storage]) -> HealthOut:
    """Liveness, database reachability and this worker's group-commit counters."""
    await storage.ping()
    stats = storage.stats()
    return HealthOut(status="ok", database="ok", process=os.getpid(), commits=stats.commits, writes=stats.writes)


@get("/livez", tags=["health"], opt={"role": "public", "database": False})
async def livez() -> LiveOut:
    """200 while the process serves requests; no database access."""
    return LiveOut(status="alive", process=os.getpid())


@get("/readyz", tags=["health"], opt={"role": "public"})
async def readyz(readiness: NamedDependency[Readiness]) -> ReadyOut:
    """200 when a probe write commits, the scheduler runs (if enabled) and the writer is not stuck; else 503."""
    scheduler = await readiness.check()
    return ReadyOut(status="ready", database="writable", scheduler=scheduler, process=os.getpid())
