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

COUNTER_COLUMNS = ("units", "trials", "exposures", "rewarded", "expired", "excluded", "n", "total", "total_sq")
METRIC_COLUMNS = ("n", "total", "total_sq")
LOCAL_COLUMNS = ("local", "contradicted")
# A local-decision row names every counter column (the zeros insert a row the arm lacks), and adds to
# `local` and `contradicted` only: the hot path's own upsert stays as it was.
_LOCAL_ZEROS = (0,) * len(COUNTER_COLUMNS)


class CounterDeltas:
    """Increments to the per-arm and per-period counters (and their metric twins)."""

    def __init__(self) -> None:
        self.arms: dict[tuple[int, int], list[float]] = {}
        self.periods: dict[tuple[int, int, int, int], list[float]] = {}  # (experiment, version, day, arm)
        self.arm_metrics: dict[tuple[int, int, str], list[float]] = {}
        self.period_metrics: dict[tuple[int, int, int, int, str], list[float]] = {}
        self.local: dict[tuple[int, int], list[float]] = {}  # COUNTER_COLUMNS zeros, then LOCAL_COLUMNS

    def __bool__(self) -> bool:
        return bool(self.arms or self.periods or self.arm_metrics or self.period_metrics or self.local)

    def add(self, experiment_id: int, version: int, day: int, arm: int, step: Sequence[float]) -> None:
        """Add one step (in COUNTER_COLUMNS order, see `storage.counter_steps`) to an arm and its period's `day`
        (the UTC day its trial opened, `core.report_data.day_of`)."""
        _add(self.arms, (experiment_id, arm), step)
        _add(self.periods, (experiment_id, version, day, arm), step)

    def metrics(self, experiment_id: int, version: int, day: int, arm: int, metrics: Mapping[str, float]) -> None:
        """One observation of each extra metric (of a trial opened on `day`)."""
        for name, x in metrics.items():
            metric_step = (1.0, x, x * x)
            _add(self.arm_metrics, (experiment_id, arm, name), metric_step)
            _add(self.period_metrics, (experiment_id, version, day, arm, name), metric_step)

    def local_decision(self, experiment_id: int, arm: int, contradicted: bool) -> None:
        """One decision an SDK logged on this arm (and whether it contradicted the unit's sticky arm)."""
        _add(self.local, (experiment_id, arm), (*_LOCAL_ZEROS, 1, 1 if contradicted else 0))

    def merge(self, other: CounterDeltas) -> None:
        """Add another transaction part's increments to these."""
        for mine, theirs in zip(self._tables(), other._tables(), strict=True):
            for key, step in theirs.items():
                _add(mine, key, step)

    def _tables(self) -> list[dict[Any, list[float]]]:
        return [self.arms, self.periods, self.arm_metrics, self.period_metrics, self.local]

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
    """The counter upserts, built once per database (building SQL is the costly part).

    The last adds SDK-logged decisions to `arm_counters` after the first has written the same rows
    (each such decision also counts a trial or an exposure on its arm), so it takes no new lock.
    """

    def __init__(self, db: Database, execution: Execution) -> None:
        self.upserts = [
            _upsert(db, execution, ARM_COUNTERS, ("experiment_id", "arm"), COUNTER_COLUMNS),
            _upsert(db, execution, PERIODS, ("experiment_id", "weights_version", "day", "arm"), COUNTER_COLUMNS),
            _upsert(db, execution, ARM_METRICS, ("experiment_id", "arm", "metric"), METRIC_COLUMNS),
            _upsert(
                db,
                execution,
                PERIOD_METRICS,
                ("experiment_id", "weights_version", "day", "arm", "metric"),
                METRIC_COLUMNS,
            ),
            _upsert(
                db, execution, ARM_COUNTERS, ("experiment_id", "arm"), COUNTER_COLUMNS + LOCAL_COLUMNS, LOCAL_COLUMNS
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
    db: Database,
    execution: Execution,
    table: Table,
    keys: tuple[str, ...],
    columns: tuple[str, ...],
    adds: tuple[str, ...] | None = None,
) -> tuple[Statement, tuple[str, ...], tuple[str, ...]]:
    """Insert `columns`, or add them (only `adds`, if given) to the row's stored values."""
    insert = db.upsert(table)
    statement = insert.on_conflict_do_update(
        index_elements=list(keys),
        set_={c: table.c[c] + insert.excluded[c] for c in (columns if adds is None else adds)},
    )
    return execution.statement(statement, keys + columns), keys, columns
