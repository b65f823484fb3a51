"""Both body readers, Litestar's `Request.body()` and the fast ASGI read, give the same answer to every case."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from bandit_service.app import create_app
from bandit_service.clock import FakeClock
from bandit_service.http.fast_body import FastBodyRequest
from bandit_service.http.strict_body import StrictJsonRequest
from bandit_service.ids import sequential_ids
from bandit_service.storage.memory import MemoryStorage
from tests.service.api import ADMIN_KEY, TEST_SETTINGS, api_client, started

LIMIT = 2_048
JSON = "application/json"
DECISION = {"experiment": "exp", "unit": "u1"}
READERS = [pytest.param(False, id="litestar-reader"), pytest.param(True, id="fast-reader")]


def make_app(fast_body: bool) -> Litestar:
    settings = msgspec.structs.replace(TEST_SETTINGS, max_body_bytes=LIMIT, fast_body=fast_body)
    return create_app(settings, storage=MemoryStorage(), clock=FakeClock(), ids=sequential_ids("body"))


@pytest.fixture(params=READERS)
def fast_body(request: pytest.FixtureRequest) -> bool:
    """Which reader the app uses (`Settings.fast_body`)."""
    return bool(request.param)


@pytest.fixture
def client(fast_body: bool) -> Iterator[TestClient[Litestar]]:
    """An app on the in-memory storage with an active experiment `exp`."""
    with api_client(make_app(fast_body)) as test_client:
        started(test_client)
        yield test_client


def test_the_setting_selects_the_request_class(fast_body):
    request_class = make_app(fast_body).request_class
    assert issubclass(request_class, FastBodyRequest) is fast_body
    assert issubclass(request_class, StrictJsonRequest)


CASES = [
    pytest.param("POST", "/v1/decisions", DECISION, JSON, 200, None, id="decision"),
    pytest.param("POST", "/v1/decisions", DECISION, "application/json; charset=utf-8", 200, None, id="charset"),
    pytest.param("POST", "/v1/decisions", DECISION, "Application/JSON", 200, None, id="upper-case-media-type"),
    pytest.param("POST", "/v1/decisions", DECISION, "application/vnd.bandit+json", 200, None, id="suffix-json"),
    pytest.param("POST", "/v1/experiments/exp/complete", b"", JSON, 200, None, id="empty-body-optional-data"),
    pytest.param("POST", "/v1/decisions", DECISION, "text/plain", 415, "body", id="text-plain"),
    pytest.param("POST", "/v1/decisions", DECISION, None, 415, "body", id="no-content-type"),
    pytest.param("POST", "/v1/decisions", b"", JSON, 400, "body", id="empty-body-required-data"),
    pytest.param("POST", "/v1/decisions", b'{"experiment":', JSON, 400, "body", id="malformed"),
    pytest.param("POST", "/v1/decisions", b'{"experiment":"\xff"}', JSON, 400, "body", id="bad-utf8"),
    pytest.param("POST", "/v1/decisions", {**DECISION, "unit": 5}, JSON, 422, "unit", id="number-for-string"),
    pytest.param("POST", "/v1/rewards", {"decision_id": "d", "reward": "1"}, JSON, 422, "reward", id="string-number"),
    pytest.param("POST", "/v1/decisions", {**DECISION, "user": "u"}, JSON, 422, "user", id="unknown-field"),
    pytest.param(
        "POST",
        "/v1/decisions",
        b'{"experiment":"exp","attributes":{"tier":' + b"[" * 40 + b"]" * 40 + b"}}",
        JSON,
        422,
        "attributes",
        id="too-deep",
    ),
    pytest.param(
        "POST",
        "/v1/decisions",
        b'{"experiment":"exp","attributes":{"tier":' + b"[" * 900 + b"]" * 900 + b"}}",
        JSON,
        422,
        "attributes",
        id="nine-hundred-levels",
    ),
    pytest.param("POST", "/v1/decisions", {**DECISION, "unit": "u" * LIMIT}, JSON, 413, "body", id="too-large"),
]


@pytest.mark.parametrize(("method", "path", "body", "content_type", "status", "field"), CASES)
def test_each_reader_answers_the_same(client, method, path, body, content_type, status, field):
    if isinstance(body, dict):
        body = json.dumps(body).encode()
    headers = {"content-type": content_type} if content_type else {}
    response = client.request(method, path, content=body, headers=headers)
    assert response.status_code == status, response.text[:300]
    if status >= 400:
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json().get("field") == field


def asgi_request(app: Litestar, headers: list[tuple[bytes, bytes]], events: list[dict[str, Any]]) -> int:
    """Send POST /v1/decisions to `app` as raw ASGI events (chunks, disconnects); the response status."""
    statuses: list[int] = []
    pending = iter(events)

    async def receive() -> dict[str, Any]:
        return next(pending, {"type": "http.disconnect"})

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/decisions",
        "raw_path": b"/v1/decisions",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"test"), (b"authorization", f"Bearer {ADMIN_KEY}".encode()), *headers],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
        "state": {},
    }

    async def run() -> None:
        async with app.lifespan():
            await app(scope, receive, send)  # type: ignore[arg-type]

    asyncio.run(run())
    return statuses[0]


def chunks(body: bytes, size: int) -> list[dict[str, Any]]:
    parts = [body[i : i + size] for i in range(0, len(body), size)]
    return [{"type": "http.request", "body": part, "more_body": i < len(parts) - 1} for i, part in enumerate(parts)]


CT = (b"content-type", b"application/json")
UNKNOWN = json.dumps({"experiment": "nope", "unit": "u1"}).encode()  # decodes, then 404: no experiment `nope`
HUGE = json.dumps({"experiment": "nope", "unit": "u" * LIMIT}).encode()
TRANSPORT_CASES = [
    pytest.param([CT], chunks(UNKNOWN, 7), 404, id="body-in-chunks"),
    pytest.param([CT], [{"type": "http.request", "body": UNKNOWN}], 404, id="one-event-without-more-body"),
    pytest.param([CT], chunks(HUGE, 512), 413, id="too-large-without-content-length"),
    pytest.param([CT, (b"content-length", str(len(HUGE)).encode())], [], 413, id="too-large-announced"),
    pytest.param([CT, (b"content-length", b"ten")], chunks(UNKNOWN, 64), 400, id="bad-content-length"),
    pytest.param([CT], chunks(UNKNOWN, 7)[:2], 500, id="client-disconnects-mid-body"),
]


@pytest.mark.parametrize(("headers", "events", "status"), TRANSPORT_CASES)
@pytest.mark.parametrize("fast_body", READERS)
def test_each_reader_handles_the_transport_the_same(fast_body, headers, events, status):
    assert asgi_request(make_app(fast_body), headers, events) == status
