"""Locally evaluated decisions: the ids SDKs logged (so a retried log counts once) and their counters.

Existing counters saw no locally logged decision, so the new columns start at 0.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add `logged_decisions` and the per-arm counters `local` and `contradicted`."""
    op.create_table(
        "logged_decisions",
        sa.Column("decision_id", sa.String(length=64), nullable=False),
        sa.Column("experiment_id", sa.Integer(), nullable=False),
        sa.Column("logged_at", sa.Float(), nullable=False),
        sa.Column("contradicts", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.PrimaryKeyConstraint("decision_id"),
    )
    with op.batch_alter_table("arm_counters") as batch:
        batch.add_column(sa.Column("local", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("contradicted", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    """Drop them again (the locally logged decisions stay counted as trials and exposures)."""
    with op.batch_alter_table("arm_counters") as batch:
        batch.drop_column("contradicted")
        batch.drop_column("local")
    op.drop_table("logged_decisions")
