"""Initial schema: users, runs, episodes, steps, labels, preferences, checkpoints,
calibrations and the audit log.

Reviewed by hand after autogeneration. The allowed values in the CHECK constraints are
spelled out here (not imported from models.py) so this revision never changes after the
fact; a later change to an allowed set needs its own revision.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "calibrations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("device", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("path", sa.String(length=500), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_calibrations")),
        sa.UniqueConstraint(
            "kind", "device", "version", name=op.f("uq_calibrations_kind_device_version")
        ),
    )
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runs")),
    )
    op.create_index(op.f("ix_runs_status"), "runs", ["status"], unique=False)

    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("role IN ('viewer', 'operator', 'admin')", name=op.f("ck_users_role")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("username", name=op.f("uq_users_username")),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("target", sa.String(length=200), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_audit_log_user_id_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index(
        op.f("ix_audit_log_action_created_at"), "audit_log", ["action", "created_at"], unique=False
    )
    op.create_index(op.f("ix_audit_log_created_at"), "audit_log", ["created_at"], unique=False)
    op.create_index(op.f("ix_audit_log_user_id"), "audit_log", ["user_id"], unique=False)

    op.create_table(
        "checkpoints",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("path", sa.String(length=500), nullable=False),
        sa.Column("env_steps", sa.BigInteger(), nullable=False),
        sa.Column("update_steps", sa.BigInteger(), nullable=False),
        sa.Column("episodes", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_checkpoints_run_id_runs"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_checkpoints")),
    )
    op.create_index(op.f("ix_checkpoints_run_id"), "checkpoints", ["run_id"], unique=False)

    op.create_table(
        "episodes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("task", sa.String(length=200), nullable=False),
        sa.Column("direction", sa.String(length=32), nullable=True),
        sa.Column("seed", sa.BigInteger(), nullable=True),
        sa.Column("policy", sa.String(length=200), nullable=False),
        sa.Column("is_demo", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("end_reason", sa.Text(), nullable=False),
        sa.Column("num_steps", sa.Integer(), nullable=False),
        sa.Column("npz_path", sa.String(length=500), nullable=True),
        sa.Column("cameras", sa.JSON(), nullable=False),
        sa.Column("fps", sa.Float(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("source_episode_id", sa.Integer(), nullable=True),
        sa.Column("has_intervention", sa.Boolean(), nullable=False),
        sa.CheckConstraint(
            "outcome IS NULL OR outcome IN ('success', 'failure', 'timeout', 'aborted')",
            name=op.f("ck_episodes_outcome"),
        ),
        sa.CheckConstraint(
            "status IN ('recording', 'complete', 'incomplete', 'aborted')",
            name=op.f("ck_episodes_status"),
        ),
        sa.CheckConstraint("num_steps >= 0", name=op.f("ck_episodes_num_steps_nonnegative")),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_episodes_run_id_runs"), ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["source_episode_id"],
            ["episodes.id"],
            name=op.f("fk_episodes_source_episode_id_episodes"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_episodes")),
    )
    op.create_index(
        op.f("ix_episodes_run_id_status"), "episodes", ["run_id", "status"], unique=False
    )
    op.create_index(
        op.f("ix_episodes_source_episode_id"), "episodes", ["source_episode_id"], unique=False
    )
    op.create_index(op.f("ix_episodes_task_status"), "episodes", ["task", "status"], unique=False)

    op.create_table(
        "labels",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("episode_id", sa.Integer(), nullable=False),
        sa.Column("step_index", sa.Integer(), nullable=False),
        sa.Column("camera", sa.String(length=64), nullable=True),
        sa.Column("label", sa.String(length=16), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("label IN ('success', 'failure')", name=op.f("ck_labels_label")),
        sa.ForeignKeyConstraint(
            ["episode_id"],
            ["episodes.id"],
            name=op.f("fk_labels_episode_id_episodes"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_labels_user_id_users"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_labels")),
    )
    op.create_index(
        op.f("ix_labels_episode_id_step_index"),
        "labels",
        ["episode_id", "step_index"],
        unique=False,
    )
    op.create_index(op.f("ix_labels_user_id"), "labels", ["user_id"], unique=False)

    op.create_table(
        "preference_queries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("episode_a_id", sa.Integer(), nullable=False),
        sa.Column("episode_a_start", sa.Integer(), nullable=False),
        sa.Column("episode_a_end", sa.Integer(), nullable=False),
        sa.Column("episode_b_id", sa.Integer(), nullable=False),
        sa.Column("episode_b_start", sa.Integer(), nullable=False),
        sa.Column("episode_b_end", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("leased_to", sa.Integer(), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.CheckConstraint(
            "status IN ('pending', 'leased', 'answered', 'cancelled')",
            name=op.f("ck_preference_queries_status"),
        ),
        sa.CheckConstraint(
            "episode_a_start <= episode_a_end", name=op.f("ck_preference_queries_segment_a_order")
        ),
        sa.CheckConstraint(
            "episode_b_start <= episode_b_end", name=op.f("ck_preference_queries_segment_b_order")
        ),
        sa.ForeignKeyConstraint(
            ["episode_a_id"],
            ["episodes.id"],
            name=op.f("fk_preference_queries_episode_a_id_episodes"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["episode_b_id"],
            ["episodes.id"],
            name=op.f("fk_preference_queries_episode_b_id_episodes"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["leased_to"],
            ["users.id"],
            name=op.f("fk_preference_queries_leased_to_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["runs.id"],
            name=op.f("fk_preference_queries_run_id_runs"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_preference_queries")),
    )
    op.create_index(
        op.f("ix_preference_queries_episode_a_id"),
        "preference_queries",
        ["episode_a_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_preference_queries_episode_b_id"),
        "preference_queries",
        ["episode_b_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_preference_queries_run_id_status"),
        "preference_queries",
        ["run_id", "status"],
        unique=False,
    )

    op.create_table(
        "steps",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("episode_id", sa.Integer(), nullable=False),
        sa.Column("index", sa.Integer(), nullable=False),
        sa.Column("reward", sa.Float(), nullable=False),
        sa.Column("success", sa.Boolean(), nullable=False),
        sa.Column("success_prob", sa.Float(), nullable=True),
        sa.Column("intervention", sa.Boolean(), nullable=False),
        sa.Column("q_value", sa.Float(), nullable=True),
        sa.Column("stamp_ns", sa.BigInteger(), nullable=False),
        sa.Column("scalars", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["episode_id"],
            ["episodes.id"],
            name=op.f("fk_steps_episode_id_episodes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_steps")),
    )
    op.create_index(
        op.f("ix_steps_episode_id_index"), "steps", ["episode_id", "index"], unique=True
    )

    op.create_table(
        "preference_answers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("query_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("answer", sa.String(length=8), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("undone", sa.Boolean(), nullable=False),
        sa.CheckConstraint(
            "answer IN ('left', 'right', 'equal', 'skip')",
            name=op.f("ck_preference_answers_answer"),
        ),
        sa.ForeignKeyConstraint(
            ["query_id"],
            ["preference_queries.id"],
            name=op.f("fk_preference_answers_query_id_preference_queries"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_preference_answers_user_id_users"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_preference_answers")),
    )
    op.create_index(
        op.f("ix_preference_answers_query_id"), "preference_answers", ["query_id"], unique=False
    )
    op.create_index(
        op.f("ix_preference_answers_user_id"), "preference_answers", ["user_id"], unique=False
    )


def downgrade() -> None:
    op.drop_table("preference_answers")
    op.drop_table("steps")
    op.drop_table("preference_queries")
    op.drop_table("labels")
    op.drop_table("episodes")
    op.drop_table("checkpoints")
    op.drop_table("audit_log")
    op.drop_table("users")
    op.drop_table("runs")
    op.drop_table("calibrations")
