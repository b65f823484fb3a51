"""Service fixtures: a fake clock, a real SQLite file, the app, and helpers to read the file directly."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from bandit_service.app import create_app
from bandit_service.clock import FakeClock
from bandit_service.ids import sequential_ids
from bandit_service.settings import Settings


@pytest.fixture
def clock() -> FakeClock:
    """A clock that moves only when the test says so."""
    return FakeClock()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """A fresh SQLite file."""
    return tmp_path / "bandit.db"


@pytest.fixture
def settings(db_path: Path) -> Settings:
    """Settings for a test app: the file above, no background scheduler (tests call it)."""
    return Settings(database_url=f"sqlite:///{db_path}", scheduler_enabled=False, cache_ttl_s=0.0)


@pytest.fixture
def make_app(settings: Settings, clock: FakeClock) -> Callable[..., Litestar]:
    """Build an app on the test's file and clock; keyword arguments override settings."""
    counter = iter(range(1_000))

    def make(**overrides: Any) -> Litestar:
        return create_app(
            msgspec.structs.replace(settings, **overrides), clock=clock, ids=sequential_ids(f"app{next(counter)}")
        )

    return make


@pytest.fixture
def client(make_app: Callable[..., Litestar]) -> Iterator[TestClient[Litestar]]:
    """A test client with the app's lifespan running."""
    with TestClient(make_app()) as test_client:
        yield test_client
