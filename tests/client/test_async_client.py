"""AsyncBanditClient against the real app in-process (httpx.ASGITransport, on the app's own loop): the same API."""

from __future__ import annotations

import asyncio
import threading

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from bandit_service.client import AsyncBanditClient, BanditError, Fallback
from bandit_service.client.manage import AsyncManagement
from tests.client.helpers import async_client, async_http, run_async, totals, unit_experiment
from tests.service.api import started


def test_decide_reward_flush(service: TestClient[Litestar]) -> None:
    unit_experiment(service)

    async def scenario() -> None:
        async with async_http(service) as http, async_client(http, flush_interval_s=3600.0) as client:
            d = await client.decide(experiment="exp", unit="u1", attributes={"plan": "pro"})
            assert (d.source, d.in_experiment, d.unit) == ("service", True, "u1")
            client.reward(d, 1.5, metrics={"latency_ms": 3.0})
            client.reward(("exp", "u1"), 0.5)
            assert await client.flush(5.0)
            assert (client.stats.sent, client.stats.pending) == (2, 0)

    run_async(service, scenario)
    assert totals(service) == (1, 2.0)


def test_a_reward_is_sent_by_the_task_without_another_call(service: TestClient[Litestar]) -> None:
    unit_experiment(service)

    async def scenario() -> None:
        async with async_http(service) as http:
            client = async_client(http, flush_interval_s=0.02)
            d = await client.decide(experiment="exp", unit="u1")
            client.reward(d, 1.0)
            for _ in range(500):  # the background task sends it; this loop only yields to it
                if client.stats.sent:
                    break
                await asyncio.sleep(0.01)
            assert client.stats.sent == 1
            await client.aclose()

    run_async(service, scenario)
    assert totals(service) == (1, 1.0)


def test_a_reward_before_any_await_is_sent_on_close(service: TestClient[Litestar]) -> None:
    unit_experiment(service)
    decision_id = service.post("/v1/decisions", json={"experiment": "exp", "unit": "u1"}).json()["decision_id"]

    async def scenario() -> None:
        async with async_http(service) as http:
            client = async_client(http, flush_interval_s=3600.0)
            client.reward(decision_id, 4.0)
            await client.close()

    run_async(service, scenario)
    assert totals(service) == (1, 4.0)


def test_rewards_from_other_threads(service: TestClient[Litestar]) -> None:
    unit_experiment(service)

    async def scenario() -> None:
        async with async_http(service) as http, async_client(http, batch_size=10) as client:
            decisions = [await client.decide(experiment="exp", unit=f"u{i}") for i in range(10)]

            def work() -> None:
                for d in decisions:
                    client.reward(d, 1.0)

            threads = [threading.Thread(target=work) for _ in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert await client.flush(10.0)

    run_async(service, scenario)
    assert totals(service) == (10, 40.0)


def test_unknown_keys(service: TestClient[Litestar]) -> None:
    async def scenario() -> None:
        async with async_http(service) as http:
            async with async_client(http, fallbacks={"nope": Fallback(arm="x", payload=1)}) as lenient:
                d = await lenient.decide(experiment="nope", unit="u1")
                assert (d.source, d.arm, d.payload) == ("fallback", "x", 1)
            async with async_client(http, on_unknown="raise") as strict:
                with pytest.raises(BanditError, match="404"):
                    await strict.decide(feature="nope", unit="u1")

    run_async(service, scenario)


def test_manage_shares_the_http_client(service: TestClient[Litestar]) -> None:
    started(service, "exp")

    async def scenario() -> None:
        async with async_http(service) as http, async_client(http) as client:
            assert isinstance(client.manage, AsyncManagement)
            assert [e["key"] for e in await client.manage.list("active")] == ["exp"]

    run_async(service, scenario)


def test_close_twice_and_decide_after_close(service: TestClient[Litestar]) -> None:
    started(service, "exp")

    async def scenario() -> None:
        async with async_http(service) as http:
            client: AsyncBanditClient = async_client(http)
            await client.close()
            await client.aclose()
            d = await client.decide(experiment="exp", unit="u1", fallback="a")
            assert (d.source, d.arm) == ("fallback", "a")

    run_async(service, scenario)
