"""The client SDK: fallback arm when the service is away, batched and retried rewards."""

from __future__ import annotations

import json

import httpx
import pytest

from bandit_service.client import BanditClient


class FakeService:
    """An httpx transport standing in for the service; can be switched off."""

    def __init__(self) -> None:
        self.up = True
        self.status = 200
        self.batches: list[list[dict]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if not self.up:
            raise httpx.ConnectError("connection refused", request=request)
        body = json.loads(request.content)
        if request.url.path == "/v1/decisions":
            return httpx.Response(
                self.status,
                json={
                    "decision_id": "d1",
                    "experiment": body["experiment"],
                    "arm": "b",
                    "payload": {"model": "v2"},
                    "propensity": 0.5,
                    "weights_version": 3,
                    "in_experiment": True,
                },
            )
        if request.url.path == "/v1/rewards/batch":
            if self.status == 200:
                self.batches.append(body)
            return httpx.Response(self.status, json={"accepted": len(body)})
        return httpx.Response(404)


def make_client(service: FakeService, **kwargs) -> BanditClient:
    http = httpx.Client(base_url="http://bandit.test", transport=httpx.MockTransport(service))
    return BanditClient(http=http, **kwargs)


def test_decide_returns_the_service_answer():
    client = make_client(FakeService())
    d = client.decide("checkout", unit="u1", attributes={"language": "de"}, default_arm="a")
    assert (d.arm, d.decision_id, d.payload, d.fallback, d.weights_version) == ("b", "d1", {"model": "v2"}, False, 3)


@pytest.mark.parametrize("failure", ["down", "5xx"])
def test_decide_falls_back_to_the_default_arm(failure):
    service = FakeService()
    if failure == "down":
        service.up = False
    else:
        service.status = 503
    d = make_client(service).decide("checkout", unit="u1", default_arm="control")
    assert (d.arm, d.fallback, d.decision_id, d.in_experiment) == ("control", True, None, False)


def test_decide_raises_on_the_callers_own_mistake():
    service = FakeService()
    service.status = 404
    with pytest.raises(httpx.HTTPStatusError):
        make_client(service).decide("missing", default_arm="a")


def test_rewards_are_sent_in_batches():
    service = FakeService()
    client = make_client(service, batch_size=3, flush_interval_s=1e9)
    for i in range(7):
        client.reward(f"d{i}", 1.0, {"latency_ms": 12.0})
    assert [len(b) for b in service.batches] == [3, 3]
    assert client.pending == 1
    client.close()
    assert [len(b) for b in service.batches] == [3, 3, 1]
    assert service.batches[0][0]["metrics"] == {"latency_ms": 12.0}


def test_a_failed_batch_is_retried_with_the_same_idempotency_keys():
    service = FakeService()
    client = make_client(service, batch_size=2, flush_interval_s=1e9)
    service.up = False
    client.reward("d1", 1.0)
    client.reward("d2", 0.0)
    assert client.pending == 2
    service.up = True
    assert client.flush()
    assert client.pending == 0
    keys = [r["idempotency_key"] for r in service.batches[0]]
    assert len(set(keys)) == 2


def test_refused_rewards_are_dropped_and_counted():
    service = FakeService()
    service.status = 422
    client = make_client(service, batch_size=2, flush_interval_s=1e9)
    client.reward("d1", 1.0)
    client.reward("d2", 5.0)
    assert client.pending == 0 and client.dropped == 2


def test_flush_interval_uses_the_injected_clock():
    now = [0.0]
    service = FakeService()
    client = make_client(service, batch_size=100, flush_interval_s=5.0, clock=lambda: now[0])
    client.reward("d1", 1.0)
    assert service.batches == []
    now[0] = 6.0
    client.reward("d2", 1.0)
    assert [len(b) for b in service.batches] == [2]


def test_queue_is_bounded():
    service = FakeService()
    service.up = False
    client = make_client(service, batch_size=1, max_queue=2, flush_interval_s=1e9)
    for i in range(5):
        client.reward(f"d{i}", 1.0)
    assert client.pending == 2 and client.dropped == 3


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        pytest.param({"batch_size": 0}, "batch_size", id="zero-batch"),
        pytest.param({"batch_size": 10, "max_queue": 5}, "max_queue", id="queue-smaller-than-batch"),
    ],
)
def test_bad_client_settings_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_client(FakeService(), **kwargs)


def test_client_against_the_real_app(client):
    from tests.service.api import started

    started(client, "sdk")
    sdk = BanditClient(http=client, batch_size=10, flush_interval_s=1e9)
    decisions = [sdk.decide("sdk", unit=f"u{i}", default_arm="a") for i in range(5)]
    assert all(d.in_experiment and not d.fallback and d.arm in ("a", "b") for d in decisions)
    for d in decisions[:4]:
        sdk.reward(d.decision_id, 1.0)
    sdk.reward(decisions[4].decision_id, 7.0)  # not 0/1 on a bernoulli experiment: refused per item
    assert sdk.flush()
    assert sdk.dropped == 1 and sdk.pending == 0
    stats = client.get("/v1/experiments/sdk").json()["stats"]
    assert sum(s["rewarded"] for s in stats.values()) == 4


def test_items_the_service_cannot_store_now_stay_queued():
    class Flaky(FakeService):
        def __call__(self, request):
            if request.url.path == "/v1/rewards/batch" and self.status == 207:
                body = json.loads(request.content)
                results = [{"decision_id": r["decision_id"], "status": 503} for r in body]
                return httpx.Response(200, json={"recorded": 0, "failed": len(body), "results": results})
            return super().__call__(request)

    service = Flaky()
    service.status = 207
    client = make_client(service, batch_size=2, flush_interval_s=1e9)
    client.reward("d1", 1.0)
    client.reward("d2", 1.0)
    assert client.pending == 2 and client.dropped == 0
    service.status = 200
    assert client.flush() and client.pending == 0
