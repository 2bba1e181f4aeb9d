"""Fleet attention: each operator request records which robot of a fleet asked (None for a
run of one robot, as every request before). How long a request waited needs no column:
`resolved_at` - `created_at` (an open one: now - `created_at`).

Batch mode, so SQLite can add the column too.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("operator_requests") as batch:
        batch.add_column(sa.Column("robot", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("operator_requests") as batch:
        batch.drop_column("robot")
