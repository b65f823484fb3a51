"""BanditClient against the real app in-process: decisions, fallbacks, rewards, flushing, closing.

The defects issue 13 quotes of the old client (bandit_service/client/_legacy.py) each have a test
here that it failed: `test_the_readme_flow_with_the_service_down_loses_nothing`,
`test_a_batch_refused_whole_is_split_so_the_valid_rewards_count`,
`test_an_unknown_experiment_falls_back`, `test_a_reward_is_sent_without_another_call`,
`test_a_failed_send_is_retried_in_the_background`, `test_rewards_from_many_threads_count_exactly`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import httpx
import msgspec
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from bandit_service.client import BanditClient, BanditError, ClientDecision, Fallback
from tests.client.helpers import BASE_URL, totals, unit_experiment
from tests.client.transports import Faults, Forward, wait_until
from tests.service.api import ADMIN_KEY, started

MakeClient = Callable[..., BanditClient]


def test_decide_by_experiment_and_by_feature(service: TestClient[Litestar], make_client: MakeClient) -> None:
    service.put("/v1/features/model", json={"default_payload": None})
    started(
        service, "exp", feature="model", arms=[{"name": "a", "payload": {"m": 1}}, {"name": "b", "payload": {"m": 2}}]
    )
    client = make_client()
    d = client.decide(experiment="exp", unit="u1", attributes={"language": "de"})
    assert (d.source, d.experiment, d.unit, d.in_experiment) == ("service", "exp", "u1", True)
    assert d.payload == {"m": 1 if d.arm == "a" else 2} and d.decision_id and d.weights_version == 1
    by_feature = client.decide(feature="model", unit="u1")
    assert (by_feature.feature, by_feature.experiment, by_feature.arm) == ("model", "exp", d.arm)
    assert client.stats.remote_decisions == 2


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        pytest.param({}, ValueError, "exactly one", id="neither"),
        pytest.param({"experiment": "e", "feature": "f"}, ValueError, "exactly one", id="both"),
        pytest.param({"experiment": "e", "fallback": 1}, TypeError, "fallback", id="fallback-type"),
    ],
)
def test_a_malformed_decide_raises_at_the_call(
    make_client: MakeClient, kwargs: dict[str, object], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        make_client().decide(**kwargs)  # type: ignore[arg-type]


def test_the_readme_flow_with_the_service_down_loses_nothing(
    service: TestClient[Litestar], make_client: MakeClient
) -> None:
    """Issue 13: down, `decide` fell back and its reward(None) got the valid reward of the same batch dropped."""
    unit_experiment(service)
    faults = Faults(Forward(service))
    client = make_client(faults, fallbacks={"exp": Fallback(arm="a", payload={"model": "v1"})})
    faults.down = True
    fell_back = client.decide(experiment="exp", unit="u1")
    assert (fell_back.source, fell_back.arm, fell_back.payload, fell_back.decision_id) == (
        "fallback",
        "a",
        {"model": "v1"},
        None,
    )
    client.reward(fell_back, 1.0)  # counted, never sent
    faults.down = False
    served = client.decide(experiment="exp", unit="u2")
    client.reward(served, 1.0)
    assert client.flush(5.0)
    stats = client.stats
    assert (stats.sent, stats.refused, stats.skipped_rewards, stats.dropped) == (1, 0, 1, 0)
    assert totals(service) == (1, 1.0)


def test_a_batch_refused_whole_is_split_so_the_valid_rewards_count(
    service: TestClient[Litestar], make_client: MakeClient
) -> None:
    """The old client dropped every reward of a batch refused whole (a 4xx for the batch)."""
    unit_experiment(service)
    forward = Forward(service)

    class Strict(httpx.BaseTransport):
        """A service that refuses a whole batch holding a reward of 0.5 (as an older server refused reward(None))."""

        def handle_request(self, request: httpx.Request) -> httpx.Response:
            body = msgspec.json.decode(request.content) if request.url.path == "/v1/rewards/batch" else []
            if any(item["reward"] == 0.5 for item in body):
                return httpx.Response(422, json={"status": 422, "detail": "bad item", "field": "[3].reward"})
            return forward.handle_request(request)

    client = make_client(Strict(), batch_size=8, flush_interval_s=60.0)
    decisions = [client.decide(experiment="exp", unit=f"u{i}") for i in range(8)]
    for i, d in enumerate(decisions):
        client.reward(d, 0.5 if i == 3 else 1.0)
    assert client.flush(5.0)
    assert (client.stats.sent, client.stats.refused) == (7, 1)
    assert totals(service) == (7, 7.0)


def test_one_refused_item_does_not_drop_the_others(service: TestClient[Litestar], make_client: MakeClient) -> None:
    started(service, "exp")  # bernoulli: a reward of 7 is refused per item
    client = make_client(batch_size=10, flush_interval_s=60.0)
    decisions = [client.decide(experiment="exp", unit=f"u{i}") for i in range(5)]
    for d in decisions[:4]:
        client.reward(d, 1.0)
    client.reward(decisions[4], 7.0)
    assert client.flush(5.0)
    stats = client.stats
    assert (stats.sent, stats.refused, stats.pending) == (4, 1, 0)
    assert "422" in (stats.last_error or "")
    assert totals(service) == (4, 4.0)


def test_an_unknown_experiment_falls_back(make_client: MakeClient, caplog: pytest.LogCaptureFixture) -> None:
    """The old client raised httpx.HTTPStatusError."""
    client = make_client(fallbacks={"nope": "blue"})
    with caplog.at_level(logging.WARNING, "bandit_service.client"):
        first = client.decide(experiment="nope", unit="u1")
        second = client.decide(experiment="nope", unit="u2")
    assert (first.source, first.arm, second.arm) == ("fallback", "blue", "blue")
    assert sum("no experiment with key 'nope'" in r.getMessage() for r in caplog.records) == 1  # once per key


def test_an_unknown_key_raises_when_asked_to(make_client: MakeClient) -> None:
    client = make_client(on_unknown="raise")
    with pytest.raises(BanditError, match="404: no experiment with key 'nope'") as raised:
        client.decide(experiment="nope")
    assert raised.value.field == "experiment"
    with pytest.raises(BanditError, match="feature"):
        client.decide(feature="nope")


def test_the_apps_own_bad_request_falls_back_with_an_error_logged(
    service: TestClient[Litestar], make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    started(service, "exp")
    client = make_client()
    with caplog.at_level(logging.ERROR, "bandit_service.client"):
        bad_attribute = client.decide(experiment="exp", unit="u1", attributes={"bad name!": 1}, fallback="b")
        long_unit = client.decide(experiment="exp", unit="u" * 300, fallback="b")  # the service says 422
    assert {(d.source, d.arm) for d in (bad_attribute, long_unit)} == {("fallback", "b")}
    assert "unit" in (client.stats.last_error or "")
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(messages) == 1 and "attributes" in messages[0]  # once per key and status


def test_a_wrong_api_key_falls_back(service: TestClient[Litestar], make_client: MakeClient) -> None:
    started(service, "exp")
    client = make_client(api_key="not-a-key")
    d = client.decide(experiment="exp", unit="u1", fallback=Fallback(arm="a"))
    assert (d.source, d.arm) == ("fallback", "a")
    assert (client.stats.last_error or "").startswith("401")


def test_the_fallback_order(service: TestClient[Litestar], make_client: MakeClient) -> None:
    """Per call, else the client's map, else nothing; an arm without payload gets the payload seen for it."""
    started(service, "exp")
    faults = Faults(Forward(service))
    client = make_client(faults, fallbacks={"exp": "b"})
    faults.down = True
    by_map = client.decide(experiment="exp", unit="u1")
    by_call = client.decide(experiment="exp", unit="u1", fallback=Fallback(arm="x", payload=3))
    unknown = client.decide(experiment="other", unit="u1")
    assert (by_map.arm, by_call.arm, by_call.payload) == ("b", "x", 3)
    assert (unknown.arm, unknown.payload, unknown.source) == (None, None, "fallback")
    assert client.stats.fallback_decisions == 3


def test_a_fallback_arm_gets_the_payload_the_service_served_for_it(
    service: TestClient[Litestar], make_client: MakeClient
) -> None:
    started(service, "exp")
    faults = Faults(Forward(service))
    client = make_client(faults)
    served = client.decide(experiment="exp", unit="u1")
    faults.down = True
    fell_back = client.decide(experiment="exp", unit="u1", fallback=served.arm)
    assert (fell_back.source, fell_back.arm, fell_back.payload) == ("fallback", served.arm, served.payload)


def test_a_reward_is_sent_without_another_call(service: TestClient[Litestar], make_client: MakeClient) -> None:
    """The old client sent only inside reward()/flush()/close(): a reward was still pending after 1.2 s idle."""
    unit_experiment(service)
    client = make_client(flush_interval_s=0.05)
    client.reward(client.decide(experiment="exp", unit="u1"), 1.0)
    assert wait_until(lambda: totals(service) == (1, 1.0))
    assert wait_until(lambda: client.stats.pending == 0)


def test_a_full_batch_is_sent_at_once(service: TestClient[Litestar], make_client: MakeClient) -> None:
    unit_experiment(service)
    client = make_client(batch_size=5, flush_interval_s=3600.0)
    for i in range(5):
        client.reward(client.decide(experiment="exp", unit=f"u{i}"), 1.0)
    assert wait_until(lambda: totals(service) == (5, 5.0))


def test_a_failed_send_is_retried_in_the_background(service: TestClient[Litestar], make_client: MakeClient) -> None:
    """The old client retried only on the next flush, without backoff."""
    unit_experiment(service)
    faults = Faults(Forward(service), ["503", "429", "500", "refused"] + ["ok"] * 100, paths=["/v1/rewards/batch"])
    client = make_client(faults)
    client.reward(client.decide(experiment="exp", unit="u1"), 1.0)
    assert wait_until(lambda: totals(service) == (1, 1.0))
    assert client.stats.retried == 4 and faults.seen["ok"] == 1


def test_rewards_from_many_threads_count_exactly(service: TestClient[Litestar], make_client: MakeClient) -> None:
    """The old client kept its queue in an unlocked list."""
    unit_experiment(service)
    client = make_client(batch_size=5)  # the old client flushed from the rewarding threads: it lost 17-34 of 200
    decisions = [client.decide(experiment="exp", unit=f"u{i}") for i in range(40)]
    barrier = threading.Barrier(8)

    def work(thread: int) -> None:
        barrier.wait()
        for round_ in range(25):
            client.reward(decisions[(thread * 5 + round_) % 40], 1.0)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert client.flush(10.0)
    assert (client.stats.sent, client.stats.refused) == (200, 0)
    assert totals(service) == (40, 200.0)


def test_a_batch_whose_answer_was_lost_is_sent_again_with_the_same_keys(
    service: TestClient[Litestar], make_client: MakeClient
) -> None:
    unit_experiment(service)
    faults = Faults(Forward(service), ["lost", "ok"], paths=["/v1/rewards/batch"])
    bodies: list[list[dict[str, object]]] = []

    class Recording(httpx.BaseTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            if request.url.path == "/v1/rewards/batch":
                bodies.append(msgspec.json.decode(request.content))
            return faults.handle_request(request)

    client = make_client(Recording(), batch_size=3, flush_interval_s=3600.0)
    for i in range(3):
        client.reward(client.decide(experiment="exp", unit=f"u{i}"), 1.0)
    assert client.flush(5.0)
    assert len(bodies) == 2 and bodies[0] == bodies[1]  # the same items, the same idempotency keys
    assert totals(service) == (3, 3.0)  # the first send was stored: the second counted nothing again


def test_a_full_queue_drops_the_oldest(
    service: TestClient[Litestar], make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    unit_experiment(service)
    faults = Faults(Forward(service))
    client = make_client(faults, batch_size=2, max_queue=3)
    decisions = [client.decide(experiment="exp", unit=f"u{i}") for i in range(5)]
    faults.down = True
    with caplog.at_level(logging.WARNING, "bandit_service.client"):
        for i, d in enumerate(decisions):
            client.reward(d, float(i))
    assert (client.stats.dropped, client.stats.pending) == (2, 3)
    assert any("reward queue full (3): dropped the oldest" in r.getMessage() for r in caplog.records)
    faults.down = False
    assert client.flush(5.0)
    assert totals(service) == (3, 2.0 + 3.0 + 4.0)  # the newest three


def test_flush_and_close_keep_to_their_timeout(service: TestClient[Litestar], make_client: MakeClient) -> None:
    unit_experiment(service)
    faults = Faults(Forward(service))
    client = make_client(faults)
    client.reward(client.decide(experiment="exp", unit="u1"), 1.0)
    faults.down = True
    assert not client.flush(0.2)
    client.close(timeout_s=0.2)
    assert client.stats.pending == 1
    after = client.decide(experiment="exp", unit="u1", fallback="a")
    client.reward(("exp", "u1"), 1.0)
    assert (after.source, client.stats.dropped) == ("fallback", 1)


def test_the_context_manager_flushes(service: TestClient[Litestar]) -> None:
    unit_experiment(service)
    http = httpx.Client(base_url=BASE_URL, transport=Forward(service))
    with BanditClient(http=http, flush_interval_s=3600.0, api_key=ADMIN_KEY) as client:
        client.reward(client.decide(experiment="exp", unit="u1"), 2.0)
    http.close()
    assert totals(service) == (1, 2.0)


def test_rewards_by_unit_and_by_decision_id(service: TestClient[Litestar], make_client: MakeClient) -> None:
    unit_experiment(service)
    client = make_client()
    d = client.decide(experiment="exp", unit="u1")
    client.reward(("exp", "u1"), 1.0, metrics={"latency_ms": 12.0})
    assert d.decision_id is not None
    client.reward(d.decision_id, 2.0)
    assert client.flush(5.0)
    assert totals(service) == (1, 3.0)
    arm = service.get("/v1/experiments/exp").json()["stats"][d.arm]
    assert arm["metrics"]["latency_ms"]["n"] == 1


def test_rewards_outside_the_experiment_are_skipped(service: TestClient[Litestar], make_client: MakeClient) -> None:
    unit_experiment(service)
    service.put("/v1/experiments/exp/exposure", json={"exposure": 0.0})
    client = make_client()
    d = client.decide(experiment="exp", unit="u1")
    client.reward(d, 1.0)
    client.reward(None, 1.0)  # a fallback decision's id
    assert not d.in_experiment
    assert (client.stats.skipped_rewards, client.stats.pending) == (2, 0)


@pytest.mark.parametrize(
    ("target", "value", "metrics", "error", "match"),
    [
        pytest.param(42, 1.0, None, TypeError, "ClientDecision", id="target-type"),
        pytest.param("d1", "1", None, TypeError, "number", id="value-type"),
        pytest.param("d1", float("nan"), None, ValueError, "reward", id="nan"),
        pytest.param("d1", 1e16, None, ValueError, "reward", id="too-large"),
        pytest.param("d1", 1.0, {"bad name": 1.0}, ValueError, "metrics", id="metric-name"),
        pytest.param(("exp", ""), 1.0, None, ValueError, "unit", id="empty-unit"),
    ],
)
def test_a_malformed_reward_raises_at_the_call(
    make_client: MakeClient, target: object, value: object, metrics: object, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        make_client().reward(target, value, metrics)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("options", "match"),
    [
        pytest.param({"batch_size": 0}, "batch_size", id="zero-batch"),
        pytest.param({"batch_size": 1001}, "batch_size", id="batch-over-the-service-limit"),
        pytest.param({"batch_size": 10, "max_queue": 5}, "max_queue", id="queue-smaller-than-batch"),
        pytest.param({"flush_interval_s": 0.0}, "flush_interval_s", id="no-interval"),
        pytest.param({"timeout_s": 0.0}, "timeout_s", id="no-timeout"),
        pytest.param({"on_unknown": "ignore"}, "on_unknown", id="on-unknown"),
        pytest.param({"fallbacks": {"exp": 1}}, "fallback", id="fallback-type"),
    ],
)
def test_bad_client_settings_are_refused(options: dict[str, object], match: str) -> None:
    with pytest.raises((ValueError, TypeError), match=match):
        BanditClient("http://127.0.0.1:9", **options)  # type: ignore[arg-type]


def test_the_decision_is_a_frozen_value(service: TestClient[Litestar], make_client: MakeClient) -> None:
    started(service, "exp")
    d = make_client().decide(experiment="exp", unit="u1")
    assert isinstance(d, ClientDecision) and not d.fallback
    with pytest.raises(AttributeError):
        d.arm = "x"  # type: ignore[misc]
