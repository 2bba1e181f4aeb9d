"""Reward models: one row per trained success classifier, preference model or CLIP reward.

Reviewed by hand after autogeneration. Allowed values are spelled out (not imported from
models.py) so this revision never changes after the fact.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "reward_models",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("path", sa.String(length=500), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "kind IN ('classifier', 'preference', 'clip')", name=op.f("ck_reward_models_kind")
        ),
        sa.CheckConstraint(
            "status IN ('training', 'ready', 'failed')", name=op.f("ck_reward_models_status")
        ),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_reward_models_run_id_runs"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reward_models")),
        sa.UniqueConstraint("kind", "version", name=op.f("uq_reward_models_kind_version")),
    )
    op.create_index(
        op.f("ix_reward_models_kind_status"), "reward_models", ["kind", "status"], unique=False
    )
    op.create_index(op.f("ix_reward_models_run_id"), "reward_models", ["run_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_reward_models_run_id"), table_name="reward_models")
    op.drop_index(op.f("ix_reward_models_kind_status"), table_name="reward_models")
    op.drop_table("reward_models")
