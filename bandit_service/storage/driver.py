"""Hot-path statements compiled once and run on the SQLite driver's cursor, skipping SQLAlchemy's per-call work.

The group-commit writer runs a handful of statements per batch while the event loop serves
requests in the same process. SQLAlchemy's execution machinery (cache lookup, execution
context, result set-up) holds the GIL on every statement, time the event loop waits for. A
`DriverStatement` compiles its SQLAlchemy statement once, keeps the bind processors of its
parameters (JSON, floats, booleans, exactly as SQLAlchemy would apply them), and runs it on the
transaction's own DBAPI connection. Driver errors are wrapped into SQLAlchemy's exception
classes, so callers see the same errors as before. Other dialects use `Connection.execute`
unchanged. `DriverQuery` does the same for a SELECT by a list of keys.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import bindparam
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import Insert, Select
from sqlalchemy.sql.base import Executable

from bandit_service.storage.database import Database

__all__ = ["DriverQuery", "DriverStatement"]


class DriverStatement:
    """An INSERT, upsert or UPDATE over fixed columns, run on the SQLite driver's cursor.

    An INSERT (or upsert) of n rows runs as a few multi-row statements (`VALUES (...), (...)`,
    in chunks of power-of-two sizes) rather than n executions: sqlite3 releases and retakes the
    GIL around every execution, and under load each retake may wait for the event loop to let
    go of it. Other statements (UPDATE) run with `executemany`.
    """

    def __init__(self, db: Database, statement: Executable, columns: Sequence[str]) -> None:
        self.statement = statement
        self.columns = tuple(columns)
        self.sqlite = db.dialect == "sqlite"
        self.multi_row = isinstance(statement, Insert)
        self.sql = ""
        self.bind: list[tuple[str, Callable[[Any], Any] | None]] = []
        self._dialect = db.write.dialect
        self._multi: dict[int, str] = {}
        # SQLite allows 32,766 parameters per statement (since 3.32); stay well inside it.
        self._max_rows = 1 << max(0, (8_192 // max(1, len(self.columns))).bit_length() - 1)
        if self.sqlite:
            compiled = statement.compile(dialect=self._dialect, column_keys=list(columns))  # type: ignore[attr-defined]
            self.sql = compiled.string
            names = compiled.positiontup or []
            if sorted(names) != sorted(columns):  # a column default or expression would be missed
                raise ValueError(f"statement parameters {names} differ from the columns {list(columns)}")
            self.bind = [(name, compiled.binds[name].type.bind_processor(self._dialect)) for name in names]

    def execute(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> int:
        """Run the statement for every row, inside the connection's current transaction; rows changed."""
        if not rows:
            return 0
        if not self.sqlite:
            return int(conn.execute(self.statement, list(rows)).rowcount)
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
    """A SELECT with one expanding IN list, run on the SQLite driver's cursor; rows as plain tuples.

    SQLAlchemy renders an expanding IN list anew on every call. Here the SQL is rendered once per
    power-of-two list length; a shorter list is padded by repeating its last value, which
    leaves `IN` unchanged. Result values go through the column types' result processors (JSON
    columns are decoded), so rows hold what `Connection.execute` would give. Other dialects use
    `Connection.execute` unchanged.
    """

    def __init__(self, db: Database, statement: Select[Any], expanding: str) -> None:
        self.statement = statement
        self.expanding = expanding
        self.sqlite = db.dialect == "sqlite"
        self._dialect = db.write.dialect
        self._compiled = statement.compile(dialect=self._dialect)
        self._sql: dict[int, tuple[str, list[tuple[int, Any]]]] = {}
        list_type = self._compiled.binds[expanding].type
        self._list_bind = list_type.dialect_impl(self._dialect).bind_processor(self._dialect)
        self._results = [
            c.type.dialect_impl(self._dialect).result_processor(self._dialect, None) for c in statement.selected_columns
        ]

    def rows(self, conn: Connection, values: Sequence[Any]) -> list[tuple[Any, ...]]:
        """The rows whose IN column matches one of `values`, in the statement's column order."""
        if not values:
            return []
        if not self.sqlite:
            return [tuple(r) for r in conn.execute(self.statement, {self.expanding: list(values)})]
        size = 1 << (len(values) - 1).bit_length()
        sql, template = self._sql.get(size) or self._render(size)
        padded = list(values) + [values[-1]] * (size - len(values))
        if self._list_bind is not None:
            padded = [self._list_bind(v) for v in padded]
        params = [padded[i] if i >= 0 else constant for i, constant in template]
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(sql, params)
            raw = cursor.fetchall()
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
