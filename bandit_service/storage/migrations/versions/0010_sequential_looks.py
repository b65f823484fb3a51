"""Stored always-valid looks: the running minimum p-value and running intersection per arm and metric.

One row per (experiment, metric, arm), merged by every whole-experiment report (`storage.looks`);
`settings` names the level and mSPRT tuning they were computed under (other settings start afresh).
Experiments reported before this revision start with no looks: their next report is the first.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """The `sequential_looks` table."""
    op.create_table(
        "sequential_looks",
        sa.Column("experiment_id", sa.Integer(), nullable=False),
        sa.Column("metric", sa.String(length=64), nullable=False),
        sa.Column("arm", sa.String(length=64), nullable=False),
        sa.Column("p_value", sa.Float(), nullable=True),
        sa.Column("lower", sa.Float(), nullable=True),
        sa.Column("upper", sa.Float(), nullable=True),
        sa.Column("looks", sa.Integer(), nullable=False),
        sa.Column("first_at", sa.Float(), nullable=False),
        sa.Column("last_at", sa.Float(), nullable=False),
        sa.Column("settings", sa.String(length=64), nullable=False, server_default=""),
        sa.PrimaryKeyConstraint("experiment_id", "metric", "arm"),
    )


def downgrade() -> None:
    """Drop it again (the next report starts the running figures afresh)."""
    op.drop_table("sequential_looks")
