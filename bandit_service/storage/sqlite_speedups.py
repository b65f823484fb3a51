"""SQLite-only speed-ups of the storage's hot paths, behind the interfaces of `statements`.

Everything here exists only to make SQLite faster; `statements` has a plain twin of each that uses
SQLAlchemy's public API on every dialect, and `choose_execution` is the one place that picks.
Set `sqlite_speedups=False` (setting `BANDIT_SQLITE_SPEEDUPS`) to run SQLite the plain way; the
contract suite and `tests/service/test_driver_statements.py` run both. What each one saves:

- `DriverStatement` / `DriverQuery`: compiled SQL run on the raw `sqlite3` cursor. The writer
  thread runs a handful of statements per batch while the event loop serves requests in the same
  process, and SQLAlchemy's per-call execution machinery (cache lookup, execution context,
  result set-up) holds the GIL the event loop waits for.
- `PinnedWrites`: the writer keeps one connection open instead of a pool checkout and reset per
  batch, and a batch of one job group first runs without a savepoint (two statements fewer per
  commit), rerun with savepoints if the group fails.
- `FileWriterLock`: an flock on a side file queues writer processes (uvicorn workers on one
  file) in the kernel instead of in SQLite's sleeping busy handler; a writer waits for it at most
  `sqlite_busy_timeout_ms`, so a stopped process cannot hang the others.

These use the driver directly, so a SQLAlchemy or sqlite3 upgrade can break them: the tests compare
them with SQLAlchemy's own execution.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import Engine, Select, bindparam
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.sql import Insert
from sqlalchemy.sql.base import Executable

from bandit_service.ports import Job
from bandit_service.storage.database import Database, WriterLockTimeoutError
from bandit_service.storage.statements import (
    BatchRun,
    Execution,
    KeyQuery,
    PlainExecution,
    Statement,
    WritePath,
    run_groups,
)

__all__ = [
    "DriverQuery",
    "DriverStatement",
    "FileWriterLock",
    "PinnedWrites",
    "SqliteExecution",
    "choose_execution",
    "writer_lock_for",
]

log = logging.getLogger(__name__)


def choose_execution(db: Database, *, speedups: bool = True) -> Execution:
    """The SQLite speed-ups for a SQLite database (unless `speedups` is off); the plain versions otherwise."""
    if speedups and db.dialect == "sqlite":
        return SqliteExecution(db)
    return PlainExecution(db.write)


class SqliteExecution:
    """Statements on the driver's cursor and the pinned, file-locked write connection."""

    def __init__(self, db: Database) -> None:
        self.dialect = db.write.dialect
        lock = writer_lock_for(db.write.url.database, db.writer_lock_timeout_s)
        self.writes: WritePath = PinnedWrites(db.write, lock)

    def statement(self, statement: Executable, columns: Sequence[str]) -> Statement:
        """A `DriverStatement`."""
        return DriverStatement(self.dialect, statement, columns)

    def key_query(self, statement: Select[Any], expanding: str) -> KeyQuery:
        """A `DriverQuery`."""
        return DriverQuery(self.dialect, statement, expanding)


class DriverStatement:
    """An INSERT, upsert or UPDATE over fixed columns, compiled once and run on the sqlite3 cursor.

    It keeps the bind processors of its parameters (JSON, floats, booleans, exactly as SQLAlchemy
    would apply them) and wraps driver errors into SQLAlchemy's exception classes, so callers see
    the same values and errors as through `Connection.execute`. An INSERT (or upsert) of n rows
    runs as a few multi-row statements (`VALUES (...), (...)`, in chunks of power-of-two sizes)
    rather than n executions: sqlite3 releases and retakes the GIL around every execution, and
    under load each retake may wait for the event loop to let go of it. Other statements (UPDATE)
    run with `executemany`.
    """

    def __init__(self, dialect: Dialect, statement: Executable, columns: Sequence[str]) -> None:
        self.statement = statement
        self.columns = tuple(columns)
        self.multi_row = isinstance(statement, Insert)
        self._dialect = dialect
        self._multi: dict[int, str] = {}
        # SQLite allows 32,766 parameters per statement (since 3.32); stay well inside it.
        self._max_rows = 1 << max(0, (8_192 // max(1, len(self.columns))).bit_length() - 1)
        compiled = statement.compile(dialect=dialect, column_keys=list(columns))  # type: ignore[attr-defined]
        self.sql: str = compiled.string
        names = compiled.positiontup or []
        if sorted(names) != sorted(columns):  # a column default or expression would be missed
            raise ValueError(f"statement parameters {names} differ from the columns {list(columns)}")
        self.bind: list[tuple[str, Callable[[Any], Any] | None]] = [
            (name, compiled.binds[name].type.bind_processor(dialect)) for name in names
        ]

    def execute(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> int:
        """Run the statement for every row, inside the connection's current transaction; rows changed."""
        if not rows:
            return 0
        bind = self.bind
        params = [tuple(row[name] if proc is None else proc(row[name]) for name, proc in bind) for row in rows]
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        sql = self.sql
        try:
            if not self.multi_row:
                cursor.executemany(sql, params)
                return int(cursor.rowcount)  # summed over the rows by executemany
            changed = 0
            start = 0
            while start < len(params):
                size = min(1 << ((len(params) - start).bit_length() - 1), self._max_rows)
                sql = self._multi_sql(size)
                chunk = [value for row in params[start : start + size] for value in row]
                cursor.execute(sql, chunk)
                changed += int(cursor.rowcount)
                start += size
            return changed
        except sqlite3.Error as exc:
            raise DBAPIError.instance(sql, params, exc, sqlite3.Error) from exc
        finally:
            cursor.close()

    def _multi_sql(self, size: int) -> str:
        """The statement with `size` rows of VALUES, parameters in row-major order of `self.bind`."""
        sql = self._multi.get(size)
        if sql is None:
            names = [name for name, _ in self.bind]
            values: list[dict[str, Any]] = [{name: bindparam(f"{name}__{i}") for name in names} for i in range(size)]
            compiled = self.statement.values(values).compile(dialect=self._dialect)  # type: ignore[attr-defined]
            expected = [f"{name}__{i}" for i in range(size) for name in names]
            if list(compiled.positiontup or []) != expected:
                raise ValueError(f"multi-row parameters out of order: {compiled.positiontup[: len(names)]}")
            sql = self._multi[size] = compiled.string
        return sql


class DriverQuery:
    """A SELECT with one expanding IN list, run on the sqlite3 cursor; rows as plain tuples.

    SQLAlchemy renders an expanding IN list anew on every call. Here the SQL is rendered once per
    power-of-two list length; a shorter list is padded by repeating its last value, which
    leaves `IN` unchanged. Result values go through the column types' result processors (JSON
    columns are decoded), so rows hold what `Connection.execute` would give.
    """

    def __init__(self, dialect: Dialect, statement: Select[Any], expanding: str) -> None:
        self.statement = statement
        self.expanding = expanding
        self._dialect = dialect
        self._compiled = statement.compile(dialect=dialect)
        self._sql: dict[int, tuple[str, list[tuple[int, Any]]]] = {}
        list_type = self._compiled.binds[expanding].type
        self._list_bind = list_type.dialect_impl(dialect).bind_processor(dialect)
        self._results = [
            c.type.dialect_impl(dialect).result_processor(dialect, None) for c in statement.selected_columns
        ]

    def rows(self, conn: Connection, values: Sequence[Any]) -> list[tuple[Any, ...]]:
        """The rows whose IN column matches one of `values`, in the statement's column order."""
        if not values:
            return []
        size = 1 << (len(values) - 1).bit_length()
        sql, template = self._sql.get(size) or self._render(size)
        padded = list(values) + [values[-1]] * (size - len(values))
        if self._list_bind is not None:
            padded = [self._list_bind(v) for v in padded]
        params = [padded[i] if i >= 0 else constant for i, constant in template]
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(sql, params)
            raw: list[tuple[Any, ...]] = cursor.fetchall()
        except sqlite3.Error as exc:
            raise DBAPIError.instance(sql, params, exc, sqlite3.Error) from exc
        finally:
            cursor.close()
        procs = self._results
        if not any(procs):
            return raw
        return [tuple(v if p is None else p(v) for p, v in zip(procs, row, strict=True)) for row in raw]

    def _render(self, size: int) -> tuple[str, list[tuple[int, Any]]]:
        """The SQL for `size` list values; per placeholder (index into the list, None) or (-1, processed constant)."""
        state = self._compiled.construct_expanded_state({self.expanding: [f"v{i}" for i in range(size)]})
        prefix = f"{self.expanding}_"
        template: list[tuple[int, Any]] = []
        for name in state.positiontup or []:
            if name.startswith(prefix) and name not in self._compiled.binds:
                template.append((int(name[len(prefix) :]) - 1, None))
            else:
                bind = self._compiled.binds[name]
                proc = bind.type.dialect_impl(self._dialect).bind_processor(self._dialect)
                value = state.parameters[name]
                template.append((-1, value if proc is None else proc(value)))
        self._sql[size] = (state.statement, template)
        return self._sql[size]


class PinnedWrites:
    """The writer's transactions on one SQLite connection kept open, each holding the file lock.

    Taking a connection from the pool and returning it (with its reset) was a measurable part of
    every batch, so the single writer keeps one open until `close`. A connection whose transaction
    did not end cleanly is closed, and the next batch opens a fresh one.
    """

    def __init__(self, engine: Engine, lock: FileWriterLock | None) -> None:
        self.engine = engine
        self._lock = lock
        self._conn: Connection | None = None
        self._guard = threading.Lock()

    def run_batch(self, groups: Sequence[tuple[Job, Sequence[Any]]], start: Callable[[], BatchRun]) -> list[list[Any]]:
        """One transaction; a batch of one group first runs without its savepoint.

        Requests of one kind usually arrive together, so most batches hold one group. If that
        group fails, its transaction is rolled back and the batch runs again the plain way, each
        group in a savepoint, with the same outcome.
        """
        if len(groups) == 1:
            _, items = groups[0]
            try:
                with self._transaction() as conn:
                    return run_groups(conn, groups, start(), savepoint=False)
            except OperationalError:
                raise  # the database itself is unavailable or locked: the whole batch fails
            except Exception:
                log.debug("write group of %d failed; running it again with savepoints", len(items))
        with self._transaction() as conn:
            return run_groups(conn, groups, start(), savepoint=True)

    @contextmanager
    def _transaction(self) -> Iterator[Connection]:
        lock: AbstractContextManager[None] = self._lock.hold() if self._lock is not None else nullcontext()
        with self._guard, lock:
            if self._conn is None:
                self._conn = self.engine.connect()
            conn = self._conn
            try:
                with conn.begin():
                    yield conn
            except OperationalError:
                self._drop()  # it may be broken (or its file gone): reopen next batch
                raise
            finally:
                if self._conn is not None and (conn.invalidated or conn.in_transaction()):
                    self._drop()

    def close(self) -> None:
        """Close the pinned connection and the lock file."""
        with self._guard:
            self._drop()
        if self._lock is not None:
            self._lock.close()

    def _drop(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            conn.close()


def writer_lock_for(database: str | None, timeout_s: float = 5.0) -> FileWriterLock | None:
    """The lock beside a SQLite file; None for an in-memory database (one process only)."""
    if not database or database == ":memory:":
        return None
    return FileWriterLock(Path(f"{database}-writer.lock"), timeout_s)


def _open_lock_file(path: Path) -> int:
    # A raw descriptor: no ResourceWarning if never closed.
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)


class FileWriterLock:
    """An exclusive flock on a side file: one write transaction at a time across processes.

    SQLite's own busy handler makes a waiting writer sleep in growing steps (up to 100 ms), so two
    worker processes on one file took turns slowly and those sleeps set the p99. The flock queues
    the writers in the kernel, which wakes the next one the moment the lock is released (after
    COMMIT), so each process still commits a whole group per turn. The side file stays open:
    opening it per transaction cost the writer thread a wait for the GIL each time.

    A process stopped while it holds the lock (SIGSTOP, a debugger, a frozen VM) must not stop the
    others: a writer that finds the lock taken waits at most `timeout_s`, then fails its batch with
    `WriterLockTimeoutError` (an OperationalError: the batch's requests get 503). A blocking flock cannot
    time out, so it runs in a `_LockWaiter` thread, which the kernel still wakes the moment the lock
    is free.
    """

    def __init__(self, path: Path, timeout_s: float = 5.0) -> None:
        self.path = path
        self.timeout_s = timeout_s
        self._thread_lock = threading.Lock()
        self._fd: int | None = None
        self._waiter: _LockWaiter | None = None  # started at the first contended turn

    @contextmanager
    def hold(self) -> Iterator[None]:
        """Hold the write turn for one transaction (OperationalError if it stays taken for `timeout_s`)."""
        with self._thread_lock:
            if self._fd is None:
                self._fd = _open_lock_file(self.path)
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # taken: wait in the waiter thread, for a bounded time
                if self._waiter is None:
                    self._waiter = _LockWaiter(self.path)
                with self._waiter.turn(self.timeout_s):
                    yield
                return
            try:
                yield
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        """Close the side file and stop the waiter thread (both are reopened if the lock is held again)."""
        with self._thread_lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            if self._waiter is not None:
                self._waiter.close()
                self._waiter = None


class _LockWaiter:
    """A thread that blocks in flock(LOCK_EX) on a descriptor of its own, for a writer that may stop waiting.

    A writer's turn: "idle" -> "wanted" (the thread blocks in flock) -> "held" (the writer writes)
    -> "idle". A writer that stops waiting leaves the turn "abandoned"; the thread, once it gets the
    lock, releases it at once, unless a later writer wanted it again meanwhile. Its own descriptor
    is a separate open file, so its flock and the writer's fast-path flock never merge into one lock.
    """

    def __init__(self, path: Path) -> None:
        self._fd = _open_lock_file(path)
        self._state: Literal["idle", "wanted", "held", "abandoned"] = "idle"
        self._closed = False
        self._changed = threading.Condition()
        threading.Thread(target=self._run, name="bandit-writer-lock", daemon=True).start()

    def _run(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._state == "wanted" or self._closed)
                if self._state != "wanted":  # closed
                    break
            fcntl.flock(self._fd, fcntl.LOCK_EX)  # without the GIL; the kernel wakes it when the lock is free
            with self._changed:
                if self._state == "wanted":
                    self._state = "held"
                    self._changed.notify_all()
                else:  # the writer stopped waiting: pass the lock on
                    fcntl.flock(self._fd, fcntl.LOCK_UN)
                    self._state = "idle"
        os.close(self._fd)

    @contextmanager
    def turn(self, timeout_s: float) -> Iterator[None]:
        """Hold the lock through this thread's descriptor; OperationalError if it is not free within `timeout_s`."""
        with self._changed:
            self._state = "wanted"  # from "idle", or from "abandoned" while the thread still waits in flock
            self._changed.notify_all()
            if not self._changed.wait_for(lambda: self._state == "held", timeout_s):
                self._state = "abandoned"
                reason = WriterLockTimeoutError(f"another process held the SQLite writer lock over {timeout_s:g} s")
                raise OperationalError("acquire the SQLite writer lock", None, reason)
        try:
            yield
        finally:
            with self._changed:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
                self._state = "idle"

    def close(self) -> None:
        """Let the thread end (once any flock it waits in returns) and close its descriptor."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()
