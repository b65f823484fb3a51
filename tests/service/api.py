"""Helpers for service tests: the API in a few calls, and direct reads of the test's database (SQLAlchemy)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import httpx
import msgspec
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import Connection, create_engine, text

from bandit_service.app import create_app
from bandit_service.clock import FakeClock
from bandit_service.ids import sequential_ids
from bandit_service.settings import Settings

ADMIN_KEY = "test-admin-key-0123456789abcdefghijklmnop"
"""The admin key the test apps start with (`Settings.admin_key`), sent by `api_client`."""

# No background scheduler (tests call its jobs), no cache and no rate limits (the fake clock never
# refills a bucket; tests/service/test_rate_limits.py sets them), unless a test overrides them.
# Every app starts with ADMIN_KEY as its admin key, and `client` sends it.
TEST_SETTINGS = Settings(
    scheduler_enabled=False,
    cache_ttl_s=0.0,
    admin_key=ADMIN_KEY,
    rate_limit_traffic_per_s=0,
    rate_limit_operator_per_s=0,
)

TABLES = (
    "experiments",
    "arms",
    "assignments",
    "decisions",
    "rewards",
    "arm_counters",
    "period_counters",
    "arm_metrics",
    "period_metrics",
    "weights_history",
    "events",
    "rollouts",
    "arm_sketches",
    "sketch_buckets",
    "features",
)


def api_client(app: Litestar, key: str | None = ADMIN_KEY) -> TestClient[Litestar]:
    """A test client that sends `key` as its bearer token (None: no key)."""
    client = TestClient(app)
    if key is not None:
        client.headers["Authorization"] = f"Bearer {key}"
    return client


@contextmanager
def shared_client(database_url: str, name: str) -> Iterator[TestClient[Litestar]]:
    """A client of an app on `database_url` for a module's tests that change nothing (module-scoped fixtures)."""
    settings = msgspec.structs.replace(TEST_SETTINGS, database_url=database_url)
    with api_client(create_app(settings, clock=FakeClock(), ids=sequential_ids(name))) as client:
        yield client


@contextmanager
def connect(url: str) -> Iterator[Connection]:
    """One transaction on the database through an engine of the test's own; committed, engine closed, at exit."""
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            yield conn
    finally:
        engine.dispose()


def read_db(url: str, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
    """Query the database with a connection of its own (`:name` parameters): only committed data is visible."""
    with connect(url) as conn:
        return [tuple(row) for row in conn.execute(text(sql), dict(params or {}))]


def snapshot(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, for 'the database is unchanged' checks."""
    with connect(url) as conn:
        return {t: sorted((tuple(r) for r in conn.execute(text(f"SELECT * FROM {t}"))), key=repr) for t in TABLES}


def experiment_body(key: str = "exp", **overrides: Any) -> dict[str, Any]:
    """A valid create body: two arms a (control) and b, Thompson sampling, bernoulli rewards."""
    body: dict[str, Any] = {
        "key": key,
        "name": "An experiment",
        "arms": [{"name": "a", "payload": {"model": "v1"}}, {"name": "b", "payload": {"model": "v2"}}],
    }
    body.update(overrides)
    return body


def started(client: TestClient[Litestar], key: str = "exp", **overrides: Any) -> dict[str, Any]:
    """Create and start an experiment; returns the started experiment."""
    created = client.post("/v1/experiments", json=experiment_body(key, **overrides))
    assert created.status_code == 201, created.text
    response = client.post(f"/v1/experiments/{key}/start")
    assert response.status_code == 200, response.text
    return response.json()


def decide(client: TestClient[Litestar], key: str = "exp", **body: Any) -> dict[str, Any]:
    """POST /v1/decisions and return the decision (asserting 200)."""
    response = client.post("/v1/decisions", json={"experiment": key, **body})
    assert response.status_code == 200, response.text
    return response.json()


def reward(client: TestClient[Litestar], decision_id: str, value: float, **body: Any) -> Any:
    """POST /v1/rewards and return the response."""
    return client.post("/v1/rewards", json={"decision_id": decision_id, "reward": value, **body})


def call(client: TestClient[Litestar], fn: Callable[..., Any], *args: Any) -> Any:
    """Run an async service method on the app's event loop (where its writer lives)."""
    return client.blocking_portal.call(fn, *args)


def decide_all(
    client: TestClient[Litestar], bodies: list[dict[str, Any]], concurrency: int = 64
) -> list[dict[str, Any]]:
    """POST many decisions concurrently on the app's own event loop (exercises group commit)."""

    async def run() -> list[dict[str, Any]]:
        transport = httpx.ASGITransport(app=client.app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://bandit.test", headers=client.headers
        ) as http:
            limit = asyncio.Semaphore(concurrency)

            async def one(body: dict[str, Any]) -> dict[str, Any]:
                async with limit:
                    response = await http.post("/v1/decisions", json=body)
                assert response.status_code == 200, response.text
                result: dict[str, Any] = response.json()
                return result

            return list(await asyncio.gather(*(one(b) for b in bodies)))

    result: list[dict[str, Any]] = client.blocking_portal.call(run)
    return result
