"""Run owners and forced password change: the process that started a run (so a run whose
processes died can be marked so at the next start), why a run ended, and the first admin's
duty to replace its one-time password.

Reviewed by hand after autogeneration. Batch mode, so SQLite can add the columns too.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("owner_pid", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("owner_host", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("owner_started_at", sa.Float(), nullable=True))
        batch.add_column(sa.Column("end_reason", sa.Text(), nullable=False, server_default=""))
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("must_change_password", sa.Boolean(), nullable=False,
                                   server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("must_change_password")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("end_reason")
        batch.drop_column("owner_started_at")
        batch.drop_column("owner_host")
        batch.drop_column("owner_pid")
