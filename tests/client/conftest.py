"""SDK fixtures: the service in-process on the in-memory twin, and clients on it that are closed at teardown."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from bandit_service.app import create_app
from bandit_service.client import BanditClient
from bandit_service.clock import FakeClock
from bandit_service.ids import sequential_ids
from bandit_service.storage.memory import MemoryStorage
from tests.client.helpers import BASE_URL, OPTIONS
from tests.client.transports import Forward
from tests.service.api import TEST_SETTINGS, api_client


@pytest.fixture
def service() -> Iterator[TestClient[Litestar]]:
    """The service in-process on the in-memory twin (its admin key as the test client's bearer token)."""
    app = create_app(TEST_SETTINGS, storage=MemoryStorage(), clock=FakeClock(), ids=sequential_ids("svc"))
    with api_client(app) as client:
        yield client


@pytest.fixture
def make_client(service: TestClient[Litestar]) -> Iterator[Callable[..., BanditClient]]:
    """`make_client(transport=None, **options)`: a BanditClient on the in-process service (through `transport`)."""
    made: list[tuple[BanditClient, httpx.Client]] = []

    def make(transport: httpx.BaseTransport | None = None, **options: Any) -> BanditClient:
        http = httpx.Client(base_url=BASE_URL, transport=transport or Forward(service))
        client = BanditClient(http=http, **{**OPTIONS, **options})
        made.append((client, http))
        return client

    yield make
    for client, http in made:
        client.close(timeout_s=1.0)
        http.close()
