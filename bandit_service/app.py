"""The application factory: `create_app(settings) -> Litestar`, with no work at import time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar
from litestar.datastructures import State
from litestar.di import Provide

from bandit_service.clock import SystemClock
from bandit_service.http.allow import AllowHeaderMiddleware
from bandit_service.http.auth import AuthMiddleware, caller
from bandit_service.http.fast_body import FastBodyRequest
from bandit_service.http.observability import observability
from bandit_service.http.openapi import openapi_config
from bandit_service.http.problems import exception_handlers
from bandit_service.http.rate_limits import RateLimitMiddleware
from bandit_service.http.routes import ROUTES
from bandit_service.http.strict_body import StrictJsonRequest, strict_json_request
from bandit_service.ids import process_ids
from bandit_service.log_flood import repeated_line_limit
from bandit_service.ports import Clock, IdFactory, Storage
from bandit_service.runtime import Runtime
from bandit_service.settings import Settings
from bandit_service.storage.database import open_database
from bandit_service.storage.sql_storage import SqlStorage

__all__ = ["create_app", "runtime_of"]

VERSION = "0.1.0"


def create_app(
    settings: Settings | None = None,
    *,
    storage: Storage | None = None,
    clock: Clock | None = None,
    ids: IdFactory | None = None,
) -> Litestar:
    """The service as an ASGI app; the storage, its writer and the scheduler open in its lifespan.

    Without `storage`, the SQL storage of `settings.database_url`; tests pass the in-memory twin.
    """
    settings = settings if settings is not None else Settings()
    observed = observability(settings)
    if storage is None:
        sql_storage = SqlStorage(
            open_database(settings),
            max_batch=settings.commit_max_batch,
            linger_s=settings.commit_linger_ms / 1000.0,
            sqlite_speedups=settings.sqlite_speedups,
        )
        sql_storage.writer.telemetry = observed.telemetry
        storage = sql_storage
    clock = clock if clock is not None else SystemClock()
    runtime = Runtime(settings, storage, clock, ids if ids is not None else process_ids(), observed.telemetry)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        await runtime.open()
        try:
            yield
        finally:
            await runtime.close()

    return Litestar(
        route_handlers=[*ROUTES, *observed.routes],
        dependencies={
            "experiments": Provide(runtime.experiments, sync_to_thread=False),
            "decisions": Provide(runtime.decisions, sync_to_thread=False),
            "decision_log": Provide(runtime.decision_log, sync_to_thread=False),
            "definitions": Provide(runtime.definitions, sync_to_thread=False),
            "features": Provide(runtime.features, sync_to_thread=False),
            "rewards": Provide(runtime.rewards, sync_to_thread=False),
            "storage": Provide(runtime.storage_provider, sync_to_thread=False),
            "rollouts": Provide(runtime.rollouts, sync_to_thread=False),
            "audit": Provide(runtime.audit, sync_to_thread=False),
            "reports": Provide(runtime.reports, sync_to_thread=False),
            "readiness": Provide(runtime.readiness, sync_to_thread=False),
            "keys": Provide(runtime.keys, sync_to_thread=False),
            "webhooks": Provide(runtime.webhooks, sync_to_thread=False),
            "caller": Provide(caller, sync_to_thread=False),
            **observed.dependencies,
        },
        # The request start mark goes first: the metrics and the request log see requests refused by auth too.
        # Rate limits after auth: they spend the budget of the caller that auth found.
        middleware=[
            *observed.middleware,
            AuthMiddleware(runtime.keys if settings.auth else None),
            RateLimitMiddleware.from_settings(settings, clock.monotonic),
            AllowHeaderMiddleware(),
        ],
        before_send=observed.before_send,
        logging_config=observed.logging_config,
        lifespan=[repeated_line_limit(settings.log_repeat_lines, settings.log_repeat_interval_s), lifespan],
        request_class=strict_json_request(
            settings.max_json_depth, FastBodyRequest if settings.fast_body else StrictJsonRequest
        ),
        exception_handlers=exception_handlers(),  # type: ignore[arg-type]
        request_max_body_size=settings.max_body_bytes,
        openapi_config=openapi_config("bandit-service", VERSION),
        state=State({"runtime": runtime}),
        debug=False,
    )


def runtime_of(app: Litestar) -> Runtime:
    """The runtime behind an app made by `create_app` (for tests and operator commands)."""
    runtime: Runtime = app.state.runtime
    return runtime
