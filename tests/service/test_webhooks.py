"""Webhooks against a real local HTTP receiver: signed, retried after an error, logged, never on a request's path."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple

import msgspec
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from bandit_service.app import create_app, runtime_of
from bandit_service.clock import FakeClock
from bandit_service.core.webhooks import MAX_ATTEMPTS, retry_delay_s, signature_valid
from bandit_service.ids import sequential_ids
from bandit_service.services.scheduler import Scheduler
from bandit_service.services.webhooks import WebhookService
from bandit_service.settings import Settings
from bandit_service.storage.memory import MemoryStorage
from tests.service.api import TEST_SETTINGS, api_client, call, experiment_body, started

SECRET = "whsec-test-0123456789abcdef"


class Received(NamedTuple):
    """One request the receiver got."""

    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes


Answer = Callable[[Received, int], int]
"""The receiver's status for a request, given how many earlier requests carried the same event id."""


def fail_first(request: Received, earlier: int) -> int:
    """500 to the first request of each event, 204 to the next ones."""
    return 500 if earlier == 0 else 204


class Receiver:
    """A real HTTP server on 127.0.0.1 (a free port) in a thread: records every request, answers by `answer`."""

    def __init__(self, answer: Answer) -> None:
        self.requests: list[Received] = []
        self.release = threading.Event()  # a receiver that stalls waits for this (set at close)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                got = Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                with lock:
                    earlier = sum(
                        r.headers.get("x-bandit-event-id") == got.headers.get("x-bandit-event-id")
                        for r in receiver.requests
                    )
                    receiver.requests.append(got)
                status = answer(got, earlier)
                if status == 0:  # stall: no answer until the test is over
                    receiver.release.wait(10)
                    return
                try:
                    self.send_response(status)
                    if 300 <= status < 400:
                        self.send_header("Location", "/elsewhere")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the sender gave up first

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

        lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.block_on_close = False
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def make_receiver() -> Iterator[Callable[[Answer], Receiver]]:
    """Start receivers that answer as told; all are stopped after the test."""
    made: list[Receiver] = []

    def make(answer: Answer) -> Receiver:
        made.append(Receiver(answer))
        return made[-1]

    yield make
    for receiver in made:
        receiver.close()


@pytest.fixture
def receiver(make_receiver: Callable[[Answer], Receiver]) -> Receiver:
    """A receiver that answers 500 to each event's first request and 204 afterwards."""
    return make_receiver(fail_first)


@contextmanager
def webhook_client(clock: FakeClock, storage: Any = None, **settings: Any) -> Iterator[TestClient[Litestar]]:
    """A running app with a webhook secret (on the twin unless `storage` is given)."""
    values = {"webhook_secret": SECRET, **settings}
    app = create_app(
        msgspec.structs.replace(TEST_SETTINGS, **values),
        storage=storage if storage is not None else MemoryStorage(),
        clock=clock,
        ids=sequential_ids("wh"),
    )
    with api_client(app) as client:
        yield client


def deliver(client: TestClient[Litestar], clock: FakeClock) -> int:
    """Run the scheduler's delivery job once, at the fake clock's time; the attempts it made."""
    attempts: int = call(client, runtime_of(client.app).services.webhooks.deliver_due, clock.time())
    return attempts


def log(client: TestClient[Litestar], path: str = "/v1/experiments/exp/webhooks") -> list[dict[str, Any]]:
    response = client.get(path)
    assert response.status_code == 200, response.text
    deliveries: list[dict[str, Any]] = response.json()["deliveries"]
    return deliveries


def verify(secret: str, body: bytes, header: str, now: float, tolerance_s: int = 300) -> bool:
    """The README's receiver-side check (written from the scheme, not from the service's code)."""
    parts = dict(p.split("=", 1) for p in header.split(","))
    expected = hmac.new(secret.encode(), f"{parts['t']}.".encode() + body, hashlib.sha256).hexdigest()
    return abs(now - int(parts["t"])) <= tolerance_s and hmac.compare_digest(expected, parts["v1"])


def rfc3339(timestamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


def test_a_webhook_is_retried_after_a_receiver_error_signed_and_logged(clock, receiver) -> None:
    with webhook_client(clock) as client:
        started(client, webhook_url=receiver.url)  # two audit entries: create, start
        events = client.get("/v1/experiments/exp/events").json()["events"]
        assert deliver(client, clock) == 2
        first = log(client)
        assert [(d["type"], d["status"], d["attempts"], d["last_status_code"]) for d in first] == [
            ("start", "pending", 1, 500),
            ("create", "pending", 1, 500),
        ]
        assert {d["last_error"] for d in first} == {"the receiver answered 500"}
        assert {d["next_attempt_at"] for d in first} == {rfc3339(clock.time() + 10)}
        assert deliver(client, clock) == 0  # the retry waits for its backoff
        clock.advance(retry_delay_s(1))
        sent_at = clock.time()
        assert deliver(client, clock) == 2
        second = log(client)
        assert [(d["type"], d["status"], d["attempts"], d["last_status_code"]) for d in second] == [
            ("start", "delivered", 2, 204),
            ("create", "delivered", 2, 204),
        ]
        assert {(d["last_error"], d["next_attempt_at"], d["delivered_at"]) for d in second} == {
            (None, None, rfc3339(sent_at))
        }
        assert [d["url"] for d in second] == [receiver.url, receiver.url]
        clock.advance(3600)
        assert deliver(client, clock) == 0  # delivered: never sent again

    assert len(receiver.requests) == 4
    by_event: dict[str, list[Received]] = {}
    for request in receiver.requests:
        by_event.setdefault(request.headers["x-bandit-event-id"], []).append(request)
    assert sorted(by_event) == sorted(str(e["id"]) for e in events)
    for entry in events:
        failed, delivered = by_event[str(entry["id"])]
        assert failed.body == delivered.body  # the same event on every attempt: receivers dedupe on its id
        assert delivered.path == "/hook"
        assert delivered.headers["content-type"] == "application/json"
        assert json.loads(delivered.body) == {
            "id": entry["id"],
            "type": entry["action"],
            "experiment": "exp",
            "occurred_at": entry["time"],
            "actor": entry["actor"],
            "before": entry["before"],
            "after": entry["after"],
        }
        header = delivered.headers["x-bandit-signature"]
        assert header.startswith(f"t={int(sent_at)},v1=")
        assert verify(SECRET, delivered.body, header, sent_at)
        assert not verify("another-secret-0123456789", delivered.body, header, sent_at)
        assert not verify(SECRET, delivered.body.replace(b'"exp"', b'"other"'), header, sent_at)
        assert not verify(SECRET, delivered.body, header, sent_at + 301)  # a stale replay
        # The library helper agrees with the README's check.
        assert signature_valid(SECRET, delivered.body, header, sent_at)
        assert not signature_valid("another-secret-0123456789", delivered.body, header, sent_at)
        assert not signature_valid(SECRET, delivered.body, header, sent_at + 301)
        assert not signature_valid(SECRET, delivered.body, "v1=" + header.split("v1=")[1], sent_at)


def closed_port() -> int:
    """A local port nothing listens on (connections to it are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_a_refused_connection_is_retried_with_backoff_then_failed_and_requests_never_fail(clock) -> None:
    url = f"http://user:token@127.0.0.1:{closed_port()}/hook?key=token"
    with webhook_client(clock) as client:
        created = client.post("/v1/experiments", json=experiment_body(webhook_url=url))
        assert created.status_code == 201, created.text
        for attempt in range(1, MAX_ATTEMPTS + 1):
            assert deliver(client, clock) == 1
            [entry] = log(client)
            assert (entry["attempts"], entry["last_status_code"]) == (attempt, None)
            assert "Connect" in entry["last_error"] and "token" not in entry["last_error"]
            assert deliver(client, clock) == 0
            if attempt < MAX_ATTEMPTS:
                assert entry["status"] == "pending"
                clock.advance(retry_delay_s(attempt))
        assert entry["status"] == "failed" and entry["next_attempt_at"] is None
        clock.advance(86_400)
        assert deliver(client, clock) == 0
        # The operator's requests never wait for, nor fail with, a receiver that is down.
        for action in ("start", "pause", "start", "complete"):
            assert client.post(f"/v1/experiments/exp/{action}").status_code == 200
        assert [d["status"] for d in log(client)] == ["pending"] * 4 + ["failed"]
        assert [d["status"] for d in log(client, "/v1/webhooks?status=failed")] == ["failed"]


def test_retry_delays_grow_three_fold_to_an_hour() -> None:
    assert [retry_delay_s(n) for n in range(1, MAX_ATTEMPTS + 1)] == [
        10,
        30,
        90,
        270,
        810,
        2430,
        3600,
        3600,
        3600,
        3600,
    ]


def test_the_global_url_receives_every_experiments_events_once(clock, make_receiver) -> None:
    everything = make_receiver(lambda request, earlier: 204)
    own = make_receiver(lambda request, earlier: 200)
    with webhook_client(clock, webhook_url=everything.url) as client:
        for key, url in (("one", own.url), ("two", None), ("three", everything.url)):
            assert client.post("/v1/experiments", json=experiment_body(key, webhook_url=url)).status_code == 201
        assert client.post("/v1/experiments/two/start").status_code == 200
        assert deliver(client, clock) == 5
        assert [(d["experiment"], d["type"], d["status"]) for d in log(client, "/v1/webhooks")] == [
            ("two", "start", "delivered"),
            ("three", "create", "delivered"),
            ("two", "create", "delivered"),
            ("one", "create", "delivered"),
            ("one", "create", "delivered"),
        ]
        assert [d["url"] for d in log(client, "/v1/experiments/one/webhooks")] == [everything.url, own.url]
        assert log(client, "/v1/webhooks?status=pending") == []
    received = sorted((json.loads(r.body)["experiment"], json.loads(r.body)["type"]) for r in everything.requests)
    assert received == [("one", "create"), ("three", "create"), ("two", "create"), ("two", "start")]
    assert [json.loads(r.body)["experiment"] for r in own.requests] == ["one"]


def test_a_redirect_is_an_answer_not_followed(clock, make_receiver) -> None:
    moved = make_receiver(lambda request, earlier: 307)
    with webhook_client(clock) as client:
        client.post("/v1/experiments", json=experiment_body(webhook_url=moved.url))
        assert deliver(client, clock) == 1
        [entry] = log(client)
    assert (entry["status"], entry["last_status_code"]) == ("pending", 307)
    assert entry["last_error"] == "the receiver answered 307 (redirects are not followed)"
    assert [r.path for r in moved.requests] == ["/hook"]


def test_a_receiver_that_does_not_answer_in_time_is_retried(clock, make_receiver) -> None:
    stalled = make_receiver(lambda request, earlier: 0)
    with webhook_client(clock) as client:
        client.post("/v1/experiments", json=experiment_body(webhook_url=stalled.url))
        services = runtime_of(client.app).services
        impatient = WebhookService(services.storage, clock, SECRET, timeout_s=0.2)
        try:
            assert call(client, impatient.deliver_due, clock.time()) == 1
        finally:
            call(client, impatient.close)
        [entry] = log(client)
    assert (entry["status"], entry["attempts"], entry["last_status_code"]) == ("pending", 1, None)
    assert entry["last_error"] == "no answer within 0.2 s"


def test_two_senders_never_send_one_delivery_twice(clock, make_receiver) -> None:
    ok = make_receiver(lambda request, earlier: 204)
    with webhook_client(clock) as client:
        started(client, webhook_url=ok.url)
        services = runtime_of(client.app).services
        replica = WebhookService(services.storage, clock, SECRET)

        async def both() -> list[int]:
            # Both read the same due list before either claims: the compare-and-set lets one send each.
            return list(
                await asyncio.gather(services.webhooks.deliver_due(clock.time()), replica.deliver_due(clock.time()))
            )

        try:
            assert sum(call(client, both)) == 2
        finally:
            call(client, replica.close)
        assert [(d["status"], d["attempts"]) for d in log(client)] == [("delivered", 1)] * 2
    assert sorted(r.headers["x-bandit-event-id"] for r in ok.requests) == ["1", "2"]


def test_queued_events_survive_a_restart_on_a_real_database(make_app, clock, make_receiver) -> None:
    """The outbox is written with the change: events queued before a stop are delivered after the restart."""
    ok = make_receiver(lambda request, earlier: 204)
    with api_client(make_app(webhook_secret=SECRET)) as client:
        started(client, webhook_url=ok.url)
    with api_client(make_app(webhook_secret=SECRET)) as client:
        assert deliver(client, clock) == 2
        assert [(d["type"], d["status"]) for d in log(client)] == [("start", "delivered"), ("create", "delivered")]
    assert sorted(json.loads(r.body)["type"] for r in ok.requests) == ["create", "start"]


def test_the_real_scheduler_delivers_webhooks(clock, make_receiver) -> None:
    ok = make_receiver(lambda request, earlier: 204)
    with webhook_client(clock, scheduler_enabled=True, scheduler_tick_s=0.05) as client:
        started(client, webhook_url=ok.url)
        deadline = time.monotonic() + 20.0  # a generous bound, not a timing assertion
        while len(ok.requests) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sorted(json.loads(r.body)["type"] for r in ok.requests) == ["create", "start"]


def test_the_scheduler_job_sends_due_deliveries_and_nothing_once_stopped(clock, make_receiver) -> None:
    ok = make_receiver(lambda request, earlier: 204)
    with webhook_client(clock) as client:
        started(client, webhook_url=ok.url)
        services = runtime_of(client.app).services

        def scheduler() -> Scheduler:
            return Scheduler(services.reweighter, services.rewards, clock, 60.0, webhooks=services.webhooks)

        async def stopped_then_run() -> None:
            stopped = scheduler()  # a run APScheduler submitted just before `stop` starts after it
            await stopped.stop()
            await stopped.deliver_webhooks()

        call(client, stopped_then_run)
        assert [d["attempts"] for d in log(client)] == [0, 0] and ok.requests == []
        call(client, scheduler().deliver_webhooks)
        assert [d["status"] for d in log(client)] == ["delivered", "delivered"]
    assert len(ok.requests) == 2


def test_without_a_secret_no_webhook_url_is_accepted(client, clock) -> None:
    refused = client.post("/v1/experiments", json=experiment_body(webhook_url="https://hooks.example/bandit"))
    assert refused.status_code == 422
    assert refused.json()["field"] == "webhook_url" and "BANDIT_WEBHOOK_SECRET" in refused.json()["detail"]
    assert client.post("/v1/experiments", json=experiment_body()).status_code == 201
    patched = client.patch("/v1/experiments/exp", json={"webhook_url": "https://hooks.example/bandit"})
    assert patched.status_code == 422 and patched.json()["field"] == "webhook_url"
    assert client.patch("/v1/experiments/exp", json={"webhook_url": None}).status_code == 200
    assert client.get("/v1/experiments/exp/webhooks").json() == {
        "experiment": "exp",
        "deliveries": [],
        "next_before": None,
    }


def test_a_stored_url_without_a_secret_is_logged_as_not_sent(clock, make_receiver) -> None:
    ok = make_receiver(lambda request, earlier: 204)
    with webhook_client(clock) as client:
        client.post("/v1/experiments", json=experiment_body(webhook_url=ok.url))
        unsigned = WebhookService(runtime_of(client.app).services.storage, clock, None)  # a restart without the secret
        try:
            assert call(client, unsigned.deliver_due, clock.time()) == 1
        finally:
            call(client, unsigned.close)
        [entry] = log(client)
    assert (entry["status"], entry["attempts"]) == ("pending", 1)
    assert "BANDIT_WEBHOOK_SECRET" in entry["last_error"]
    assert ok.requests == []  # never sent unsigned


@pytest.mark.parametrize(
    ("env", "match"),
    [
        pytest.param(
            {"BANDIT_WEBHOOK_URL": "https://hooks.example/b"}, "BANDIT_WEBHOOK_SECRET", id="url-without-secret"
        ),
        pytest.param(
            {"BANDIT_WEBHOOK_URL": "https://hooks.example/b", "BANDIT_WEBHOOK_SECRET": "short"},
            "BANDIT_WEBHOOK_SECRET",
            id="short-secret",
        ),
        pytest.param({"BANDIT_WEBHOOK_URL": "ftp://hooks.example/b"}, "BANDIT_WEBHOOK_URL", id="not-http"),
    ],
)
def test_webhook_settings_are_refused_when_they_cannot_work(env, match) -> None:
    with pytest.raises(ValueError, match=match):
        Settings.from_env(env)


def test_webhook_settings_are_read_from_the_environment() -> None:
    env = {"BANDIT_WEBHOOK_URL": "https://hooks.example/b", "BANDIT_WEBHOOK_SECRET": SECRET}
    settings = Settings.from_env(env)
    assert (settings.webhook_url, settings.webhook_secret) == ("https://hooks.example/b", SECRET)
    assert Settings.from_env({"BANDIT_WEBHOOK_SECRET": SECRET}).webhook_url is None  # a secret alone is fine


def test_the_delivery_log_pages_newest_first(clock, make_receiver) -> None:
    ok = make_receiver(lambda request, earlier: 204)
    with webhook_client(clock) as client:
        started(client, webhook_url=ok.url)
        client.post("/v1/experiments/exp/pause")
        first = client.get("/v1/experiments/exp/webhooks?limit=2").json()
        assert [d["type"] for d in first["deliveries"]] == ["pause", "start"]
        rest = client.get(f"/v1/experiments/exp/webhooks?limit=2&before={first['next_before']}").json()
        assert ([d["type"] for d in rest["deliveries"]], rest["next_before"]) == (["create"], None)
        assert client.get("/v1/experiments/nope/webhooks").status_code == 404
        bad = client.get("/v1/webhooks?status=lost")
        assert bad.status_code == 422
