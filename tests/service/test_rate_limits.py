"""Per-caller rate limits: 429 with Retry-After past the burst, recovery with time, a bucket per key and group.

The apps run on a fake clock, so a bucket refills only when a test moves the clock. With auth on
the caller is the API key (keys made through POST /v1/keys); with auth off it is the client
address (the test client's own, or another one through httpx's ASGI transport).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import msgspec
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from bandit_service.app import create_app
from bandit_service.clock import FakeClock
from bandit_service.http.rate_limits import SWEEP_MIN, TokenBuckets
from bandit_service.settings import Settings
from bandit_service.storage.memory import MemoryStorage
from tests.service.api import ADMIN_KEY, api_client, experiment_body

LIMITS = Settings(
    scheduler_enabled=False,
    cache_ttl_s=0.0,
    admin_key=ADMIN_KEY,
    rate_limit_traffic_per_s=2.0,
    rate_limit_traffic_burst=4,
    rate_limit_operator_per_s=1.0,
    rate_limit_operator_burst=3,
)


def limited_app(clock: FakeClock, **overrides: Any) -> Litestar:
    """An app on the in-memory twin with the small limits of LIMITS (overridable)."""
    return create_app(msgspec.structs.replace(LIMITS, **overrides), storage=MemoryStorage(), clock=clock)


def assert_limited(response: httpx.Response, group: str, retry_after: int) -> None:
    """A 429 problem detail that names the group's limit and says when to retry."""
    assert response.status_code == 429, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["retry-after"] == str(retry_after)
    problem = response.json()
    assert problem["status"] == 429 and problem["title"] == "Too Many Requests"
    assert f"rate limit of {group} requests exceeded" in problem["detail"], problem


# --- the bucket --------------------------------------------------------------------------------


def test_a_bucket_grants_the_burst_then_says_how_long_to_wait(clock: FakeClock) -> None:
    buckets = TokenBuckets(rate=2.0, burst=3, monotonic=clock.monotonic)
    assert [buckets.take("k") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("k") == pytest.approx(0.5)  # one token at 2 per second
    clock.advance(0.25)
    assert buckets.take("k") == pytest.approx(0.25)  # half a token has come back
    clock.advance(0.25)
    assert buckets.take("k") == 0.0
    assert buckets.take("other") == 0.0  # a bucket per key


def test_a_bucket_refills_up_to_the_burst_only(clock: FakeClock) -> None:
    buckets = TokenBuckets(rate=10.0, burst=2, monotonic=clock.monotonic)
    clock.advance(3_600)
    assert [buckets.take("k") > 0 for _ in range(3)] == [False, False, True]


def test_refilled_buckets_are_dropped_so_the_keys_held_stay_bounded(clock: FakeClock) -> None:
    buckets = TokenBuckets(rate=1.0, burst=1, monotonic=clock.monotonic)
    for i in range(SWEEP_MIN):
        buckets.take(f"old-{i}")
    clock.advance(1.0)  # every old bucket has refilled
    for i in range(SWEEP_MIN):
        buckets.take(f"new-{i}")
    assert len(buckets) <= SWEEP_MIN + 1


@pytest.mark.parametrize(("rate", "burst"), [pytest.param(0.0, 1, id="no-rate"), pytest.param(1.0, 0, id="no-burst")])
def test_a_bucket_needs_a_rate_and_a_burst(rate: float, burst: int, clock: FakeClock) -> None:
    with pytest.raises(ValueError, match="rate must be > 0 and burst >= 1"):
        TokenBuckets(rate, burst, clock.monotonic)


# --- auth off: keyed by client address -----------------------------------------------------------


@pytest.fixture
def anonymous(clock: FakeClock) -> Iterator[TestClient[Litestar]]:
    """A client of an app with auth off and small limits."""
    with TestClient(limited_app(clock, auth=False)) as client:
        yield client


def test_operator_requests_beyond_the_burst_get_429_then_recover(
    anonymous: TestClient[Litestar], clock: FakeClock
) -> None:
    assert [anonymous.get("/v1/experiments").status_code for _ in range(3)] == [200, 200, 200]
    refused = anonymous.get("/v1/experiments")
    assert_limited(refused, "operator and read", retry_after=1)
    assert "client address testclient" in refused.json()["detail"]
    clock.advance(1.0)
    assert anonymous.get("/v1/experiments").status_code == 200
    assert anonymous.get("/v1/experiments").status_code == 429


def test_retry_after_is_whole_seconds_until_a_token_is_back(clock: FakeClock) -> None:
    with TestClient(limited_app(clock, auth=False, rate_limit_operator_per_s=0.25)) as client:
        for _ in range(3):
            client.get("/v1/experiments")
        assert_limited(client.get("/v1/experiments"), "operator and read", retry_after=4)
        clock.advance(3.5)
        assert_limited(client.get("/v1/experiments"), "operator and read", retry_after=1)  # 0.5 s, rounded up
        clock.advance(0.5)
        assert client.get("/v1/experiments").status_code == 200


def test_decisions_and_rewards_share_the_traffic_bucket_apart_from_the_operator_one(
    anonymous: TestClient[Litestar], clock: FakeClock
) -> None:
    assert anonymous.post("/v1/experiments", json=experiment_body()).status_code == 201
    assert anonymous.post("/v1/experiments/exp/start").status_code == 200
    assert anonymous.get("/v1/experiments").status_code == 200  # the operator burst (3) is spent
    assert anonymous.get("/v1/experiments").status_code == 429
    decisions = [anonymous.post("/v1/decisions", json={"experiment": "exp", "unit": f"u{i}"}) for i in range(3)]
    assert [d.status_code for d in decisions] == [200, 200, 200]
    reward = anonymous.post("/v1/rewards", json={"decision_id": decisions[0].json()["decision_id"], "reward": 1})
    assert reward.status_code == 200, reward.text  # the fourth of the traffic burst
    assert_limited(anonymous.post("/v1/decisions", json={"experiment": "exp", "unit": "u9"}), "decision and reward", 1)
    assert_limited(anonymous.post("/v1/rewards/batch", json={"rewards": []}), "decision and reward", 1)


def test_public_endpoints_are_never_limited(anonymous: TestClient[Litestar]) -> None:
    for _ in range(4):
        anonymous.get("/v1/experiments")
    assert anonymous.get("/v1/experiments").status_code == 429
    assert {anonymous.get("/healthz").status_code for _ in range(20)} == {200}


def test_a_rate_of_zero_turns_a_group_limit_off(clock: FakeClock) -> None:
    with TestClient(limited_app(clock, auth=False, rate_limit_operator_per_s=0)) as client:
        assert {client.get("/v1/experiments").status_code for _ in range(20)} == {200}


def test_each_client_address_has_its_own_buckets(clock: FakeClock) -> None:
    app = limited_app(clock, auth=False)

    async def statuses() -> dict[str, list[int]]:
        seen: dict[str, list[int]] = {}
        async with app.lifespan():
            for host in ("10.0.0.1", "10.0.0.1", "10.0.0.2"):
                transport = httpx.ASGITransport(app=app, client=(host, 40_000))
                async with httpx.AsyncClient(transport=transport, base_url="http://bandit.test") as client:
                    seen.setdefault(host, []).extend(
                        [(await client.get("/v1/experiments")).status_code for _ in range(2)]
                    )
        return seen

    assert asyncio.run(statuses()) == {"10.0.0.1": [200, 200, 200, 429], "10.0.0.2": [200, 200]}


# --- auth on: keyed by API key -------------------------------------------------------------------


def _make_key(admin: TestClient[Litestar], name: str, role: str) -> dict[str, str]:
    """A new key's Authorization header."""
    response = admin.post("/v1/keys", json={"name": name, "role": role})
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['key']}"}


def test_each_api_key_has_its_own_buckets(clock: FakeClock) -> None:
    with api_client(limited_app(clock, rate_limit_operator_burst=5)) as admin:
        alice = _make_key(admin, "alice", "read")
        bob = _make_key(admin, "bob", "read")
        assert [admin.get("/v1/experiments", headers=alice).status_code for _ in range(6)] == [200] * 5 + [429]
        refused = admin.get("/v1/experiments", headers=alice)
        assert_limited(refused, "operator and read", retry_after=1)
        assert "API key 'alice'" in refused.json()["detail"]
        assert [admin.get("/v1/experiments", headers=bob).status_code for _ in range(5)] == [200] * 5
        # The admin made two keys (2 of its 5): its own bucket, apart from alice's and bob's.
        assert [admin.get("/v1/keys").status_code for _ in range(4)] == [200, 200, 200, 429]


def test_a_refused_key_is_refused_before_it_spends_anything(clock: FakeClock) -> None:
    with api_client(limited_app(clock), key="not-a-key-" + "x" * 30) as stranger:
        assert {stranger.get("/v1/experiments").status_code for _ in range(10)} == {401}
