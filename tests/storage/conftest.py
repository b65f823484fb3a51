"""The storages the contract suite runs on: the in-memory twin, a real SQLite file and a real PostgreSQL
(a fresh schema per case on the server of `TEST_POSTGRES_URL`; see `tests/conftest.py`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bandit_service.ports import Storage
from bandit_service.settings import Settings
from bandit_service.storage.database import open_database
from bandit_service.storage.memory import MemoryStorage
from bandit_service.storage.sql_storage import SqlStorage


@pytest.fixture(params=["memory", "sqlite", "sqlite-plain", "postgresql"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    """A storage that is not opened yet (each test opens and closes it on its own event loop).

    `sqlite-plain`: SQLite without its speed-ups (storage/sqlite_speedups.py), as other databases run.
    """
    if request.param == "memory":
        return MemoryStorage()
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres_schema_url")
        return SqlStorage(open_database(Settings(database_url=url)))
    database = open_database(Settings(database_url=f"sqlite:///{tmp_path / 'contract.db'}"))
    return SqlStorage(database, sqlite_speedups=request.param == "sqlite")
