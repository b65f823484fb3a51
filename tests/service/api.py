"""Helpers for service tests: the API in a few calls, and direct reads of the SQLite file."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from litestar import Litestar
from litestar.testing import TestClient

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
)


def read_db(path: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Query the database file with a fresh sqlite3 connection: only committed data is visible."""
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def snapshot(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, for 'the database is unchanged' checks."""
    conn = sqlite3.connect(path)
    try:
        return {t: sorted(conn.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in TABLES}
    finally:
        conn.close()


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
        async with httpx.AsyncClient(transport=transport, base_url="http://bandit.test") as http:
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
