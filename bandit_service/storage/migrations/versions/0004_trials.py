"""Unit-level trials: exposures and excluded counters, several rewards per trial, a unit's open trial.

Existing data keep their meaning: every stored decision was its own trial, so the `decisions`
counters become `trials`, and `exposures` start equal to them; every stored reward is its
trial's first (`seq` 0) and its value is the trial's value.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COUNTER_TABLES = ("arm_counters", "period_counters")


def upgrade() -> None:
    """Rename and add the counters, key rewards by (decision, seq), remember each unit's open trial."""
    for table in COUNTER_TABLES:
        with op.batch_alter_table(table) as batch:
            batch.alter_column(
                "decisions", new_column_name="trials", existing_type=sa.Integer(), existing_nullable=False
            )
            batch.add_column(sa.Column("exposures", sa.Integer(), nullable=False, server_default="0"))
            batch.add_column(sa.Column("excluded", sa.Integer(), nullable=False, server_default="0"))
        op.execute(sa.text(f"UPDATE {table} SET exposures = trials"))
    with op.batch_alter_table("assignments") as batch:
        batch.add_column(sa.Column("trial_id", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("trial_expires_at", sa.Float(), nullable=True))
    # The new primary key: PostgreSQL alters it in place; SQLite cannot, so the table is rebuilt.
    if op.get_bind().dialect.name == "postgresql":
        op.add_column("rewards", sa.Column("seq", sa.Integer(), nullable=False, server_default="0"))
        op.add_column("rewards", sa.Column("trial_value", sa.Float(), nullable=True))
        op.drop_constraint("rewards_pkey", "rewards", type_="primary")
        op.create_primary_key("rewards_pkey", "rewards", ["decision_id", "seq"])
        op.execute(sa.text("UPDATE rewards SET trial_value = value"))
        return
    _rebuild_rewards(["decision_id", "seq"], with_trials=True)
    op.execute(
        sa.text(f"INSERT INTO rewards ({_COPIED}, seq, trial_value) SELECT {_COPIED}, 0, value FROM _rewards_old")
    )
    op.drop_table("_rewards_old")


def downgrade() -> None:
    """Back to one reward per decision (a unit trial's later rewards are dropped) and the old counters."""
    op.execute(sa.text("DELETE FROM rewards WHERE seq > 0"))
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint("rewards_pkey", "rewards", type_="primary")
        op.create_primary_key("rewards_pkey", "rewards", ["decision_id"])
        op.drop_column("rewards", "trial_value")
        op.drop_column("rewards", "seq")
    else:
        _rebuild_rewards(["decision_id"], with_trials=False)
        op.execute(sa.text(f"INSERT INTO rewards ({_COPIED}) SELECT {_COPIED} FROM _rewards_old"))
        op.drop_table("_rewards_old")
    with op.batch_alter_table("assignments") as batch:
        batch.drop_column("trial_expires_at")
        batch.drop_column("trial_id")
    for table in COUNTER_TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("excluded")
            batch.drop_column("exposures")
            batch.alter_column(
                "trials", new_column_name="decisions", existing_type=sa.Integer(), existing_nullable=False
            )


_COPIED = "decision_id, experiment_id, arm, weights_version, value, metrics, idempotency_key, body_hash, created_at"


def _rebuild_rewards(key: list[str], *, with_trials: bool) -> None:
    """SQLite: move the rewards table aside and create it again with the primary key `key` (empty)."""
    op.rename_table("rewards", "_rewards_old")
    trial_columns: list[sa.Column[Any]] = [
        sa.Column("seq", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("trial_value", sa.Float(), nullable=True),
    ]
    op.create_table(
        "rewards",
        sa.Column("decision_id", sa.String(length=64), nullable=False),
        sa.Column("experiment_id", sa.Integer(), nullable=False),
        sa.Column("arm", sa.Integer(), nullable=False),
        sa.Column("weights_version", sa.Integer(), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=True),
        sa.Column("body_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        *(trial_columns if with_trials else []),
        sa.PrimaryKeyConstraint(*key),
        sa.UniqueConstraint("idempotency_key"),
    )
