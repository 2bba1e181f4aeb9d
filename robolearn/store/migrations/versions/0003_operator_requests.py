"""Operator requests: the robot asks a person for help when reset-free training is stuck.

Reviewed by hand after autogeneration. Allowed values are spelled out (not imported from
models.py) so this revision never changes after the fact.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "operator_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("resolution", sa.String(length=16), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "status IN ('open', 'resolved', 'dismissed')", name=op.f("ck_operator_requests_status")
        ),
        sa.CheckConstraint(
            "resolution IS NULL OR resolution IN ('human_reset', 'takeover', 'dismiss')",
            name=op.f("ck_operator_requests_resolution"),
        ),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_operator_requests_run_id_runs"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_operator_requests_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_operator_requests")),
    )
    op.create_index(
        op.f("ix_operator_requests_run_id_status"), "operator_requests", ["run_id", "status"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_operator_requests_run_id_status"), table_name="operator_requests")
    op.drop_table("operator_requests")
