"""Service fixtures: a fake clock, the app on the in-memory storage twin or on a real database.

A test runs on a real database when `database_url` is among its fixtures (it takes it, `settings`,
`make_app` or a fixture that does); it then runs once per database: a SQLite file and a PostgreSQL
schema of its own (skipped without a server, except under CI). A test about the SQLite file itself
takes `sqlite_file` or is marked `sqlite`, and runs on SQLite only. Every other `client` runs on
the twin (fast).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy.engine import make_url

from bandit_service.app import create_app
from bandit_service.clock import FakeClock
from bandit_service.ids import sequential_ids
from bandit_service.ports import Storage
from bandit_service.settings import Settings
from bandit_service.storage.memory import MemoryStorage
from tests.service.api import TEST_SETTINGS, api_client

DATABASES = ("sqlite", "postgresql")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run each test on a database once per database, or on SQLite only (it takes `sqlite_file` or is marked)."""
    if "database_url" not in metafunc.fixturenames:
        return
    marked = metafunc.definition.get_closest_marker("sqlite") is not None
    sqlite_only = marked or "sqlite_file" in metafunc.fixturenames
    metafunc.parametrize("database_url", ["sqlite"] if sqlite_only else list(DATABASES), indirect=True)


def _database_url(database: str, tmp_path: Path, request: pytest.FixtureRequest, postgres_fixture: str) -> str:
    match database:
        case "sqlite":
            return f"sqlite:///{tmp_path / 'bandit.db'}"
        case "postgresql":
            url: str = request.getfixturevalue(postgres_fixture)
            return url
        case other:
            raise ValueError(f"unknown test database {other!r}")


@pytest.fixture
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The test's database: a fresh SQLite file, or a fresh PostgreSQL schema (see `pytest_generate_tests`)."""
    return _database_url(request.param, tmp_path, request, "postgres_schema_url")


@pytest.fixture(scope="module", params=DATABASES)
def module_database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A database shared by the tests of one module (for a module-scoped app), once per database."""
    return _database_url(request.param, tmp_path_factory.mktemp("db"), request, "postgres_module_schema_url")


@pytest.fixture
def sqlite_file(database_url: str) -> Path:
    """The SQLite file of a test about the file itself (such a test runs on SQLite only)."""
    path = make_url(database_url).database
    assert path is not None, database_url
    return Path(path)


@pytest.fixture
def clock() -> FakeClock:
    """A clock that moves only when the test says so."""
    return FakeClock()


@pytest.fixture
def settings(database_url: str) -> Settings:
    """Settings for a test app on the test's database."""
    return msgspec.structs.replace(TEST_SETTINGS, database_url=database_url)


def app_factory(settings: Settings, clock: FakeClock) -> Callable[..., Litestar]:
    """Build apps on these settings and clock (or on `storage`); keyword arguments override settings."""
    counter = iter(range(1_000))

    def make(storage: Storage | None = None, **overrides: Any) -> Litestar:
        return create_app(
            msgspec.structs.replace(settings, **overrides),
            storage=storage,
            clock=clock,
            ids=sequential_ids(f"app{next(counter)}"),
        )

    return make


@pytest.fixture
def make_app(settings: Settings, clock: FakeClock) -> Callable[..., Litestar]:
    """Build apps on the test's database and clock, for tests of restarts and of several workers."""
    return app_factory(settings, clock)


@pytest.fixture
def client(request: pytest.FixtureRequest, clock: FakeClock) -> Iterator[TestClient[Litestar]]:
    """A test client with the app's lifespan running, on the test's database if it has one, else on the twin."""
    if "database_url" in request.fixturenames:
        app = request.getfixturevalue("make_app")()
    else:
        app = app_factory(TEST_SETTINGS, clock)(storage=MemoryStorage())
    with api_client(app) as test_client:
        yield test_client
