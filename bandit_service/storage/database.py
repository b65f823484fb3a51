"""Engines and where SQL dialects differ for correctness (SQLite pragmas, upserts, the schema lock).

SQLite runs in WAL mode so readers never block the writer. Write transactions start with
`BEGIN IMMEDIATE`: they take the write lock up front, so two processes on one file queue on
`busy_timeout` instead of failing with SQLITE_BUSY when a read transaction tries to upgrade.
Reads use a separate engine with plain (deferred) `BEGIN`. What SQLite only needs for speed
lives in `sqlite_speedups`.

Every wait for a lock is bounded, so a lock held elsewhere (another process stopped mid-write, an
operator's `LOCK TABLE`) costs a request a bounded wait and a 503, never a hang: SQLite's
`busy_timeout`, the writer lock's timeout (`sqlite_busy_timeout_ms` both), PostgreSQL's
`lock_timeout` (`postgres_lock_timeout_ms`). `describe_unavailable` says what went wrong in words
that are safe to send to a client.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

import msgspec
from sqlalchemy import Engine, Table, create_engine, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.pool import ConnectionPoolEntry

from bandit_service.settings import Settings

__all__ = ["Database", "WriterLockTimeoutError", "describe_unavailable", "is_transient", "open_database"]

# SQLSTATEs of a transaction the server rolled back to break a deadlock or a serialization
# conflict: the same transaction, run again, normally succeeds.
_TRANSIENT_SQLSTATES = frozenset({"40001", "40P01"})


def _json_dumps(value: Any) -> str:
    return msgspec.json.encode(value).decode()


def is_transient(exc: DBAPIError) -> bool:
    """Whether the database rolled the transaction back only because it lost a lock conflict."""
    return getattr(exc.orig, "sqlstate", None) in _TRANSIENT_SQLSTATES


class WriterLockTimeoutError(TimeoutError):
    """The SQLite writer lock (`sqlite_speedups.FileWriterLock`) stayed held by another process."""


_LOCKED = "the database is locked by another process or connection"
_UNREACHABLE = "the database server cannot be reached"
_UNAVAILABLE = "the database is busy or unavailable"
# By SQLite primary result code (https://sqlite.org/rescode.html).
_SQLITE_REASONS = {
    sqlite3.SQLITE_BUSY: _LOCKED,
    sqlite3.SQLITE_LOCKED: _LOCKED,
    sqlite3.SQLITE_FULL: "the database's disk is full",
    sqlite3.SQLITE_IOERR: "the database could not read or write its disk",
    sqlite3.SQLITE_READONLY: "the database is read-only",
    sqlite3.SQLITE_CANTOPEN: "the database file cannot be opened",
}
# By PostgreSQL SQLSTATE (https://www.postgresql.org/docs/current/errcodes-appendix.html), then by class.
_SQLSTATE_REASONS = {
    "55P03": _LOCKED,  # lock_not_available: `lock_timeout` expired
    "57014": "a database statement was cancelled or timed out",
    "53100": "the database server's disk is full",
    "53300": "the database server has no free connection",
    "25006": "the database is read-only",
    "40001": "the write lost a conflict with concurrent writes",
    "40P01": "the write lost a conflict with concurrent writes",
}
_SQLSTATE_CLASS_REASONS = {
    "08": _UNREACHABLE,  # connection exceptions
    "57": "the database server is shutting down or starting up",  # operator intervention
    "53": "the database server is out of resources",
}


def describe_unavailable(exc: DBAPIError) -> str:
    """Why the database could not serve, in words that name no host, port, file or driver message.

    The driver's own text stays in the log: it can name the server's host and port or the file's path.
    """
    orig = exc.orig
    if isinstance(orig, WriterLockTimeoutError):
        return _LOCKED
    if isinstance(orig, sqlite3.Error):
        # The primary code of an extended one (SQLITE_IOERR_WRITE...); errors of the Python module
        # itself (a closed connection) carry none.
        code = getattr(orig, "sqlite_errorcode", None)
        return _SQLITE_REASONS.get(code & 0xFF, _UNAVAILABLE) if isinstance(code, int) else _UNAVAILABLE
    sqlstate = getattr(orig, "sqlstate", None)
    if isinstance(sqlstate, str):
        return _SQLSTATE_REASONS.get(sqlstate) or _SQLSTATE_CLASS_REASONS.get(sqlstate[:2], _UNAVAILABLE)
    # psycopg reports a refused or broken connection without a SQLSTATE (the server never answered).
    return _UNREACHABLE if exc.connection_invalidated or isinstance(exc, OperationalError) else _UNAVAILABLE


class Database:
    """A write engine, a read engine and the dialect-specific statements."""

    def __init__(
        self, write: Engine, read: Engine, *, serialised_writes: bool = False, writer_lock_timeout_s: float = 5.0
    ) -> None:
        self.write = write
        self.read = read
        self.dialect = write.dialect.name
        # Whether a write transaction holds the database's write lock from BEGIN (SQLite's BEGIN
        # IMMEDIATE): then no other writer can commit between a transaction's reads and its writes.
        self.serialised_writes = serialised_writes
        # How long a writer waits for the other processes' writer lock (SQLite) before giving up.
        self.writer_lock_timeout_s = writer_lock_timeout_s

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
            # A replica that starts while another migrates waits for it however long it takes,
            # beyond `lock_timeout` (this transaction only).
            conn.execute(text("SET LOCAL lock_timeout = 0"))
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
            writer_lock_timeout_s=settings.sqlite_busy_timeout_ms / 1000.0,
        )
    engine = create_engine(url, pool_pre_ping=True, **options)
    if engine.dialect.name == "postgresql":
        _bound_lock_waits(engine, settings.postgres_lock_timeout_ms)
    return Database(engine, engine)


def _bound_lock_waits(engine: Engine, timeout_ms: int) -> None:
    """Set `lock_timeout` on every new connection: a lock held elsewhere fails the statement (55P03)
    after `timeout_ms`, for reads as for writes, instead of making it wait as long as the lock is held."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"SET lock_timeout = {int(timeout_ms)}")  # an int: nothing to quote
        finally:
            cursor.close()
        dbapi_connection.commit()  # the driver opened a transaction for the SET; the setting stays


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
