"""Learner metrics: the learner appends one sample per interval, the service reads them back
by run, time range and id cursor.

Functions take an ORM session so the learner's `Store.session()` and the service's
request-scoped session share one implementation. Samples are only ever appended.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from robolearn.errors import StoreError
from robolearn.store.models import LearnerMetrics, Run

log = logging.getLogger(__name__)

_COUNTS = ("update_step", "env_steps", "episodes", "online_transitions", "demo_transitions",
           "online_episodes", "demo_episodes")
# JSON cannot hold NaN/inf portably (PostgreSQL rejects them); scalar names are short words.
_MAX_SCALAR_NAME = 64


@dataclass(frozen=True)
class LearnerSample:
    """What the learner knows at one moment; `scalars` are its latest losses and means.

    The UTD fields (updates per environment step) are the learner's target (learner.utd,
    None: none), the ratio it held over its recent window (None: no step came in it), the
    env steps per second it received in that window, and whether it was behind its target.
    They are None/False in rows of learners from before they were recorded.
    """

    session: str
    update_step: int
    env_steps: int
    episodes: int
    updates_per_s: float
    online_transitions: int
    demo_transitions: int
    online_episodes: int
    demo_episodes: int
    scalars: dict[str, float] = field(default_factory=dict)
    utd_target: float | None = None
    utd_held: float | None = None
    env_steps_per_s: float | None = None
    utd_behind: bool = False


@dataclass(frozen=True)
class LearnerMetricsRecord:
    id: int
    run_id: int | None
    created_at: dt.datetime
    sample: LearnerSample


def _aware(value: dt.datetime) -> dt.datetime:
    # SQLite hands back naive datetimes; every time the store writes is UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def _utc(value: dt.datetime) -> dt.datetime:
    # SQLite stores the UTC wall time without its offset: compare in UTC, and read a naive
    # bound as UTC like every time the store writes.
    return _aware(value).astimezone(dt.UTC)


def _record(row: LearnerMetrics) -> LearnerMetricsRecord:
    return LearnerMetricsRecord(
        id=row.id, run_id=row.run_id, created_at=_aware(row.created_at),
        sample=LearnerSample(
            session=row.session, update_step=row.update_step, env_steps=row.env_steps,
            episodes=row.episodes, updates_per_s=row.updates_per_s,
            online_transitions=row.online_transitions, demo_transitions=row.demo_transitions,
            online_episodes=row.online_episodes, demo_episodes=row.demo_episodes,
            scalars=dict(row.scalars), utd_target=row.utd_target, utd_held=row.utd_held,
            env_steps_per_s=row.env_steps_per_s, utd_behind=row.utd_behind,
        ),
    )


def _check(sample: LearnerSample) -> None:
    if not sample.session or len(sample.session) > 32:
        raise StoreError(f"learner metrics: session must be 1-32 characters, "
                         f"got {sample.session!r}")
    for name in _COUNTS:
        value = getattr(sample, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise StoreError(f"learner metrics ({sample.session}): {name} must be a "
                             f"non-negative int, got {value!r}")
    if not math.isfinite(sample.updates_per_s) or sample.updates_per_s < 0:
        raise StoreError(f"learner metrics ({sample.session}): updates_per_s must be finite "
                         f"and non-negative, got {sample.updates_per_s!r}")
    for name in ("utd_target", "utd_held", "env_steps_per_s"):
        value = getattr(sample, name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, float | int)
                                  or not math.isfinite(value) or value < 0):
            raise StoreError(f"learner metrics ({sample.session}): {name} must be None or a "
                             f"finite non-negative number, got {value!r}")
    if not isinstance(sample.utd_behind, bool):
        raise StoreError(f"learner metrics ({sample.session}): utd_behind must be a bool, "
                         f"got {sample.utd_behind!r}")
    for name, value in sample.scalars.items():
        if not name or len(name) > _MAX_SCALAR_NAME:
            raise StoreError(f"learner metrics ({sample.session}): scalar name {name!r} must "
                             f"be 1-{_MAX_SCALAR_NAME} characters")
        if not isinstance(value, float | int) or not math.isfinite(value):
            raise StoreError(f"learner metrics ({sample.session}): scalar {name} must be a "
                             f"finite number, got {value!r}")


def _float_or_none(value: float | None) -> float | None:
    return None if value is None else float(value)


def add_learner_metrics(session: Session, run_id: int | None,
                        sample: LearnerSample) -> LearnerMetricsRecord:
    """Append one sample (the caller commits).

    Raises:
        StoreError: an unknown run, a negative count, or a non-finite number; nothing is
            written then.
    """
    _check(sample)
    if run_id is not None and session.get(Run, run_id) is None:
        raise StoreError(f"learner metrics: run {run_id} does not exist; pass the id of a "
                         "stored run or None")
    row = LearnerMetrics(
        run_id=run_id, session=sample.session, update_step=sample.update_step,
        env_steps=sample.env_steps, episodes=sample.episodes,
        updates_per_s=float(sample.updates_per_s),
        online_transitions=sample.online_transitions, demo_transitions=sample.demo_transitions,
        online_episodes=sample.online_episodes, demo_episodes=sample.demo_episodes,
        scalars={k: float(v) for k, v in sample.scalars.items()},
        utd_target=_float_or_none(sample.utd_target), utd_held=_float_or_none(sample.utd_held),
        env_steps_per_s=_float_or_none(sample.env_steps_per_s), utd_behind=sample.utd_behind,
    )
    session.add(row)
    session.flush()
    return _record(row)


def latest_demo_episodes(session: Session, run_id: int) -> int | None:
    """The demo episode count of the run's newest sample (None: no sample yet)."""
    return session.scalar(select(LearnerMetrics.demo_episodes)
                          .where(LearnerMetrics.run_id == run_id)
                          .order_by(LearnerMetrics.id.desc()).limit(1))


def list_learner_metrics(session: Session, run_id: int, *, after_id: int = 0,
                         since: dt.datetime | None = None, until: dt.datetime | None = None,
                         limit: int = 1000) -> list[LearnerMetricsRecord]:
    """Samples of one run, oldest first: ids above `after_id`, created in [since, until]."""
    query = select(LearnerMetrics).where(LearnerMetrics.run_id == run_id,
                                         LearnerMetrics.id > after_id)
    if since is not None:
        query = query.where(LearnerMetrics.created_at >= _utc(since))
    if until is not None:
        query = query.where(LearnerMetrics.created_at <= _utc(until))
    rows = session.scalars(query.order_by(LearnerMetrics.id).limit(limit))
    return [_record(r) for r in rows]
