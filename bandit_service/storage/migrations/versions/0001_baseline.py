"""Baseline: the schema `metadata.create_all` made before migrations existed.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _counters() -> list[sa.Column[Any]]:
    """The counter columns the per-arm and per-period tables share (`tables._Counters`)."""
    return [
        sa.Column("units", sa.Integer(), nullable=False),
        sa.Column("decisions", sa.Integer(), nullable=False),
        sa.Column("rewarded", sa.Integer(), nullable=False),
        sa.Column("expired", sa.Integer(), nullable=False),
        *_metric_counters(),
    ]


def _metric_counters() -> list[sa.Column[Any]]:
    """The sufficient statistics the metric tables share (`tables._MetricCounters`)."""
    return [
        sa.Column("n", sa.Float(), nullable=False),
        sa.Column("total", sa.Float(), nullable=False),
        sa.Column("total_sq", sa.Float(), nullable=False),
    ]


def upgrade() -> None:
    """Create the baseline tables."""
    op.create_table(
        "experiments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("description", sa.String(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("salt", sa.String(length=64), nullable=False),
        sa.Column("winner", sa.String(length=64), nullable=True),
        sa.Column("weights", sa.JSON(), nullable=False),
        sa.Column("weights_version", sa.Integer(), nullable=False),
        sa.Column("next_reweight_at", sa.Float(), nullable=True),
        sa.Column("reweighted_at", sa.Float(), nullable=True),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("started_at", sa.Float(), nullable=True),
        sa.Column("completed_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key"),
    )
    op.create_index("ix_experiments_due", "experiments", ["status", "next_reweight_at"], unique=False)
    op.create_table(
        "arms",
        sa.Column("experiment_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("weight", sa.Float(), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(["experiment_id"], ["experiments.id"]),
        sa.PrimaryKeyConstraint("experiment_id", "position"),
    )
    op.create_table(
        "assignments",
        sa.Column("experiment_id", sa.Integer(), nullable=False),
        sa.Column("unit", sa.String(length=256), nullable=False),
        sa.Column("arm", sa.Integer(), nullable=False),
        sa.Column("propensity", sa.Float(), nullable=False),
        sa.Column("weights_version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("experiment_id", "unit"),
    )
    op.create_table(
        "decisions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("experiment_id", sa.Integer(), nullable=False),
        sa.Column("unit", sa.String(length=256), nullable=True),
        sa.Column("arm", sa.Integer(), nullable=False),
        sa.Column("propensity", sa.Float(), nullable=False),
        sa.Column("weights_version", sa.Integer(), nullable=False),
        sa.Column("attributes", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("new_unit", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_decisions_pending", "decisions", ["status", "expires_at"], unique=False)
    op.create_index("ix_decisions_experiment", "decisions", ["experiment_id", "created_at"], unique=False)
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
        sa.PrimaryKeyConstraint("decision_id"),
        sa.UniqueConstraint("idempotency_key"),
    )
    op.create_table(
        "arm_counters",
        *_counters(),
        sa.Column("experiment_id", sa.Integer(), nullable=False),
        sa.Column("arm", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("experiment_id", "arm"),
    )
    op.create_table(
        "period_counters",
        *_counters(),
        sa.Column("experiment_id", sa.Integer(), nullable=False),
        sa.Column("weights_version", sa.Integer(), nullable=False),
        sa.Column("arm", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("experiment_id", "weights_version", "arm"),
    )
    op.create_table(
        "arm_metrics",
        *_metric_counters(),
        sa.Column("experiment_id", sa.Integer(), nullable=False),
        sa.Column("arm", sa.Integer(), nullable=False),
        sa.Column("metric", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("experiment_id", "arm", "metric"),
    )
    op.create_table(
        "period_metrics",
        *_metric_counters(),
        sa.Column("experiment_id", sa.Integer(), nullable=False),
        sa.Column("weights_version", sa.Integer(), nullable=False),
        sa.Column("arm", sa.Integer(), nullable=False),
        sa.Column("metric", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("experiment_id", "weights_version", "arm", "metric"),
    )
    op.create_table(
        "weights_history",
        sa.Column("experiment_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("weights", sa.JSON(), nullable=False),
        sa.Column("stats", sa.JSON(), nullable=False),
        sa.Column("reason", sa.String(length=16), nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=True),
        sa.Column("churn", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("experiment_id", "version"),
    )
    op.create_table(
        "events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("experiment_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_events_experiment", "events", ["experiment_id", "id"], unique=False)
    op.create_table(
        "arm_sketches",
        sa.Column("experiment_id", sa.Integer(), nullable=False),
        sa.Column("arm", sa.Integer(), nullable=False),
        sa.Column("metric", sa.String(length=64), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("zero_count", sa.BigInteger(), nullable=False),
        sa.Column("total", sa.Float(), nullable=False),
        sa.Column("minimum", sa.Float(), nullable=False),
        sa.Column("maximum", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("experiment_id", "arm", "metric"),
    )
    op.create_table(
        "sketch_buckets",
        sa.Column("experiment_id", sa.Integer(), nullable=False),
        sa.Column("arm", sa.Integer(), nullable=False),
        sa.Column("metric", sa.String(length=64), nullable=False),
        sa.Column("bucket", sa.Integer(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("experiment_id", "arm", "metric", "bucket"),
    )
    op.create_table(
        "rollouts",
        sa.Column("experiment_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("steps", sa.JSON(), nullable=False),
        sa.Column("winner", sa.String(length=64), nullable=True),
        sa.Column("base_weights", sa.JSON(), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("step_started_at", sa.Float(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(), nullable=True),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("experiment_id", "kind"),
    )
    op.create_index("ix_rollouts_status", "rollouts", ["status"], unique=False)


def downgrade() -> None:
    """Drop every table."""
    for table in (
        "rollouts",
        "sketch_buckets",
        "arm_sketches",
        "events",
        "weights_history",
        "period_metrics",
        "arm_metrics",
        "period_counters",
        "arm_counters",
        "rewards",
        "decisions",
        "assignments",
        "arms",
        "experiments",
    ):
        op.drop_table(table)
