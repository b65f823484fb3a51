"""Fetching definitions: GET /v1/definitions with If-None-Match, 304 as None, and every other answer an error.

Against the app in-process (its real ETag), and against an httpx.MockTransport for the answers a
healthy app never gives (5xx, a body that is not definitions, a network error).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import msgspec
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from bandit_service.app import create_app
from bandit_service.client.local import DefinitionsError, LocalEvaluator, afetch_definitions, fetch_definitions
from bandit_service.clock import FakeClock
from bandit_service.core.definitions import Definitions
from bandit_service.ids import sequential_ids
from bandit_service.storage.memory import MemoryStorage
from tests.service.api import TEST_SETTINGS, api_client, call, started

DOCUMENT = Definitions(version="abc123", experiments=[], features=[], poll_interval_s=2.0)


@pytest.fixture
def client() -> Iterator[TestClient[Litestar]]:
    """The app on the in-memory twin."""
    app = create_app(TEST_SETTINGS, storage=MemoryStorage(), clock=FakeClock(), ids=sequential_ids("definitions"))
    with api_client(app) as test_client:
        yield test_client


def test_against_the_app_a_fetch_then_304_until_something_changes(client: TestClient[Litestar]) -> None:
    started(client, "exp")
    first = fetch_definitions(client, None)
    assert first is not None and [e.key for e in first.experiments] == ["exp"]
    assert fetch_definitions(client, first.version) is None  # unchanged: 304, nothing to decode
    assert fetch_definitions(client, f'"{first.version}"') is None  # the ETag as the header carries it
    local = LocalEvaluator()
    local.load(first)
    assert fetch_definitions(client, local.version) is None
    assert client.post("/v1/experiments/exp/pause").status_code == 200
    changed = fetch_definitions(client, first.version)
    assert changed is not None and changed.version != first.version
    assert changed.experiments[0].status == "paused"


def test_the_async_fetch_answers_the_same(client: TestClient[Litestar]) -> None:
    started(client, "exp")

    async def fetch_twice() -> tuple[Definitions | None, Definitions | None]:
        transport = httpx.ASGITransport(app=client.app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://bandit.test", headers=client.headers
        ) as http:
            first = await afetch_definitions(http, None)
            assert first is not None
            return first, await afetch_definitions(http, first.version)

    first, second = call(client, fetch_twice)
    assert first == fetch_definitions(client, None) and second is None


def mock(handler: httpx.MockTransport) -> httpx.Client:
    return httpx.Client(transport=handler, base_url="http://bandit.test")


def test_the_version_held_is_sent_quoted_as_if_none_match() -> None:
    sent: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request.headers.get("If-None-Match"))
        assert request.url.path == "/v1/definitions" and request.method == "GET"
        if request.headers.get("If-None-Match") == '"abc123"':
            return httpx.Response(304)
        return httpx.Response(200, content=msgspec.json.encode(DOCUMENT), headers={"ETag": '"abc123"'})

    with mock(httpx.MockTransport(handler)) as http:
        assert fetch_definitions(http, None) == DOCUMENT
        assert fetch_definitions(http, "abc123") is None
        assert fetch_definitions(http, '"abc123"') is None
        assert fetch_definitions(http, 'W/"old"') == DOCUMENT
    assert sent == [None, '"abc123"', '"abc123"', 'W/"old"']


@pytest.mark.parametrize(
    ("response", "message"),
    [
        pytest.param(httpx.Response(503, json={"title": "Service Unavailable"}), "answered 503", id="503"),
        pytest.param(httpx.Response(401, json={"title": "Unauthorized"}), "answered 401", id="401"),
        pytest.param(httpx.Response(404, text="no such route"), "answered 404: no such route", id="404"),
        pytest.param(httpx.Response(200, text="<html>proxy</html>"), "not definitions", id="not-json"),
        pytest.param(httpx.Response(200, json={"version": "x"}), "not definitions", id="missing-fields"),
        pytest.param(httpx.Response(304), "answered 304", id="304-without-an-etag"),
    ],
)
def test_any_other_answer_is_a_definitions_error_with_its_status(response: httpx.Response, message: str) -> None:
    with (
        mock(httpx.MockTransport(lambda request: response)) as http,
        pytest.raises(DefinitionsError, match=message) as caught,
    ):
        fetch_definitions(http, None)
    assert caught.value.status == response.status_code


def test_a_network_error_is_raised_as_httpx_raises_it_sync_and_async() -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with mock(httpx.MockTransport(down)) as http, pytest.raises(httpx.ConnectError):
        fetch_definitions(http, "abc123")

    async def fetch() -> Definitions | None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(down), base_url="http://bandit.test") as http:
            return await afetch_definitions(http, None)

    with pytest.raises(httpx.ConnectError):
        asyncio.run(fetch())


def test_the_async_fetch_maps_answers_like_the_sync_one() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.headers.get("If-None-Match") == '"abc123"':
            return httpx.Response(304)
        if request.headers.get("If-None-Match") is None:
            return httpx.Response(200, content=msgspec.json.encode(DOCUMENT))
        return httpx.Response(500, text="boom")

    async def fetch(etag: str | None) -> Definitions | None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler), base_url="http://bandit.test") as http:
            return await afetch_definitions(http, etag)

    assert asyncio.run(fetch(None)) == DOCUMENT
    assert asyncio.run(fetch("abc123")) is None
    with pytest.raises(DefinitionsError, match="answered 500: boom"):
        asyncio.run(fetch("other"))
