"""The stored always-valid looks: one row per (experiment, metric, arm), merged in SQL.

A look is merged into its row by one `INSERT ... ON CONFLICT DO UPDATE` whose SET clause is
`core.looks.merge_look` written in SQL (the smaller p-value, the tighter bounds, the looks added;
a look under other settings replaces the row):
the database applies it to the row as it is at that moment, under the row's lock, so two replicas
that record looks at once both count and the smaller p-value wins whichever commits first.

NaN (an arm without a figure yet) is stored as NULL, since SQLite turns NaN into NULL and
PostgreSQL orders NaN above every number: `coalesce` then keeps the other value, as `merge_look`
does. Infinite bounds are stored as they are (both databases keep IEEE infinities in a float column).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from bandit_service.core.looks import SequentialLook
from bandit_service.ports import WriteTx
from bandit_service.storage.database import Database
from bandit_service.storage.tables import SEQUENTIAL_LOOKS

__all__ = ["load_looks", "merge_looks_sql", "record_looks_job"]

_T = SEQUENTIAL_LOOKS


def _stored(x: float) -> float | None:
    return None if math.isnan(x) else x


def _read(x: float | None) -> float:
    return math.nan if x is None else float(x)


def _values(experiment_id: int, look: SequentialLook) -> dict[str, Any]:
    return {
        "experiment_id": experiment_id,
        "metric": look.metric,
        "arm": look.arm,
        "p_value": _stored(look.p_value),
        "lower": _stored(look.lower),
        "upper": _stored(look.upper),
        "looks": look.looks,
        "first_at": look.first_at,
        "last_at": look.last_at,
        "settings": look.settings,
    }


def merge_looks_sql(conn: Connection, db: Database, experiment_id: int, looks: Sequence[SequentialLook]) -> None:
    """Merge each look into its stored row (insert it if there is none), in (metric, arm) order."""
    if not looks:
        return
    # LEAST/GREATEST on PostgreSQL; SQLite's scalar min/max of two arguments do the same.
    least, greatest = (func.least, func.greatest) if db.dialect == "postgresql" else (func.min, func.max)
    insert = db.upsert(_T)
    new = insert.excluded

    def smaller(old: ColumnElement[Any], given: ColumnElement[Any]) -> ColumnElement[Any]:
        return least(func.coalesce(old, given), func.coalesce(given, old))

    def larger(old: ColumnElement[Any], given: ColumnElement[Any]) -> ColumnElement[Any]:
        return greatest(func.coalesce(old, given), func.coalesce(given, old))

    same = _T.c.settings == new.settings

    def merged(value: ColumnElement[Any], given: ColumnElement[Any]) -> ColumnElement[Any]:
        # Under other settings the look replaces the row: the running figures start afresh.
        return case((same, value), else_=given)

    statement = insert.on_conflict_do_update(
        index_elements=["experiment_id", "metric", "arm"],
        set_={
            "p_value": merged(smaller(_T.c.p_value, new.p_value), new.p_value),
            "lower": merged(larger(_T.c.lower, new.lower), new.lower),
            "upper": merged(smaller(_T.c.upper, new.upper), new.upper),
            "looks": merged(_T.c.looks + new.looks, new.looks),
            # 0 is "not known" (as in `merge_look`): the other time wins.
            "first_at": merged(
                case(
                    (new.first_at == 0, _T.c.first_at),
                    (_T.c.first_at == 0, new.first_at),
                    else_=least(_T.c.first_at, new.first_at),
                ),
                new.first_at,
            ),
            "last_at": merged(greatest(_T.c.last_at, new.last_at), new.last_at),
            "settings": new.settings,
        },
    )
    # One row at a time, sorted: concurrent transactions lock rows in the same order (no deadlock).
    for look in sorted(looks, key=lambda look: look.key):
        conn.execute(statement, _values(experiment_id, look))


def load_looks(conn: Connection, experiment_id: int) -> tuple[SequentialLook, ...]:
    """The experiment's stored looks, by (metric, arm) as Python orders them (not the database's collation)."""
    rows = conn.execute(select(_T).where(_T.c.experiment_id == experiment_id)).mappings()
    looks = (
        SequentialLook(
            metric=r["metric"],
            arm=r["arm"],
            p_value=_read(r["p_value"]),
            lower=_read(r["lower"]),
            upper=_read(r["upper"]),
            looks=int(r["looks"]),
            first_at=float(r["first_at"]),
            last_at=float(r["last_at"]),
            settings=r["settings"],
        )
        for r in rows
    )
    return tuple(sorted(looks, key=lambda look: look.key))


def record_looks_job(
    tx: WriteTx, items: Sequence[tuple[int, Sequence[SequentialLook]]]
) -> list[tuple[SequentialLook, ...]]:
    """Write job: merge each item's looks into its experiment's rows; the experiment's merged rows."""
    return [tx.merge_looks(experiment_id, looks) for experiment_id, looks in items]
