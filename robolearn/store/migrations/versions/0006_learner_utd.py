"""Learner UTD: each learner metrics row records the learner's updates-per-env-step target,
the ratio it held over its recent window, the env steps per second it received then, and
whether it was behind its target. Rows written before stay with None/False.

Reviewed by hand after autogeneration. Batch mode, so SQLite can add the columns too.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("learner_metrics") as batch:
        batch.add_column(sa.Column("utd_target", sa.Float(), nullable=True))
        batch.add_column(sa.Column("utd_held", sa.Float(), nullable=True))
        batch.add_column(sa.Column("env_steps_per_s", sa.Float(), nullable=True))
        batch.add_column(sa.Column("utd_behind", sa.Boolean(), nullable=False,
                                   server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("learner_metrics") as batch:
        batch.drop_column("utd_behind")
        batch.drop_column("env_steps_per_s")
        batch.drop_column("utd_held")
        batch.drop_column("utd_target")
