"""Learner metrics: periodic samples of the learner's counters, throughput, replay sizes and
losses, so the operator service can plot training progress.

Reviewed by hand after autogeneration.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "learner_metrics",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("session", sa.String(length=32), nullable=False),
        sa.Column("update_step", sa.BigInteger(), nullable=False),
        sa.Column("env_steps", sa.BigInteger(), nullable=False),
        sa.Column("episodes", sa.Integer(), nullable=False),
        sa.Column("updates_per_s", sa.Float(), nullable=False),
        sa.Column("online_transitions", sa.Integer(), nullable=False),
        sa.Column("demo_transitions", sa.Integer(), nullable=False),
        sa.Column("online_episodes", sa.Integer(), nullable=False),
        sa.Column("demo_episodes", sa.Integer(), nullable=False),
        sa.Column("scalars", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "update_step >= 0", name=op.f("ck_learner_metrics_update_step_nonnegative")
        ),
        sa.CheckConstraint("env_steps >= 0", name=op.f("ck_learner_metrics_env_steps_nonnegative")),
        sa.CheckConstraint(
            "updates_per_s >= 0", name=op.f("ck_learner_metrics_updates_per_s_nonnegative")
        ),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_learner_metrics_run_id_runs"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_learner_metrics")),
    )
    op.create_index(
        op.f("ix_learner_metrics_run_id_created_at"), "learner_metrics", ["run_id", "created_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_learner_metrics_run_id_created_at"), table_name="learner_metrics")
    op.drop_table("learner_metrics")
