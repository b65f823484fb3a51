"""Engines and the one place where SQL dialects differ (SQLite pragmas and locking, upserts).

SQLite runs in WAL mode so readers never block the writer. Write transactions start with
`BEGIN IMMEDIATE`: they take the write lock up front, so two processes on one file queue on
`busy_timeout` instead of failing with SQLITE_BUSY when a read transaction tries to upgrade.
Reads use a separate engine with plain (deferred) `BEGIN`.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import msgspec
from sqlalchemy import Engine, Table, create_engine, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.pool import ConnectionPoolEntry

from bandit_service.settings import Settings

__all__ = ["Database", "open_database"]


def _json_dumps(value: Any) -> str:
    return msgspec.json.encode(value).decode()


class Database:
    """A write engine, a read engine and the dialect-specific statements."""

    def __init__(self, write: Engine, read: Engine) -> None:
        self.write = write
        self.read = read
        self.dialect = write.dialect.name
        path = write.url.database if self.dialect == "sqlite" else None
        self._lock_path = Path(f"{path}-writer.lock") if path and path != ":memory:" else None
        self._thread_lock = threading.Lock()
        self._lock_fd: int | None = None  # a raw descriptor: no ResourceWarning if never disposed

    @contextmanager
    def writer_lock(self) -> Iterator[None]:
        """Hold the write turn for one transaction (SQLite files; a no-op elsewhere).

        SQLite's own busy handler makes a waiting writer sleep in growing steps (up to 100 ms),
        so two worker processes on one file took turns slowly and those sleeps set the p99.
        An exclusive flock on a side file queues the writers in the kernel, which wakes the
        next one the moment the lock is released (after COMMIT), so each process still commits
        a whole group per turn. The side file stays open: opening it per transaction cost the
        writer thread a wait for the GIL each time.
        """
        if self._lock_path is None:
            yield
            return
        with self._thread_lock:
            if self._lock_fd is None:
                self._lock_fd = os.open(self._lock_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def upsert(self, table: Table) -> sqlite.Insert | postgresql.Insert:
        """An INSERT that supports `.on_conflict_do_update` (SQLite and PostgreSQL share the API)."""
        match self.dialect:
            case "sqlite":
                return sqlite.insert(table)
            case "postgresql":
                return postgresql.insert(table)
            case other:
                raise ValueError(f"database_url: unsupported database dialect {other!r} (use sqlite or postgresql)")

    def lock_schema(self, conn: Connection) -> None:
        """Serialise schema creation between processes starting at the same time."""
        if self.dialect == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(7305720381)"))
        # SQLite: the write engine's BEGIN IMMEDIATE already holds the database's write lock.

    def dispose(self) -> None:
        """Close all pooled connections."""
        self.write.dispose()
        self.read.dispose()
        with self._thread_lock:
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None


def open_database(settings: Settings) -> Database:
    """Create the engines for `settings.database_url` (no connection is made yet)."""
    url = settings.database_url
    options: dict[str, Any] = {"json_serializer": _json_dumps, "json_deserializer": msgspec.json.decode}
    if url.startswith("sqlite"):
        return Database(
            _sqlite_engine(url, settings, "BEGIN IMMEDIATE", options), _sqlite_engine(url, settings, "BEGIN", options)
        )
    engine = create_engine(url, pool_pre_ping=True, **options)
    return Database(engine, engine)


def _sqlite_engine(url: str, settings: Settings, begin: str, options: dict[str, Any]) -> Engine:
    engine = create_engine(url, connect_args={"check_same_thread": False}, **options)
    pragmas = (
        f"PRAGMA busy_timeout={int(settings.sqlite_busy_timeout_ms)}",  # first: the next pragma may wait
        "PRAGMA journal_mode=WAL",
        f"PRAGMA synchronous={settings.sqlite_synchronous}",
        "PRAGMA foreign_keys=ON",
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin (needed for
        # BEGIN IMMEDIATE and for savepoints to work).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in pragmas:
            _execute_when_free(cursor, pragma, settings.sqlite_busy_timeout_ms / 1000.0)
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql(begin)

    return engine


def _execute_when_free(cursor: sqlite3.Cursor, sql: str, timeout_s: float) -> None:
    """Run a statement, retrying while another process holds the lock it needs.

    Switching a new file to WAL needs an exclusive lock, and SQLite answers SQLITE_BUSY at once
    there instead of calling the busy handler; two workers starting on a new file would
    otherwise crash one of them.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            cursor.execute(sql)
            return
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY or time.monotonic() >= deadline:
                raise
            time.sleep(0.01)
