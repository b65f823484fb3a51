"""Helpers of the SDK tests: client options, async clients on the in-process app, and counts at the service."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx
from litestar import Litestar
from litestar.testing import TestClient

from bandit_service.client import AsyncBanditClient, Backoff
from tests.service.api import ADMIN_KEY, started

__all__ = ["BASE_URL", "FAST", "OPTIONS", "async_client", "async_http", "run_async", "totals", "unit_experiment"]

T = TypeVar("T")

BASE_URL = "http://bandit.test"
FAST = Backoff(base_s=0.005, max_s=0.05)
"""Retry waits short enough for tests (the default starts at 0.1 s and grows to 10 s)."""
OPTIONS: dict[str, Any] = {"api_key": ADMIN_KEY, "backoff": FAST, "flush_interval_s": 0.02}


def run_async(service: TestClient[Litestar], test: Callable[[], Awaitable[T]]) -> T:
    """Run an async test body on the app's own event loop (where its writer lives)."""
    result: T = service.blocking_portal.call(test)
    return result


def async_http(service: TestClient[Litestar], transport: httpx.AsyncBaseTransport | None = None) -> httpx.AsyncClient:
    """An AsyncClient on the in-process app (through `transport`, default the app itself); use on the app's loop."""
    return httpx.AsyncClient(base_url=BASE_URL, transport=transport or httpx.ASGITransport(app=service.app))


def async_client(http: httpx.AsyncClient, **options: Any) -> AsyncBanditClient:
    """An AsyncBanditClient over `http` with the test options."""
    return AsyncBanditClient(http=http, **{**OPTIONS, **options})


def unit_experiment(service: TestClient[Litestar], key: str = "exp") -> None:
    """Start an experiment whose statistics show every reward: continuous, unit trials, rewards summed.

    A reward counted twice would raise its unit's trial value, so `totals` sees it.
    """
    started(service, key, reward="continuous")


def totals(service: TestClient[Litestar], key: str = "exp") -> tuple[int, float]:
    """Rewarded trials and the sum of their values, as the service counts them."""
    stats = service.get(f"/v1/experiments/{key}").json()["stats"]
    rewarded = sum(arm["rewarded"] for arm in stats.values())
    total = sum((arm["mean"] or 0.0) * arm["n"] for arm in stats.values())
    return rewarded, round(total, 6)
