"""Health in one process: /livez, /readyz and its checks, lock waits that end in a 503, error details that leak nothing.

The outages with real server processes (a lock held by another process, a full disk, a stopped
server, a stopped worker) are in `tests/multiprocess/test_outages.py`.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from bandit_service.app import runtime_of
from bandit_service.clock import FakeClock
from bandit_service.ports import WriteTx
from bandit_service.storage.database import WriterLockTimeoutError, describe_unavailable, is_transient
from bandit_service.storage.memory import MemoryStorage
from bandit_service.storage.sqlite_speedups import writer_lock_for
from tests.service.api import api_client, experiment_body, read_db, snapshot, started
from tests.service.conftest import TEST_SETTINGS, app_factory

LOCK_HELD_S = 30.0
"""A lock held elsewhere is released after this long at the latest: before the fix, a request
waited for it (PostgreSQL) and then succeeded, so the test fails instead of hanging."""
SHORT_LOCK_WAIT = {"sqlite_busy_timeout_ms": 200, "postgres_lock_timeout_ms": 200}
PG_LOCKED_TABLES = "experiments, arms, assignments, decisions, rewards, arm_counters, period_counters"


def eventually(check: Callable[[], bool], what: str, within_s: float = 20.0) -> None:
    """Poll `check` until it holds (a state that follows a release: a probe outcome is reused for a second)."""
    deadline = time.monotonic() + within_s
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {within_s} s: {what}")
        time.sleep(0.05)


def assert_unavailable(response: Any, detail_start: str = "") -> None:
    """503, problem+json, Retry-After, and a detail that names no host, port, file or driver."""
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["retry-after"] == "1"
    detail = response.json()["detail"]
    assert detail.startswith(detail_start), detail
    for leak in ("127.0.0.1", "localhost", "port", ".db", "/", "sqlite3", "psycopg", "SQL"):
        assert leak not in detail, detail


@contextmanager
def locked(database_url: str) -> Iterator[None]:
    """Another connection holds the database's lock: SQLite's write lock, PostgreSQL's ACCESS EXCLUSIVE
    on the tables a decision reads and writes. Released at exit, or after LOCK_HELD_S at the latest."""
    release = threading.Event()
    holding = threading.Event()
    failure: list[BaseException] = []

    def hold() -> None:
        try:
            if database_url.startswith("sqlite"):
                conn = sqlite3.connect(make_url(database_url).database or "", isolation_level=None)
                conn.execute("BEGIN EXCLUSIVE")
                holding.set()
                release.wait(LOCK_HELD_S)
                conn.execute("ROLLBACK")
                conn.close()
                return
            engine = create_engine(database_url)
            with engine.connect() as pg:
                pg.execute(text(f"LOCK TABLE {PG_LOCKED_TABLES} IN ACCESS EXCLUSIVE MODE"))
                holding.set()
                release.wait(LOCK_HELD_S)
                pg.rollback()
            engine.dispose()
        except BaseException as exc:  # reported by the test, not lost in the thread
            failure.append(exc)
            holding.set()

    thread = threading.Thread(target=hold)
    thread.start()
    holding.wait()
    assert not failure, failure
    try:
        yield
    finally:
        release.set()
        thread.join()


def test_livez_answers_alive_without_the_database(client: TestClient[Litestar]):
    response = client.get("/livez")
    assert response.status_code == 200
    assert response.json()["status"] == "alive"


def test_livez_and_readyz_are_public():
    with api_client(_twin_app(), key=None) as anonymous:  # no Authorization header at all
        assert anonymous.get("/livez").status_code == 200
        assert anonymous.get("/readyz").status_code == 200


def test_readyz_on_the_twin_says_ready_and_whether_the_scheduler_runs():
    with api_client(_twin_app(scheduler_enabled=True)) as c:
        body = c.get("/readyz").json()
    assert body["status"] == "ready" and body["database"] == "writable" and body["scheduler"] == "running"
    with api_client(_twin_app(scheduler_enabled=False)) as c:
        assert c.get("/readyz").json()["scheduler"] == "disabled"


def test_the_readiness_probe_writes_and_leaves_no_trace(make_app, database_url):
    with api_client(make_app()) as client:
        started(client)
        before = snapshot(database_url), read_db(database_url, "SELECT seq FROM change_counter")
        commits = client.get("/healthz").json()["commits"]
        response = client.get("/readyz")
        assert response.status_code == 200, response.text
        assert response.json()["database"] == "writable"
        assert client.get("/healthz").json()["commits"] == commits + 1  # a real transaction committed
        assert (snapshot(database_url), read_db(database_url, "SELECT seq FROM change_counter")) == before


def test_a_held_lock_is_a_fast_503_and_readyz_tells_until_it_is_released(make_app, database_url):
    with api_client(make_app(**SHORT_LOCK_WAIT)) as client:
        started(client)
        decision = client.post("/v1/decisions", json={"experiment": "exp", "unit": "before"}).json()
        before = snapshot(database_url)
        with locked(database_url):
            decided = client.post("/v1/decisions", json={"experiment": "exp", "unit": "u1"})
            rewarded = client.post("/v1/rewards", json={"decision_id": decision["decision_id"], "reward": 1.0})
            created = client.post("/v1/experiments", json=experiment_body("other"))
            read = client.get("/v1/experiments/exp")
            ready = client.get("/readyz")
            live = client.get("/livez")
            held = snapshot(database_url) if database_url.startswith("sqlite") else None  # readers pass in WAL
        for response in (decided, rewarded, created):
            assert_unavailable(response, "the database is locked by another process or connection")
        assert_unavailable(ready, "not ready: database: ")
        assert live.status_code == 200
        if database_url.startswith("sqlite"):
            assert read.status_code == 200  # WAL: readers never wait for the writer
            assert held == before
        else:
            assert_unavailable(read, "the database is locked")  # reads wait at most lock_timeout too
        assert snapshot(database_url) == before  # none of the refused writes happened
        eventually(lambda: client.get("/readyz").status_code == 200, "/readyz 200 after the lock is released")
        retried = client.post("/v1/rewards", json={"decision_id": decision["decision_id"], "reward": 1.0})
        assert retried.status_code == 200, retried.text


def test_readyz_is_503_while_the_scheduler_is_stopped():
    app = _twin_app(scheduler_enabled=True)
    with api_client(app) as client:
        assert client.get("/readyz").status_code == 200
        scheduler = runtime_of(app).services.scheduler
        assert scheduler is not None
        client.blocking_portal.call(scheduler.stop)
        assert_unavailable(client.get("/readyz"), "not ready: scheduler: not running")
        assert client.get("/livez").status_code == 200


def test_readyz_is_503_while_the_writer_is_stuck_and_200_once_it_moves(make_app, database_url):
    app = make_app(sqlite_busy_timeout_ms=50, postgres_lock_timeout_ms=50, ready_timeout_ms=100)
    unstick = threading.Event()

    def stuck(tx: WriteTx, items: Sequence[None]) -> list[None]:
        unstick.wait(LOCK_HELD_S)  # a transaction that hangs (a server that stopped answering mid-query)
        return [None] * len(items)

    with api_client(app) as client:
        storage = runtime_of(app).services.storage
        pending = client.blocking_portal.start_task_soon(storage.write, stuck, None)
        try:
            # A healthy transaction ends within 2 x 50 ms of lock waits + 100 ms: this one is stuck.
            eventually(
                lambda: client.get("/readyz").json()["detail"].startswith("not ready: writer: "),
                "/readyz names the stuck writer",
            )
            assert_unavailable(client.get("/readyz"), "not ready: writer: its current transaction has run for ")
        finally:
            unstick.set()
        pending.result(timeout=LOCK_HELD_S)
        eventually(lambda: client.get("/readyz").status_code == 200, "/readyz 200 once the writer moves")


def _twin_app(**overrides: Any) -> Litestar:
    """An app on the in-memory twin with the service tests' settings."""
    return app_factory(TEST_SETTINGS, FakeClock())(storage=MemoryStorage(), **overrides)


# --- what the answers rest on: lock waits that end, and error details that leak nothing ---------------


def test_a_writer_lock_held_by_a_stopped_process_times_out_and_is_passed_on(sqlite_file):
    path = str(sqlite_file)
    stopped, live = writer_lock_for(path, 5.0), writer_lock_for(path, 0.1)  # as two worker processes
    assert stopped is not None and live is not None
    outcome: list[BaseException | None] = []

    def write() -> None:
        try:
            with live.hold():
                outcome.append(None)
        except OperationalError as exc:
            outcome.append(exc)

    with stopped.hold():
        writer = threading.Thread(target=write)
        writer.start()
        writer.join(LOCK_HELD_S)
        waited_for_release = writer.is_alive()  # before: flock(LOCK_EX) waited as long as the lock was held
    writer.join()
    assert not waited_for_release, "a writer waited for the lock for as long as another process held it"
    assert len(outcome) == 1 and isinstance(outcome[0], OperationalError), outcome
    assert isinstance(outcome[0].orig, WriterLockTimeoutError)
    # The waiter `live` gave up on gets the lock once it is free and passes it on at once.
    with stopped.hold():
        pass
    with live.hold():
        pass
    stopped.close()
    live.close()


def _sqlite_error(code: int, message: str) -> sqlite3.OperationalError:
    error = sqlite3.OperationalError(message)
    error.sqlite_errorcode = code  # as the sqlite3 module sets it on a failed call
    return error


def _pg_error(cls: type[psycopg.Error], message: str) -> psycopg.Error:
    return cls(message)


DRIVER_ERRORS = [
    pytest.param(
        OperationalError("BEGIN IMMEDIATE", None, _sqlite_error(5, "database is locked")),
        "the database is locked by another process or connection",
        id="sqlite-busy",
    ),
    pytest.param(
        OperationalError("INSERT", None, _sqlite_error(13, "database or disk is full")),
        "the database's disk is full",
        id="sqlite-full",
    ),
    pytest.param(
        OperationalError("COMMIT", None, _sqlite_error(778, "disk I/O error")),  # SQLITE_IOERR_WRITE
        "the database could not read or write its disk",
        id="sqlite-ioerr-extended",
    ),
    pytest.param(
        OperationalError(None, None, sqlite3.OperationalError("unable to open database file /srv/x.db")),
        "the database is busy or unavailable",
        id="sqlite-no-code",
    ),
    pytest.param(
        OperationalError(None, None, WriterLockTimeoutError("held over 5 s")),
        "the database is locked by another process or connection",
        id="writer-lock-timeout",
    ),
    pytest.param(
        OperationalError("SELECT", None, _pg_error(psycopg.errors.LockNotAvailable, "canceling statement")),
        "the database is locked by another process or connection",
        id="pg-lock-timeout",
    ),
    pytest.param(
        OperationalError("SELECT", None, _pg_error(psycopg.errors.QueryCanceled, "statement timeout")),
        "a database statement was cancelled or timed out",
        id="pg-statement-timeout",
    ),
    pytest.param(
        OperationalError("INSERT", None, _pg_error(psycopg.errors.DiskFull, "could not extend file")),
        "the database server's disk is full",
        id="pg-disk-full",
    ),
    pytest.param(
        OperationalError("SELECT", None, _pg_error(psycopg.errors.AdminShutdown, "terminating connection")),
        "the database server is shutting down or starting up",
        id="pg-admin-shutdown",
    ),
    pytest.param(
        OperationalError(
            None,
            None,
            psycopg.OperationalError('connection to server at "10.1.2.3", port 5433 failed: Connection refused'),
        ),
        "the database server cannot be reached",
        id="pg-refused",
    ),
    pytest.param(
        InterfaceError("SELECT", None, psycopg.InterfaceError("the connection is closed"), connection_invalidated=True),
        "the database server cannot be reached",
        id="pg-connection-closed",
    ),
]


@pytest.mark.parametrize(("error", "detail"), DRIVER_ERRORS)
def test_database_failures_are_described_without_the_drivers_words(error: DBAPIError, detail: str):
    assert describe_unavailable(error) == detail


def test_a_lock_timeout_fails_its_batch_at_once_while_a_lost_deadlock_is_run_again():
    timed_out = OperationalError("SELECT", None, _pg_error(psycopg.errors.LockNotAvailable, "lock timeout"))
    deadlocked = OperationalError("UPDATE", None, _pg_error(psycopg.errors.DeadlockDetected, "deadlock"))
    assert not is_transient(timed_out)  # retrying would wait for the same lock again, WRITE_ATTEMPTS times
    assert is_transient(deadlocked)
