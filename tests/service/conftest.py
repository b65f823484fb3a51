"""Service fixtures: a fake clock, the app on the in-memory storage twin or on a real SQLite file.

`client` runs on the twin (fast) unless the test reads the database file itself (it takes
`db_path` or `settings`) or is marked `sqlite`; `make_app` builds apps on the SQLite file, for
tests of restarts and of several workers on one database.
"""

from __future__ import annotations

import inspect
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
from bandit_service.ports import Storage
from bandit_service.settings import Settings
from bandit_service.storage.memory import MemoryStorage


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
    """Build an app on the test's file and clock (or on `storage`); keyword arguments override settings."""
    counter = iter(range(1_000))

    def make(storage: Storage | None = None, **overrides: Any) -> Litestar:
        return create_app(
            msgspec.structs.replace(settings, **overrides),
            storage=storage,
            clock=clock,
            ids=sequential_ids(f"app{next(counter)}"),
        )

    return make


def on_sqlite(request: pytest.FixtureRequest) -> bool:
    """Whether a test needs the real SQLite file: it reads it (takes `db_path` or `settings`) or is marked so."""
    own = inspect.signature(request.function).parameters
    return "db_path" in own or "settings" in own or request.node.get_closest_marker("sqlite") is not None


@pytest.fixture
def client(request: pytest.FixtureRequest, make_app: Callable[..., Litestar]) -> Iterator[TestClient[Litestar]]:
    """A test client with the app's lifespan running, on the twin or (see `on_sqlite`) the SQLite file."""
    app = make_app() if on_sqlite(request) else make_app(storage=MemoryStorage())
    with TestClient(app) as test_client:
        yield test_client
