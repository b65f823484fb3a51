"""Engines and where SQL dialects differ for correctness (SQLite pragmas, upserts, the schema lock).

SQLite runs in WAL mode so readers never block the writer. Write transactions start with
`BEGIN IMMEDIATE`: they take the write lock up front, so two processes on one file queue on
`busy_timeout` instead of failing with SQLITE_BUSY when a read transaction tries to upgrade.
Reads use a separate engine with plain (deferred) `BEGIN`. What SQLite only needs for speed
lives in `sqlite_speedups`.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

import msgspec
from sqlalchemy import Engine, Table, create_engine, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import ConnectionPoolEntry

from bandit_service.settings import Settings

__all__ = ["Database", "is_transient", "open_database"]

# SQLSTATEs of a transaction the server rolled back to break a deadlock or a serialization
# conflict: the same transaction, run again, normally succeeds.
_TRANSIENT_SQLSTATES = frozenset({"40001", "40P01"})


def _json_dumps(value: Any) -> str:
    return msgspec.json.encode(value).decode()


def is_transient(exc: DBAPIError) -> bool:
    """Whether the database rolled the transaction back only because it lost a lock conflict."""
    return getattr(exc.orig, "sqlstate", None) in _TRANSIENT_SQLSTATES


class Database:
    """A write engine, a read engine and the dialect-specific statements."""

    def __init__(self, write: Engine, read: Engine, *, serialised_writes: bool = False) -> None:
        self.write = write
        self.read = read
        self.dialect = write.dialect.name
        # Whether a write transaction holds the database's write lock from BEGIN (SQLite's BEGIN
        # IMMEDIATE): then no other writer can commit between a transaction's reads and its writes.
        self.serialised_writes = serialised_writes

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


def open_database(settings: Settings) -> Database:
    """Create the engines for `settings.database_url` (no connection is made yet)."""
    url = settings.database_url
    options: dict[str, Any] = {"json_serializer": _json_dumps, "json_deserializer": msgspec.json.decode}
    if url.startswith("sqlite"):
        return Database(
            _sqlite_engine(url, settings, "BEGIN IMMEDIATE", options),
            _sqlite_engine(url, settings, "BEGIN", options),
            serialised_writes=True,
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
