"""Counter increments of one transaction, summed in memory and written with one upsert per table.

Counters are sufficient statistics (counts, sums, sums of squares), so increments add up in any
order and a batch of a thousand events costs one statement per table. The upsert adds to the
stored values in SQL (`n = n + excluded.n`), so concurrent replicas never lose an update.

Rows are written sorted by key, and once per transaction (after all its job groups): two
replicas' transactions then lock the counter rows they share in the same order, so they wait
for each other instead of deadlocking.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.engine import Connection

from bandit_service.storage.database import Database
from bandit_service.storage.statements import Execution, Statement
from bandit_service.storage.tables import (
    ARM_COUNTERS,
    ARM_METRICS,
    PERIOD_METRICS,
    PERIODS,
)

__all__ = ["CounterDeltas", "CounterStatements"]

COUNTER_COLUMNS = ("units", "decisions", "rewarded", "expired", "n", "total", "total_sq")
METRIC_COLUMNS = ("n", "total", "total_sq")


class CounterDeltas:
    """Increments to the per-arm and per-period counters (and their metric twins)."""

    def __init__(self) -> None:
        self.arms: dict[tuple[int, int], list[float]] = {}
        self.periods: dict[tuple[int, int, int], list[float]] = {}
        self.arm_metrics: dict[tuple[int, int, str], list[float]] = {}
        self.period_metrics: dict[tuple[int, int, int, str], list[float]] = {}

    def __bool__(self) -> bool:
        return bool(self.arms or self.periods or self.arm_metrics or self.period_metrics)

    def decision(self, experiment_id: int, version: int, arm: int, new_unit: bool) -> None:
        """One decision logged (and one new unit if it was the unit's first)."""
        step: tuple[float, ...] = (1 if new_unit else 0, 1, 0, 0, 0.0, 0.0, 0.0)
        _add(self.arms, (experiment_id, arm), step)
        _add(self.periods, (experiment_id, version, arm), step)

    def reward(
        self,
        experiment_id: int,
        version: int,
        arm: int,
        value: float,
        metrics: Mapping[str, float],
        *,
        expired: bool,
    ) -> None:
        """One reward counted (received, or the default of an expired decision)."""
        step = (0, 0, 0 if expired else 1, 1 if expired else 0, 1.0, value, value * value)
        _add(self.arms, (experiment_id, arm), step)
        _add(self.periods, (experiment_id, version, arm), step)
        for name, x in metrics.items():
            metric_step = (1.0, x, x * x)
            _add(self.arm_metrics, (experiment_id, arm, name), metric_step)
            _add(self.period_metrics, (experiment_id, version, arm, name), metric_step)

    def merge(self, other: CounterDeltas) -> None:
        """Add another transaction part's increments to these."""
        for mine, theirs in zip(self._tables(), other._tables(), strict=True):
            for key, step in theirs.items():
                _add(mine, key, step)

    def _tables(self) -> list[dict[Any, list[float]]]:
        return [self.arms, self.periods, self.arm_metrics, self.period_metrics]

    def flush(self, conn: Connection, statements: CounterStatements) -> None:
        """Write all increments (one upsert statement per table) and forget them."""
        for deltas, (statement, keys, columns) in zip(self._tables(), statements.upserts, strict=True):
            if deltas:
                rows = [
                    {**dict(zip(keys, key, strict=True)), **dict(zip(columns, step, strict=True))}
                    for key, step in sorted(deltas.items())
                ]
                statement.execute(conn, rows)
            deltas.clear()


class CounterStatements:
    """The four counter upserts, built once per database (building SQL is the costly part)."""

    def __init__(self, db: Database, execution: Execution) -> None:
        self.upserts = [
            _upsert(db, execution, ARM_COUNTERS, ("experiment_id", "arm"), COUNTER_COLUMNS),
            _upsert(db, execution, PERIODS, ("experiment_id", "weights_version", "arm"), COUNTER_COLUMNS),
            _upsert(db, execution, ARM_METRICS, ("experiment_id", "arm", "metric"), METRIC_COLUMNS),
            _upsert(
                db, execution, PERIOD_METRICS, ("experiment_id", "weights_version", "arm", "metric"), METRIC_COLUMNS
            ),
        ]


def _add(table: dict[Any, list[float]], key: Any, step: Sequence[float]) -> None:
    current = table.get(key)
    if current is None:
        table[key] = list(step)
    else:
        for i, x in enumerate(step):
            current[i] += x


def _upsert(
    db: Database, execution: Execution, table: Table, keys: tuple[str, ...], columns: tuple[str, ...]
) -> tuple[Statement, tuple[str, ...], tuple[str, ...]]:
    insert = db.upsert(table)
    statement = insert.on_conflict_do_update(
        index_elements=list(keys),
        set_={c: table.c[c] + insert.excluded[c] for c in columns},
    )
    return execution.statement(statement, keys + columns), keys, columns
