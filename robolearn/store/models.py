"""SQLAlchemy tables of the robolearn store.

Bulk arrays never live here: an episode row points at its `.npz` (relative to the data
directory) and its per-camera MP4s sit beside it. The migration in
`migrations/versions/` must create exactly these tables; `tests/store/test_schema.py`
checks that with Alembic's autogenerate comparison.

ON DELETE policy: nothing that references a run, an episode or a user deletes recorded
data behind the operator's back. Runs, episodes and users are RESTRICTed (users are
deactivated with `active=False`, not deleted); only rows that are pure parts of one
episode (its steps and success labels) cascade when that episode is deleted on purpose.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Named constraints, so later migrations can alter them on SQLite (batch mode) and PostgreSQL
# alike without guessing generated names.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

USER_ROLES = ("viewer", "operator", "admin")
EPISODE_STATUSES = ("recording", "complete", "incomplete", "aborted")
EPISODE_OUTCOMES = ("success", "failure", "timeout", "aborted")
LABEL_VALUES = ("success", "failure")
PREFERENCE_QUERY_STATUSES = ("pending", "leased", "answered", "cancelled")
PREFERENCE_ANSWERS = ("left", "right", "equal", "skip")
REWARD_MODEL_KINDS = ("classifier", "preference", "clip")
REWARD_MODEL_STATUSES = ("training", "ready", "failed")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {  # noqa: RUF012 - SQLAlchemy reads this class attribute
        dict[str, Any]: JSON,
        list[str]: JSON,
        dt.datetime: DateTime(timezone=True),
    }


class User(Base):
    __tablename__ = "users"
    __table_args__ = (CheckConstraint(_in("role", USER_ROLES), name="role"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), default="viewer")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # The first admin's printed one-time password: the service refuses everything but a
    # password change until it is replaced.
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Run(Base):
    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    config: Mapped[dict[str, Any]]
    # "sim" or "real"; free text so new rig kinds need no migration.
    kind: Mapped[str] = mapped_column(String(32), default="sim")
    # "running" until end_run(); then whatever the caller reports ("finished", "failed", ...).
    status: Mapped[str] = mapped_column(String(32), default="running", index=True)
    started_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[dt.datetime | None]
    # The process that started the run's processes (`robolearn up`, or the service), so the
    # next start can tell a run whose processes all died (SIGKILL, power cut) from a live one:
    # pid plus its kernel start time (a recycled pid is another process), and the host.
    owner_pid: Mapped[int | None] = mapped_column(Integer)
    owner_host: Mapped[str | None] = mapped_column(String(255))
    owner_started_at: Mapped[float | None] = mapped_column(Float)
    # Why the run ended, when it did not end by itself (e.g. "died: ...").
    end_reason: Mapped[str] = mapped_column(Text, default="")


class Episode(Base):
    __tablename__ = "episodes"
    __table_args__ = (
        CheckConstraint(_in("status", EPISODE_STATUSES), name="status"),
        CheckConstraint(f"outcome IS NULL OR {_in('outcome', EPISODE_OUTCOMES)}", name="outcome"),
        CheckConstraint("num_steps >= 0", name="num_steps_nonnegative"),
        Index(None, "run_id", "status"),
        Index(None, "task", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="RESTRICT"))
    task: Mapped[str] = mapped_column(String(200))
    # Reset-free practice alternates "forward"/"backward"; None for ordinary episodes.
    direction: Mapped[str | None] = mapped_column(String(32))
    seed: Mapped[int | None] = mapped_column(BigInteger)
    policy: Mapped[str] = mapped_column(String(200), default="")
    is_demo: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16), default="recording")
    outcome: Mapped[str | None] = mapped_column(String(16))
    end_reason: Mapped[str] = mapped_column(Text, default="")
    num_steps: Mapped[int] = mapped_column(Integer, default=0)
    # Relative to the data directory, so the directory can move between machines.
    npz_path: Mapped[str | None] = mapped_column(String(500))
    cameras: Mapped[list[str]]
    fps: Mapped[float] = mapped_column(Float, default=10.0)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[dt.datetime | None]
    # A replay in sim of a logged episode points at the episode it replays.
    source_episode_id: Mapped[int | None] = mapped_column(
        ForeignKey("episodes.id", ondelete="SET NULL"), index=True
    )
    has_intervention: Mapped[bool] = mapped_column(Boolean, default=False)
    # The fleet robot that recorded it (robolearn.config.fleet); None for a run of one robot.
    robot: Mapped[str | None] = mapped_column(String(64))


class Step(Base):
    __tablename__ = "steps"
    __table_args__ = (Index(None, "episode_id", "index", unique=True),)

    id: Mapped[int] = mapped_column(primary_key=True)
    episode_id: Mapped[int] = mapped_column(ForeignKey("episodes.id", ondelete="CASCADE"))
    index: Mapped[int] = mapped_column(Integer)
    reward: Mapped[float] = mapped_column(Float)
    success: Mapped[bool] = mapped_column(Boolean)
    success_prob: Mapped[float | None] = mapped_column(Float)
    intervention: Mapped[bool] = mapped_column(Boolean, default=False)
    q_value: Mapped[float | None] = mapped_column(Float)
    stamp_ns: Mapped[int] = mapped_column(BigInteger, default=0)
    # Any other per-step numbers (reward-model outputs, timings), name -> float.
    scalars: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Label(Base):
    """An operator's success/failure mark on one frame of an episode."""

    __tablename__ = "labels"
    __table_args__ = (
        CheckConstraint(_in("label", LABEL_VALUES), name="label"),
        Index(None, "episode_id", "step_index"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    episode_id: Mapped[int] = mapped_column(ForeignKey("episodes.id", ondelete="CASCADE"))
    step_index: Mapped[int] = mapped_column(Integer)
    # None: the label applies to every camera of that step.
    camera: Mapped[str | None] = mapped_column(String(64))
    label: Mapped[str] = mapped_column(String(16))
    # None for labels imported by scripts rather than clicked by a person.
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="RESTRICT"), index=True
    )
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class PreferenceQuery(Base):
    """Two segments shown side by side; a user answers which one is better."""

    __tablename__ = "preference_queries"
    __table_args__ = (
        CheckConstraint(_in("status", PREFERENCE_QUERY_STATUSES), name="status"),
        CheckConstraint("episode_a_start <= episode_a_end", name="segment_a_order"),
        CheckConstraint("episode_b_start <= episode_b_end", name="segment_b_order"),
        Index(None, "run_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="RESTRICT"))
    episode_a_id: Mapped[int] = mapped_column(
        ForeignKey("episodes.id", ondelete="RESTRICT"), index=True
    )
    episode_a_start: Mapped[int] = mapped_column(Integer)
    episode_a_end: Mapped[int] = mapped_column(Integer)
    episode_b_id: Mapped[int] = mapped_column(
        ForeignKey("episodes.id", ondelete="RESTRICT"), index=True
    )
    episode_b_start: Mapped[int] = mapped_column(Integer)
    episode_b_end: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    leased_to: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    lease_expires_at: Mapped[dt.datetime | None]
    status: Mapped[str] = mapped_column(String(16), default="pending")


class PreferenceAnswer(Base):
    __tablename__ = "preference_answers"
    __table_args__ = (CheckConstraint(_in("answer", PREFERENCE_ANSWERS), name="answer"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    query_id: Mapped[int] = mapped_column(
        ForeignKey("preference_queries.id", ondelete="RESTRICT"), index=True
    )
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="RESTRICT"), index=True
    )
    answer: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # Undo keeps the row (the audit trail) and flips this flag.
    undone: Mapped[bool] = mapped_column(Boolean, default=False)


class RewardModel(Base):
    """One trained (or training) reward model: its file plus the report of its training.

    `version` counts up per kind, so "the newest ready classifier" is one ordered query.
    A row is written "training" only after its training data validated; it becomes "ready"
    once the file is in place, or "failed" with the error text.
    """

    __tablename__ = "reward_models"
    __table_args__ = (
        CheckConstraint(_in("kind", REWARD_MODEL_KINDS), name="kind"),
        CheckConstraint(_in("status", REWARD_MODEL_STATUSES), name="status"),
        UniqueConstraint("kind", "version"),
        Index(None, "kind", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # None: trained on data from several runs (or none, e.g. a zero-shot CLIP model).
    run_id: Mapped[int | None] = mapped_column(
        ForeignKey("runs.id", ondelete="RESTRICT"), index=True
    )
    kind: Mapped[str] = mapped_column(String(16))
    version: Mapped[int] = mapped_column(Integer)
    # Relative to the data directory.
    path: Mapped[str] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(16), default="training")
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Checkpoint(Base):
    __tablename__ = "checkpoints"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="RESTRICT"), index=True)
    # Relative to the data directory.
    path: Mapped[str] = mapped_column(String(500))
    env_steps: Mapped[int] = mapped_column(BigInteger, default=0)
    update_steps: Mapped[int] = mapped_column(BigInteger, default=0)
    episodes: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Calibration(Base):
    __tablename__ = "calibrations"
    __table_args__ = (UniqueConstraint("kind", "device", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # "intrinsics", "hand_eye", "workspace", ...
    kind: Mapped[str] = mapped_column(String(32))
    device: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    data: Mapped[dict[str, Any]]
    path: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class AuditEntry(Base):
    __tablename__ = "audit_log"
    __table_args__ = (Index(None, "action", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # None for actions taken by the system itself (recovery, schedulers).
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(200), default="")
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)


OPERATOR_REQUEST_STATUSES = ("open", "resolved", "dismissed")
OPERATOR_REQUEST_RESOLUTIONS = ("human_reset", "takeover", "dismiss")


class OperatorRequest(Base):
    """The robot asks a person for help (reset-free training got stuck): opened by the actor,
    which pauses until the request is resolved or dismissed through the service.

    `robot` is the fleet robot that asked (None for a run of one robot); how long it waited
    is `resolved_at` - `created_at` (robolearn.store.operator_requests).

    `kind` is why it got stuck ("no_progress", "workspace_limit", "repeated_failures");
    `resolution` says what the person did: "human_reset" (put the scene back by hand),
    "takeover" (will drive the arm out of trouble with teleop), "dismiss" (carry on as is).
    """

    __tablename__ = "operator_requests"
    __table_args__ = (
        CheckConstraint(_in("status", OPERATOR_REQUEST_STATUSES), name="status"),
        CheckConstraint(
            "resolution IS NULL OR " + _in("resolution", OPERATOR_REQUEST_RESOLUTIONS),
            name="resolution",
        ),
        Index(None, "run_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="RESTRICT"))
    # The fleet robot that asked (robolearn.config.fleet); None for a run of one robot.
    robot: Mapped[str | None] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default="open")
    resolution: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    # Who resolved or dismissed it; None while open.
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class LearnerMetrics(Base):
    """One periodic sample of the learner's progress (`robolearn learner` writes one every
    `learner.metrics_every_s`): counters, throughput, replay sizes and the latest losses.

    `run_id` is the run whose experience the learner was training on when it wrote the row
    (None before it knew: no run id given and no stored episode received yet). `session`
    changes with every learner process, so a restart shows as a new series, not a jump.
    """

    __tablename__ = "learner_metrics"
    __table_args__ = (
        CheckConstraint("update_step >= 0", name="update_step_nonnegative"),
        CheckConstraint("env_steps >= 0", name="env_steps_nonnegative"),
        CheckConstraint("updates_per_s >= 0", name="updates_per_s_nonnegative"),
        Index(None, "run_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="RESTRICT"))
    session: Mapped[str] = mapped_column(String(32))
    update_step: Mapped[int] = mapped_column(BigInteger)
    env_steps: Mapped[int] = mapped_column(BigInteger)
    episodes: Mapped[int] = mapped_column(Integer)
    # Updates per wall-clock second since the previous row of the same session.
    updates_per_s: Mapped[float] = mapped_column(Float)
    online_transitions: Mapped[int] = mapped_column(Integer)
    demo_transitions: Mapped[int] = mapped_column(Integer)
    online_episodes: Mapped[int] = mapped_column(Integer)
    demo_episodes: Mapped[int] = mapped_column(Integer)
    # The agent's own numbers at the last update (critic_loss, bc losses, mean Q...).
    scalars: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Updates per environment step: the target (learner.utd; None: none), the ratio held over
    # the learner's recent window (None: no step came in it), the env steps per second it
    # received then, and whether it was behind its target.
    utd_target: Mapped[float | None] = mapped_column(Float)
    utd_held: Mapped[float | None] = mapped_column(Float)
    env_steps_per_s: Mapped[float | None] = mapped_column(Float)
    utd_behind: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
