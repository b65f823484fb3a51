"""How the SQL storage runs its hot-path statements and its write transactions: the seams, and
plain versions that use only SQLAlchemy's public API, so they work on every dialect.

`sqlite_speedups` holds faster SQLite-only versions behind the same three interfaces
(`Statement`, `KeyQuery`, `WritePath`) and `choose_execution`, which picks one set per database.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from sqlalchemy import Engine, Select
from sqlalchemy.engine import Connection
from sqlalchemy.sql.base import Executable

from bandit_service.ports import Job

__all__ = [
    "BatchRun",
    "Execution",
    "KeyQuery",
    "PlainExecution",
    "PlainKeyQuery",
    "PlainStatement",
    "PooledWrites",
    "Statement",
    "WritePath",
    "run_groups",
]


class Statement(Protocol):
    """An INSERT, upsert or UPDATE over fixed columns, run for many rows at once."""

    def execute(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> int:
        """Run it for every row inside the connection's transaction; the rows changed, as the driver counts them."""
        ...


class KeyQuery(Protocol):
    """A SELECT with one expanding IN list; rows as plain tuples in the statement's column order."""

    def rows(self, conn: Connection, values: Sequence[Any]) -> list[tuple[Any, ...]]:
        """The rows whose IN column matches one of `values`."""
        ...


class BatchRun(Protocol):
    """The repository's part of one attempt at a batch: its job groups, then what is written once at the end."""

    def group(self, conn: Connection, job: Job, items: Sequence[Any], *, savepoint: bool) -> list[Any]:
        """Per item, its result or the exception that refused it (without a savepoint, a failure raises)."""
        ...

    def finish(self, conn: Connection) -> None:
        """Write what the groups accumulated (counter increments), just before COMMIT."""
        ...


def run_groups(
    conn: Connection, groups: Sequence[tuple[Job, Sequence[Any]]], run: BatchRun, *, savepoint: bool
) -> list[list[Any]]:
    """Run every group of a batch, then its end-of-batch writes, inside the connection's transaction."""
    results = [run.group(conn, job, items, savepoint=savepoint) for job, items in groups]
    run.finish(conn)
    return results


class WritePath(Protocol):
    """Where the single writer's transactions run."""

    def run_batch(self, groups: Sequence[tuple[Job, Sequence[Any]]], start: Callable[[], BatchRun]) -> list[list[Any]]:
        """Run all groups in one transaction (`start()` makes each attempt's `BatchRun`); per group,
        per item, its result or the exception that refused it."""
        ...

    def close(self) -> None:
        """Release what the write path holds open."""
        ...


class Execution(Protocol):
    """The statement builders and the write path of one database."""

    writes: WritePath

    def statement(self, statement: Executable, columns: Sequence[str]) -> Statement:
        """`statement`, run with values for exactly `columns` per row."""
        ...

    def key_query(self, statement: Select[Any], expanding: str) -> KeyQuery:
        """`statement`, run with its expanding bind parameter `expanding` set to a list of keys."""
        ...


class PlainStatement:
    """`Connection.execute` with the rows (an executemany)."""

    def __init__(self, statement: Executable) -> None:
        self.statement = statement

    def execute(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> int:
        """Run the statement for every row, inside the connection's current transaction; rows changed."""
        if not rows:
            return 0
        return int(conn.execute(self.statement, list(rows)).rowcount)


class PlainKeyQuery:
    """`Connection.execute` with the list of keys."""

    def __init__(self, statement: Select[Any], expanding: str) -> None:
        self.statement = statement
        self.expanding = expanding

    def rows(self, conn: Connection, values: Sequence[Any]) -> list[tuple[Any, ...]]:
        """The rows whose IN column matches one of `values`, in the statement's column order."""
        if not values:
            return []
        return [tuple(r) for r in conn.execute(self.statement, {self.expanding: list(values)})]


class PooledWrites:
    """A pooled connection per write transaction; each job group in its own savepoint."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def run_batch(self, groups: Sequence[tuple[Job, Sequence[Any]]], start: Callable[[], BatchRun]) -> list[list[Any]]:
        """Run all groups in one transaction (the pool's checkout ping replaces a connection the server dropped)."""
        with self.engine.connect() as conn, conn.begin():
            return run_groups(conn, groups, start(), savepoint=True)

    def close(self) -> None:
        """Nothing to release: connections go back to the pool after each transaction."""


class PlainExecution:
    """SQLAlchemy's public API only: every dialect."""

    def __init__(self, write: Engine) -> None:
        self.writes: WritePath = PooledWrites(write)

    def statement(self, statement: Executable, columns: Sequence[str]) -> Statement:
        """`Connection.execute` with the rows (SQLAlchemy takes the columns from the rows' keys)."""
        return PlainStatement(statement)

    def key_query(self, statement: Select[Any], expanding: str) -> KeyQuery:
        """`Connection.execute` with the list of keys."""
        return PlainKeyQuery(statement, expanding)
