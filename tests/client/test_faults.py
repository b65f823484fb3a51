"""Service faults the SDK must ride out, sync and async: half the requests failing, a stopped server, a slow one.

Counts are checked at the service: every reward of a served decision is counted once (a unit
trial sums its rewards, so a reward counted twice would show), none of a fallback decision is.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Iterator

import httpx
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from bandit_service.client import AsyncBanditClient, BanditClient
from tests.client.helpers import FAST, async_client, async_http, run_async, totals, unit_experiment
from tests.client.transports import Fault, Faults, Forward, SilentServer, wait_until

MakeClient = Callable[..., BanditClient]

HALF: list[Fault] = ["ok", "500", "ok", "refused", "ok", "lost", "ok", "timeout", "ok", "503", "ok", "429"]
"""Every other request fails: before the service sees it (500, 503, 429, refused) or after it did (lost, timeout)."""
UNITS = 40


def local_counts(service: TestClient[Litestar], key: str = "exp") -> int:
    """Decisions the service logged from the SDK's local evaluation."""
    stats = service.get(f"/v1/experiments/{key}").json()["stats"]
    return sum(arm["local"] for arm in stats.values())


@pytest.mark.parametrize("local", [False, True], ids=["remote", "local"])
def test_half_the_requests_failing_loses_nothing_and_counts_nothing_twice(
    service: TestClient[Litestar], make_client: MakeClient, local: bool
) -> None:
    unit_experiment(service)
    faults = Faults(Forward(service), HALF)
    client = make_client(faults, batch_size=7, local=local)
    decisions = [client.decide(experiment="exp", unit=f"u{i}") for i in range(UNITS)]
    served = [d for d in decisions if not d.fallback]
    for d in decisions:
        client.reward(d, 1.0)
        client.reward(d, 2.0, metrics={"cost": 1.0})
    assert client.flush(30.0)
    stats = client.stats
    assert faults.seen["lost"] > 0 and stats.retried > 0
    assert (stats.sent, stats.refused, stats.skipped_rewards) == (2 * len(served), 0, 2 * (UNITS - len(served)))
    assert totals(service) == (len(served), 3.0 * len(served))
    if local:
        assert stats.local_decisions == len(served) == UNITS  # the definitions were fetched (after a fault or not)
        assert (local_counts(service), stats.logged_decisions + stats.duplicates) == (UNITS, UNITS)
        assert stats.refused_logs == 0


def test_half_the_requests_failing_async(service: TestClient[Litestar]) -> None:
    unit_experiment(service)

    async def scenario() -> tuple[int, int]:
        http = async_http(service, Faults(httpx.ASGITransport(app=service.app), HALF))
        async with http, async_client(http, batch_size=7) as client:
            decisions = [await client.decide(experiment="exp", unit=f"u{i}") for i in range(UNITS)]
            served = sum(not d.fallback for d in decisions)
            for d in decisions:
                client.reward(d, 1.0)
                client.reward(d, 2.0)
            assert await client.flush(30.0)
            assert (client.stats.sent, client.stats.refused) == (2 * served, 0)
            return served, client.stats.retried

    served, retried = run_async(service, scenario)
    assert retried > 0
    assert totals(service) == (served, 3.0 * served)


def test_a_stopped_service_falls_back_and_gets_the_rewards_once_back(
    service: TestClient[Litestar], make_client: MakeClient
) -> None:
    unit_experiment(service)
    faults = Faults(Forward(service))
    client = make_client(faults)
    served = [client.decide(experiment="exp", unit=f"u{i}") for i in range(10)]
    faults.down = True
    for d in served:
        client.reward(d, 1.0)
    fell_back = [client.decide(experiment="exp", unit=f"v{i}", fallback="a") for i in range(5)]
    for d in fell_back:
        client.reward(d, 1.0)
    assert {(d.source, d.arm) for d in fell_back} == {("fallback", "a")}
    assert not client.flush(0.2)
    assert (client.stats.pending, client.stats.skipped_rewards) == (10, 5)
    faults.down = False
    assert wait_until(lambda: totals(service) == (10, 10.0))  # no call needed: the sender keeps retrying
    assert wait_until(lambda: client.stats.pending == 0)


def test_a_stopped_service_async(service: TestClient[Litestar]) -> None:
    unit_experiment(service)
    faults = Faults(httpx.ASGITransport(app=service.app))

    async def scenario() -> None:
        http = async_http(service, faults)
        async with http, async_client(http) as client:
            served = [await client.decide(experiment="exp", unit=f"u{i}") for i in range(10)]
            faults.down = True
            for d in served:
                client.reward(d, 1.0)
            fell_back = await client.decide(experiment="exp", unit="v", fallback="b")
            assert (fell_back.source, fell_back.arm) == ("fallback", "b")
            assert not await client.flush(0.2)
            faults.down = False
            assert await client.flush(10.0)

    run_async(service, scenario)
    assert totals(service) == (10, 10.0)


@pytest.fixture
def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (a service that is not running)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_no_service_at_all(closed_port: int) -> None:
    client = BanditClient(f"http://127.0.0.1:{closed_port}", backoff=FAST, fallbacks={"exp": "a"})
    d = client.decide(experiment="exp", unit="u1")
    client.reward(d, 1.0)
    client.reward("some-decision", 1.0)
    client.close(timeout_s=0.1)
    assert (d.source, d.arm) == ("fallback", "a")
    assert "ConnectError" in (client.stats.last_error or "")
    assert (client.stats.skipped_rewards, client.stats.pending) == (1, 1)


@pytest.fixture
def silent() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.close()


def test_a_slow_service_times_out_to_the_fallback(silent: SilentServer) -> None:
    client = BanditClient(silent.url, timeout_s=0.2, fallbacks={"exp": "a"})
    d = client.decide(experiment="exp", unit="u1")
    client.close(timeout_s=0.5)
    assert (d.source, d.arm) == ("fallback", "a")
    assert "ReadTimeout" in (client.stats.last_error or "")


def test_a_slow_service_async(silent: SilentServer) -> None:
    async def scenario() -> AsyncBanditClient:
        async with AsyncBanditClient(silent.url, timeout_s=0.2) as client:
            d = await client.decide(feature="model", unit="u1", fallback="x")
            assert (d.source, d.arm, d.feature) == ("fallback", "x", "model")
        return client

    client = asyncio.run(scenario())
    assert "ReadTimeout" in (client.stats.last_error or "")
