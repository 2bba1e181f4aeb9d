"""Episode and step rows: insert a recording episode, close or complete it, and read
episodes back with one set of filters.

Functions take an ORM session (the caller commits), so the `Store`, the service's
request-scoped session and scripts share one implementation. Readers get ORM rows bound to
their session; the `Store` turns them into frozen `EpisodeRecord`s.

The store's public names that lived here before the store was split by job are still
importable from this module (`from robolearn.store.episodes import Store`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Select, func, insert, select, update
from sqlalchemy.orm import Session

from robolearn.store.models import Episode, Step, utcnow
from robolearn.store.records import EpisodeData, EpisodeRecord, RunRecord, episode_record

# EpisodeData, EpisodeRecord and RunRecord are re-exported for code that imported them here.
__all__ = [
    "EpisodeData", "EpisodeFilter", "EpisodeRecord", "RobotSummary", "RunRecord",
    "close_recording", "complete_recording", "count_episodes", "count_steps", "get_episode",
    "insert_recording", "list_episodes", "list_steps", "mark_quarantined", "outcome_counts",
    "recent_outcomes", "recording_episodes", "returns_of", "robot_summaries", "sum_steps",
]


@dataclasses.dataclass(frozen=True)
class EpisodeFilter:
    """Which episodes to read: every field given must match (None: any)."""

    run_id: int | None = None
    task: str | None = None
    status: str | None = None
    outcome: str | None = None
    is_demo: bool | None = None
    intervention: bool | None = None
    direction: str | None = None
    source_episode_id: int | None = None
    robot: str | None = None

    def where(self) -> list[ColumnElement[bool]]:
        clauses: list[ColumnElement[bool]] = []
        if self.run_id is not None:
            clauses.append(Episode.run_id == self.run_id)
        if self.task is not None:
            clauses.append(Episode.task == self.task)
        if self.status is not None:
            clauses.append(Episode.status == self.status)
        if self.outcome is not None:
            clauses.append(Episode.outcome == self.outcome)
        if self.is_demo is not None:
            clauses.append(Episode.is_demo.is_(self.is_demo))
        if self.intervention is not None:
            clauses.append(Episode.has_intervention.is_(self.intervention))
        if self.direction is not None:
            clauses.append(Episode.direction == self.direction)
        if self.source_episode_id is not None:
            clauses.append(Episode.source_episode_id == self.source_episode_id)
        if self.robot is not None:
            clauses.append(Episode.robot == self.robot)
        return clauses


def _select(where: EpisodeFilter, *, newest_first: bool, offset: int, limit: int | None,
            after_id: int) -> Select[tuple[Episode]]:
    order = Episode.id.desc() if newest_first else Episode.id
    query = select(Episode).where(*where.where()).order_by(order)
    if after_id:
        query = query.where(Episode.id > after_id)
    if offset:
        query = query.offset(offset)
    if limit is not None:
        query = query.limit(limit)
    return query


def list_episodes(session: Session, where: EpisodeFilter = EpisodeFilter(), *,
                  newest_first: bool = False, offset: int = 0, limit: int | None = None,
                  after_id: int = 0) -> list[Episode]:
    """Episodes matching `where` with ids above `after_id`, oldest first unless
    `newest_first`."""
    return list(session.scalars(_select(where, newest_first=newest_first, offset=offset,
                                         limit=limit, after_id=after_id)))


def count_episodes(session: Session, where: EpisodeFilter = EpisodeFilter()) -> int:
    """How many episodes match `where`."""
    return session.scalar(select(func.count()).select_from(Episode).where(*where.where()))


def outcome_counts(session: Session, where: EpisodeFilter) -> dict[str | None, int]:
    """How many episodes matching `where` ended with each outcome."""
    return dict(session.execute(select(Episode.outcome, func.count())
                                .where(*where.where()).group_by(Episode.outcome)).all())


def recent_outcomes(session: Session, where: EpisodeFilter, limit: int) -> list[str | None]:
    """Outcomes of the newest `limit` episodes matching `where`, newest first."""
    return list(session.scalars(select(Episode.outcome).where(*where.where())
                                .order_by(Episode.id.desc()).limit(limit)))


def sum_steps(session: Session, where: EpisodeFilter, *, up_to_id: int | None = None,
              excluding_policy_suffix: str | None = None) -> int:
    """Total steps of the episodes matching `where` (with ids up to `up_to_id`, and whose
    policy does not end with `excluding_policy_suffix`, when given)."""
    query = select(func.coalesce(func.sum(Episode.num_steps), 0)).where(*where.where())
    if up_to_id is not None:
        query = query.where(Episode.id <= up_to_id)
    if excluding_policy_suffix is not None:
        query = query.where(Episode.policy.not_like(f"%{excluding_policy_suffix}"))
    return int(session.scalar(query) or 0)


@dataclasses.dataclass(frozen=True)
class RobotSummary:
    """One robot's practice in a run: its complete non-demo episodes and the time they took
    (robot-hours: the sum of their recorded durations)."""

    robot: str | None
    episodes: int
    successes: int
    intervention_episodes: int
    env_steps: int
    robot_hours: float

    @property
    def success_rate(self) -> float | None:
        return self.successes / self.episodes if self.episodes else None

    @property
    def interventions_per_robot_hour(self) -> float | None:
        return self.intervention_episodes / self.robot_hours if self.robot_hours > 0 else None


def robot_summaries(session: Session, run_id: int) -> list[RobotSummary]:
    """Per robot (None: a run of one robot), its complete non-demo episodes of run `run_id`,
    ordered by robot name."""
    rows = session.execute(
        select(Episode.robot, Episode.outcome, Episode.has_intervention, Episode.num_steps,
               Episode.created_at, Episode.finished_at)
        .where(Episode.run_id == run_id, Episode.status == "complete",
               Episode.is_demo.is_(False)))
    tally: dict[str | None, list[float]] = {}
    for robot, outcome, intervention, steps, created, finished in rows:
        t = tally.setdefault(robot, [0, 0, 0, 0, 0.0])
        t[0] += 1
        t[1] += outcome == "success"
        t[2] += bool(intervention)
        t[3] += steps
        if finished is not None:
            t[4] += max(0.0, (finished - created).total_seconds()) / 3600.0
    return [RobotSummary(robot, int(t[0]), int(t[1]), int(t[2]), int(t[3]), t[4])
            for robot, t in sorted(tally.items(), key=lambda kv: kv[0] or "")]


def returns_of(session: Session, episode_ids: Sequence[int]) -> dict[int, float]:
    """Sum of the step rewards of each episode given (episodes without steps left out)."""
    return dict(session.execute(
        select(Step.episode_id, func.sum(Step.reward))
        .where(Step.episode_id.in_(list(episode_ids))).group_by(Step.episode_id)
    ).all())


def get_episode(session: Session, episode_id: int) -> Episode | None:
    return session.get(Episode, episode_id)


def insert_recording(session: Session, run_id: int, task: str, cameras: Sequence[str], *,
                     seed: int | None, policy: str, is_demo: bool, direction: str | None,
                     source_episode_id: int | None, fps: float,
                     robot: str | None = None) -> EpisodeRecord:
    """Insert an episode with status "recording" and flush it (its id exists on return).

    The caller has checked the run and the source episode exist and the cameras are valid.
    """
    row = Episode(run_id=run_id, task=task, direction=direction, seed=seed, policy=policy,
                  is_demo=is_demo, status="recording", cameras=list(cameras), fps=float(fps),
                  source_episode_id=source_episode_id, robot=robot)
    session.add(row)
    session.flush()
    return episode_record(row)


def recording_episodes(session: Session) -> list[tuple[int, int]]:
    """(episode id, run id) of every episode still "recording"."""
    rows = session.execute(select(Episode.id, Episode.run_id)
                           .where(Episode.status == "recording"))
    return [(episode_id, run_id) for episode_id, run_id in rows]


def close_recording(session: Session, episode_id: int, status: str, reason: str) -> bool:
    """Set a still-"recording" episode to `status` ("aborted", "incomplete") with `reason`.

    Returns:
        Whether the row was still recording (and so changed).
    """
    result = session.execute(
        update(Episode)
        .where(Episode.id == episode_id, Episode.status == "recording")
        .values(status=status, end_reason=reason, finished_at=utcnow())
    )
    return result.rowcount == 1


def complete_recording(session: Session, episode_id: int, steps: Sequence[dict[str, Any]],
                       values: dict[str, Any]) -> bool:
    """Insert the episode's step rows and set `values` (status "complete", ...) on its row,
    if it is still "recording".

    Returns:
        Whether it was still recording; when not, the caller must roll back the steps.
    """
    session.execute(insert(Step), [{"episode_id": episode_id, **step} for step in steps])
    result = session.execute(
        update(Episode)
        .where(Episode.id == episode_id, Episode.status == "recording")
        .values(**values)
    )
    return result.rowcount == 1


def mark_quarantined(session: Session, episode_id: int, npz_path: str, reason: str) -> None:
    """Mark an episode whose files were moved to quarantine "incomplete", saying where."""
    session.execute(
        update(Episode).where(Episode.id == episode_id).values(
            status="incomplete",
            end_reason=f"quarantined to {npz_path}: {reason}"[:1000],
            npz_path=npz_path,
        )
    )


def count_steps(session: Session, episode_id: int) -> int:
    """Number of step rows stored for an episode."""
    return session.scalar(
        select(func.count()).select_from(Step).where(Step.episode_id == episode_id)
    )


def list_steps(session: Session, episode_id: int,
               indices: Sequence[int] | None = None) -> list[Step]:
    """An episode's step rows in step order (only those at `indices`, when given)."""
    query = select(Step).where(Step.episode_id == episode_id)
    if indices is not None:
        query = query.where(Step.index.in_(list(indices)))
    return list(session.scalars(query.order_by(Step.index)))


def __getattr__(name: str) -> Any:
    # The facade and the writer import this module, so their names are re-exported lazily.
    if name == "Store":
        from robolearn.store import store

        return store.Store
    if name in ("EpisodeWriter", "NpzWriter", "VideoWriter", "write_npz"):
        from robolearn.store import writer

        return getattr(writer, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
