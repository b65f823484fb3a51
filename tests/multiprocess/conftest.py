"""Fixtures of the multi-process tests: one database per parameter, replicas stopped at teardown, an engine.

Every test runs twice: on a SQLite file shared by the replicas and on a fresh PostgreSQL schema
(`postgres_schema_url`, skipped without TEST_POSTGRES_URL except under CI).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine

from tests.multiprocess.replicas import Replicas, StartReplicas


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The database every replica of a test shares: a SQLite file, or a PostgreSQL schema of its own."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'bandit.db'}"
    url: str = request.getfixturevalue("postgres_schema_url")
    return url


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """SQLAlchemy engine on the replicas' database, for recounts from the rows."""
    engine = create_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def start_replicas(database_url: str, tmp_path: Path) -> Iterator[StartReplicas]:
    """Start `count` replicas on the test's database with these BANDIT_* settings; all stop at teardown."""
    started: list[Replicas] = []

    def start(count: int, settings: Mapping[str, str]) -> Replicas:
        replicas = Replicas(database_url, count, settings, tmp_path / f"replicas-{len(started)}")
        started.append(replicas)
        replicas.start()
        return replicas

    yield start
    for replicas in started:
        replicas.stop()
