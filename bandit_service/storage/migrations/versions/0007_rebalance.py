"""Manual weights that move sticky units: the moved share in the weights history.

Existing rows were no rebalance, so the new column starts null for them.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add `weights_history.moved`: the share of stored sticky units a rebalance moved (null: none)."""
    with op.batch_alter_table("weights_history") as batch:
        batch.add_column(sa.Column("moved", sa.Float(), nullable=True))


def downgrade() -> None:
    """Drop it again."""
    with op.batch_alter_table("weights_history") as batch:
        batch.drop_column("moved")
