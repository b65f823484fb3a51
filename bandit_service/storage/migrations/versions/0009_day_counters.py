"""Per-period counters by UTC day: `day` joins the primary keys of `period_counters` and `period_metrics`.

A trial counts on the day its opening decision was made (whole days since 1970-01-01, UTC), so
reports can cover a range of days and the counters give a daily series. The day of a counter
recorded before this revision is not known: such counters are dated to the first day of their
weights period (the day `weights_history.created_at` of their version falls on; day 0 for a
version without a history row). A report over a range that starts after that day leaves them out.

Both tables are rebuilt (moved aside, created with the new key, copied, dropped): SQLite cannot
change a primary key in place, and one path for both databases is one path to test. The
downgrade sums the days of each (version, arm[, metric]) back into one row.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COUNTERS = ("units", "trials", "exposures", "rewarded", "expired", "excluded", "n", "total", "total_sq")
METRICS = ("n", "total", "total_sq")
# (table, value columns, key columns after (experiment_id, weights_version, [day,] arm))
TABLES = (("period_counters", COUNTERS, ()), ("period_metrics", METRICS, ("metric",)))


def _columns(table: str) -> list[sa.Column[Any]]:
    counters = [sa.Column(name, sa.Integer(), nullable=False) for name in COUNTERS[:6]]
    sums = [sa.Column(name, sa.Float(), nullable=False) for name in METRICS]
    if table == "period_counters":
        return [*counters, *sums]
    return [*sums, sa.Column("metric", sa.String(length=64), nullable=False)]


def _rebuild(table: str, *, with_day: bool) -> str:
    """Move `table` aside and create it again (empty) with or without `day` in its key; the old table's name."""
    old = f"_{table}_old"
    op.rename_table(table, old)
    if op.get_bind().dialect.name == "postgresql":
        # The renamed table keeps its key's name; the new table's key takes that name.
        op.drop_constraint(f"{table}_pkey", old, type_="primary")
    extra = ["metric"] if table == "period_metrics" else []
    key = ["experiment_id", "weights_version", *(["day"] if with_day else []), "arm", *extra]
    op.create_table(
        table,
        *_columns(table),
        sa.Column("experiment_id", sa.Integer(), nullable=False),
        sa.Column("weights_version", sa.Integer(), nullable=False),
        *([sa.Column("day", sa.Integer(), nullable=False)] if with_day else []),
        sa.Column("arm", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(*key),
    )
    return old


def _first_day() -> str:
    """SQL for the day a weights version began (w.created_at); days are whole and times positive."""
    if op.get_bind().dialect.name == "postgresql":
        return "CAST(FLOOR(w.created_at / 86400.0) AS INTEGER)"
    return "CAST(w.created_at / 86400.0 AS INTEGER)"  # truncation is the floor of a positive time


def upgrade() -> None:
    """Add `day` to both keys; existing counters go to the first day of their weights period."""
    for table, values, extra in TABLES:
        old = _rebuild(table, with_day=True)
        keys = ", ".join(("experiment_id", "weights_version", "arm", *extra))
        copied = ", ".join((*values, *(f"o.{k}" for k in ("experiment_id", "weights_version", "arm", *extra))))
        op.execute(
            sa.text(
                f"INSERT INTO {table} ({', '.join(values)}, {keys}, day)"
                f" SELECT {copied}, COALESCE({_first_day()}, 0) FROM {old} o"
                " LEFT JOIN weights_history w ON w.experiment_id = o.experiment_id AND w.version = o.weights_version"
            )
        )
        op.drop_table(old)


def downgrade() -> None:
    """Sum the days of each weights period back into one row."""
    for table, values, extra in TABLES:
        old = _rebuild(table, with_day=False)
        keys = ", ".join(("experiment_id", "weights_version", "arm", *extra))
        sums = ", ".join(f"SUM({v})" for v in values)
        columns = ", ".join(values)
        op.execute(sa.text(f"INSERT INTO {table} ({columns}, {keys}) SELECT {sums}, {keys} FROM {old} GROUP BY {keys}"))
        op.drop_table(old)
