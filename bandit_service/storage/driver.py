"""Hot-path writes compiled once and run on the SQLite driver's cursor, skipping SQLAlchemy's per-call work.

The group-commit writer runs a handful of statements per batch while the event loop serves
requests in the same process. SQLAlchemy's execution machinery (cache lookup, execution
context, result set-up) costs tens of microseconds of GIL time per statement, time the event
loop waits for. A `DriverStatement` compiles its SQLAlchemy statement once, keeps the bind
processors of its parameters (JSON, floats, booleans, exactly as SQLAlchemy would apply them),
and calls the DBAPI `executemany` on the transaction's own connection. Driver errors are
wrapped into SQLAlchemy's exception classes, so callers see the same errors as before. Other
dialects use `Connection.execute` unchanged.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.base import Executable

from bandit_service.storage.database import Database

__all__ = ["DriverStatement"]


class DriverStatement:
    """An INSERT (or upsert) over fixed columns, run with the driver's executemany on SQLite."""

    def __init__(self, db: Database, statement: Executable, columns: Sequence[str]) -> None:
        self.statement = statement
        self.sqlite = db.dialect == "sqlite"
        self.sql = ""
        self.bind: list[tuple[str, Callable[[Any], Any] | None]] = []
        if self.sqlite:
            dialect = db.write.dialect
            compiled = statement.compile(dialect=dialect, column_keys=list(columns))  # type: ignore[attr-defined]
            self.sql = compiled.string
            names = compiled.positiontup or []
            if sorted(names) != sorted(columns):  # a column default or expression would be missed
                raise ValueError(f"statement parameters {names} differ from the columns {list(columns)}")
            self.bind = [(name, compiled.binds[name].type.bind_processor(dialect)) for name in names]

    def execute(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Run the statement once per row, inside the connection's current transaction."""
        if not rows:
            return
        if not self.sqlite:
            conn.execute(self.statement, list(rows))
            return
        bind = self.bind
        params = [tuple(row[name] if proc is None else proc(row[name]) for name, proc in bind) for row in rows]
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.executemany(self.sql, params)
        except sqlite3.Error as exc:
            raise DBAPIError.instance(self.sql, params, exc, sqlite3.Error) from exc
        finally:
            cursor.close()
