"""Group commit: concurrent writes share transactions, one bad write fails alone, a locked database is a 503."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Sequence
from typing import Any

import pytest

from bandit_service.core.errors import InvalidFieldError, UnavailableError
from bandit_service.core.model import Event
from bandit_service.ports import Job
from bandit_service.settings import Settings
from bandit_service.storage.database import open_database
from bandit_service.storage.sql import SqlRepository
from bandit_service.storage.writer import GroupCommitWriter
from tests.service.api import api_client, experiment_body, read_db, snapshot, started


class GatedRepository:
    """A repository whose first commit waits for a gate, so that later writes queue up behind it."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.batches: list[int] = []

    def run_batch(self, groups: Sequence[tuple[Job, Sequence[Any]]]) -> list[list[Any]]:
        if not self.batches:
            self.gate.wait(timeout=10)
        self.batches.append(sum(len(items) for _, items in groups))
        return [[("done", item) for item in items] for _, items in groups]


def echo(tx: Any, items: Sequence[Any]) -> list[Any]:
    return list(items)


def test_requests_that_arrive_together_share_one_commit():
    repository = GatedRepository()

    async def scenario() -> list[Any]:
        writer = GroupCommitWriter(repository, max_batch=1_000)  # type: ignore[arg-type]
        await writer.start()
        first = asyncio.create_task(writer.submit(echo, 0))
        await asyncio.sleep(0.01)  # the writer is now inside the first (gated) commit
        rest = [asyncio.create_task(writer.submit(echo, i)) for i in range(1, 101)]
        await asyncio.sleep(0.01)
        repository.gate.set()
        results = await asyncio.gather(first, *rest)
        await writer.close()
        return results

    results = asyncio.run(scenario())
    assert results == [("done", i) for i in range(101)]  # each request gets its own outcome
    assert repository.batches == [1, 100]  # the hundred that queued meanwhile share one commit


def log(tx: Any, items: Sequence[str]) -> list[Any]:
    """A job that writes an event per item, refuses 'refuse' and crashes on 'crash'."""
    out: list[Any] = []
    for item in items:
        if item == "refuse":
            out.append(InvalidFieldError("refused", field="item"))
            continue
        if item == "crash":
            raise RuntimeError("a bug in one item")
        tx.log_event(Event(experiment_id=1, created_at=0.0, actor="test", action=item, before=None, after=None))
        out.append(item)
    return out


def check_one_bad_write_does_not_fail_the_others(database_url: str, *, sqlite_speedups: bool = True) -> None:
    """Five writes through the writer, one refused and one crashing: the other three are answered and stored."""
    repository = SqlRepository(open_database(Settings(database_url=database_url)), sqlite_speedups=sqlite_speedups)
    repository.create_schema()

    async def scenario() -> list[Any]:
        writer = GroupCommitWriter(repository)
        await writer.start()
        items = ["one", "refuse", "two", "crash", "three"]
        outcomes = await asyncio.gather(*(writer.submit(log, item) for item in items), return_exceptions=True)
        await writer.close()
        return outcomes

    outcomes = asyncio.run(scenario())
    repository.close()
    assert outcomes[0] == "one" and outcomes[2] == "two" and outcomes[4] == "three"
    assert isinstance(outcomes[1], InvalidFieldError) and isinstance(outcomes[3], RuntimeError)
    assert sorted(r[0] for r in read_db(database_url, "SELECT action FROM events")) == ["one", "three", "two"]


def test_one_bad_write_does_not_fail_the_others(database_url):
    # With the SQLite speed-ups, the one job group first runs without a savepoint, fails, and runs again with
    # them; the plain way (PostgreSQL) runs the group in a savepoint and, when it fails, item by item.
    check_one_bad_write_does_not_fail_the_others(database_url)


@pytest.mark.sqlite  # BANDIT_SQLITE_SPEEDUPS=false: SQLite the plain way, as PostgreSQL runs above
def test_one_bad_write_does_not_fail_the_others_on_sqlite_without_the_speedups(database_url):
    check_one_bad_write_does_not_fail_the_others(database_url, sqlite_speedups=False)


def test_a_closed_writer_refuses_new_writes(database_url):
    repository = SqlRepository(open_database(Settings(database_url=database_url)))

    async def scenario() -> None:
        writer = GroupCommitWriter(repository)
        await writer.start()
        await writer.close()
        with pytest.raises(UnavailableError):
            await writer.submit(echo, 1)

    asyncio.run(scenario())
    repository.close()


def test_a_locked_database_is_a_503_problem_and_nothing_is_written(make_app, database_url, sqlite_file):
    # Another process holding SQLite's one write lock past BANDIT_SQLITE_BUSY_TIMEOUT_MS.
    with api_client(make_app(sqlite_busy_timeout_ms=50)) as client:
        started(client)
        before = snapshot(database_url)
        blocker = sqlite3.connect(sqlite_file, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        try:
            response = client.post("/v1/decisions", json={"experiment": "exp", "unit": "u1"})
            created = client.post("/v1/experiments", json=experiment_body("other"))
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        for r in (response, created):
            assert r.status_code == 503 and r.headers["content-type"] == "application/problem+json"
            assert "retry" in r.json()["detail"]
            # Before: no Retry-After, and the driver's own text in the detail ("(database is
            # locked)"; on PostgreSQL it named the server's host and port).
            assert r.headers["retry-after"] == "1"
            # Now the service's own words (describe_unavailable), never the driver's.
            assert r.json()["detail"] == "the database is locked by another process or connection; retry"
        assert snapshot(database_url) == before
        assert client.post("/v1/decisions", json={"experiment": "exp", "unit": "u1"}).status_code == 200
