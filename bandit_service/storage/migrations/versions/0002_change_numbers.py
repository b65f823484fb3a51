"""Change numbers: every experiment change is numbered in commit order, so caches can poll for them.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """The one-row counter, and each experiment's last change number (0: before this revision)."""
    counter = op.create_table(
        "change_counter",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.bulk_insert(counter, [{"id": 1, "seq": 0}])
    with op.batch_alter_table("experiments") as batch:
        batch.add_column(sa.Column("change_seq", sa.Integer(), nullable=False, server_default="0"))
        batch.create_index("ix_experiments_change_seq", ["change_seq"], unique=False)


def downgrade() -> None:
    """Drop them again."""
    with op.batch_alter_table("experiments") as batch:
        batch.drop_index("ix_experiments_change_seq")
        batch.drop_column("change_seq")
    op.drop_table("change_counter")
