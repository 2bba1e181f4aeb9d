"""Operator requests: open one (the actor, when reset-free training is stuck), list the open
ones, queue a fleet's open ones by priority and age, resolve or dismiss one (the service, for
a person), and count what they cost per hour and how long they waited.

Priorities (lower is more urgent; `PRIORITY_OF`, the operator's queue orders by priority,
then age):

0. `stuck` -- a robot that stopped practising and holds until someone helps
   (no_progress, workspace_limit, repeated_failures, and any kind this module does not
   know, since an unknown reason is safest treated as a stuck robot);
1. `takeover` -- the learner asks a person to drive where its critic is uncertain
   (uncertain_takeover): the robot keeps a useful question open, nothing is broken;
2. `preference` -- a preference query (which of two clips is better): only improves the
   reward model, so it waits behind everything else. The queue holds the run's pending
   preference queries themselves (`PreferenceQueueItem`, answered on the Preferences page,
   not resolved here) beside the open operator requests.

Functions take an ORM session so the service's request-scoped session and the actor's
`Store.session()` share one implementation.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import ClassVar

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session, aliased

from robolearn.errors import StoreError
from robolearn.store.models import (
    OPERATOR_REQUEST_RESOLUTIONS,
    Episode,
    OperatorRequest,
    PreferenceAnswer,
    PreferenceQuery,
    Run,
    utcnow,
)
from robolearn.store.preferences import waited_s as _waited_s

log = logging.getLogger(__name__)

# A resolution decides the final status: dismissing closes it as "dismissed".
_STATUS_OF = {"human_reset": "resolved", "takeover": "resolved", "dismiss": "dismissed"}

PRIORITY_NAMES = ("stuck", "takeover", "preference")
PRIORITY_OF = {"no_progress": 0, "workspace_limit": 0, "repeated_failures": 0,
               "uncertain_takeover": 1, "preference": 2}
"""Request kind -> priority (index into PRIORITY_NAMES; lower comes first)."""


def priority_of(kind: str) -> int:
    """A kind's priority; an unknown kind counts as a stuck robot (the most urgent)."""
    return PRIORITY_OF.get(kind, 0)


def _aware(t: dt.datetime) -> dt.datetime:
    # SQLite hands back naive datetimes for what was written in UTC.
    return t if t.tzinfo is not None else t.replace(tzinfo=dt.UTC)


@dataclass(frozen=True)
class OperatorRequestRecord:
    id: int
    run_id: int
    robot: str | None
    kind: str
    reason: str
    status: str
    resolution: str | None
    created_at: dt.datetime
    resolved_at: dt.datetime | None
    user_id: int | None

    source: ClassVar[str] = "operator_request"

    @property
    def priority(self) -> int:
        return priority_of(self.kind)

    @property
    def robots(self) -> tuple[str, ...]:
        return () if self.robot is None else (self.robot,)

    def waited_s(self, now: dt.datetime | None = None) -> float:
        """How long the robot waited for a person: until the answer, or until `now`
        (default: the clock now) while the request is open."""
        end = self.resolved_at if self.resolved_at is not None else (now or utcnow())
        return max(0.0, (_aware(end) - _aware(self.created_at)).total_seconds())


@dataclass(frozen=True)
class PreferenceQueueItem:
    """A pending preference query waiting in the operator's queue. It is answered on the
    Preferences page (POST /api/preferences/{id}/claim, then .../answer), never resolved as
    an operator request: `id` is the preference query's own id, a different sequence from
    operator request ids (tell them apart by `source`)."""

    id: int
    run_id: int
    robot: str | None
    """The robot both clips come from; None when they come from different robots (see
    `robots`), or from a run of one robot."""
    robots: tuple[str, ...]
    """The named robots whose clips it shows, sorted (two: a mixed pair)."""
    episode_ids: tuple[int, int]
    created_at: dt.datetime

    source: ClassVar[str] = "preference_query"
    kind: ClassVar[str] = "preference"

    @property
    def priority(self) -> int:
        return priority_of(self.kind)

    @property
    def reason(self) -> str:
        a, b = self.episode_ids
        where = ("robots " + " and ".join(self.robots) if len(self.robots) > 1
                 else f"robot {self.robots[0]}" if self.robots else "")
        return (f"which clip is better: episode {a} or episode {b}"
                + (f" ({where})" if where else ""))

    def waited_s(self, now: dt.datetime | None = None) -> float:
        """How long it has waited for an answer until `now` (default: the clock now)."""
        return _waited_s(self.created_at, now or utcnow())


QueueItem = OperatorRequestRecord | PreferenceQueueItem
"""What the operator's queue holds: a robot's request, or a preference query."""


def _record(row: OperatorRequest) -> OperatorRequestRecord:
    return OperatorRequestRecord(
        id=row.id, run_id=row.run_id, robot=row.robot, kind=row.kind, reason=row.reason,
        status=row.status, resolution=row.resolution, created_at=_aware(row.created_at),
        resolved_at=None if row.resolved_at is None else _aware(row.resolved_at),
        user_id=row.user_id,
    )


def open_request(session: Session, run_id: int, kind: str, reason: str, *,
                 robot: str | None = None,
                 now: dt.datetime | None = None) -> OperatorRequestRecord:
    """Insert an open request (the caller commits).

    Args:
        robot: the fleet robot asking (None: a run of one robot).
        now: when it was opened (default: the clock now; a simulation passes its own).

    Raises:
        StoreError: unknown run, or a kind that is empty or longer than 32 characters.
    """
    if not kind or len(kind) > 32:
        raise StoreError(f"operator request for run {run_id}: kind must be 1-32 characters, "
                         f"got {kind!r}")
    if session.get(Run, run_id) is None:
        raise StoreError(f"operator request: run {run_id} does not exist")
    row = OperatorRequest(run_id=run_id, robot=robot, kind=kind, reason=reason, status="open",
                          created_at=now or utcnow())
    session.add(row)
    session.flush()
    log.warning("run %d: operator request %d opened (%s%s): %s", run_id, row.id, kind,
                "" if robot is None else f", robot {robot}", reason)
    return _record(row)


def get_request(session: Session, request_id: int) -> OperatorRequestRecord | None:
    row = session.get(OperatorRequest, request_id)
    return None if row is None else _record(row)


def list_requests(session: Session, *, run_id: int | None = None, status: str | None = "open",
                  limit: int = 100) -> list[OperatorRequestRecord]:
    """Newest first; `status` None lists every status."""
    query = select(OperatorRequest).order_by(OperatorRequest.id.desc()).limit(limit)
    if run_id is not None:
        query = query.where(OperatorRequest.run_id == run_id)
    if status is not None:
        query = query.where(OperatorRequest.status == status)
    return [_record(r) for r in session.scalars(query)]


def request_queue(session: Session, run_id: int, *, limit: int = 500,
                  now: dt.datetime | None = None, user_id: int | None = None,
                  preferences: bool = True) -> list[QueueItem]:
    """The run's open requests, every robot's, and its pending preference queries, in the
    order an operator should take them: most urgent priority first (PRIORITY_OF), oldest
    first within a priority (operator requests before preference queries of the same age).

    Args:
        now: the service's clock, for preference leases (default: the clock now).
        user_id: whose queue it is: a preference query leased to this user stays in it
            (they may have left it open); one leased to anyone else is left out until the
            lease expires. None: only the free ones.
        preferences: False lists only operator requests (what a robot waits on).
    """
    items: list[QueueItem] = [_record(r) for r in session.scalars(
        select(OperatorRequest)
        .where(OperatorRequest.run_id == run_id, OperatorRequest.status == "open"))]
    if preferences:
        items += _pending_preferences(session, run_id, now or utcnow(), user_id)
    items.sort(key=lambda r: (r.priority, r.created_at, r.source != "operator_request", r.id))
    return items[:limit]


def _pending_preferences(session: Session, run_id: int, now: dt.datetime,
                         user_id: int | None) -> list[PreferenceQueueItem]:
    # Free as robolearn.store.preferences leases them: pending, or a lease that expired.
    lease_ended = PreferenceQuery.lease_expires_at <= now
    mine = lease_ended if user_id is None else or_(lease_ended,
                                                   PreferenceQuery.leased_to == user_id)
    takeable = or_(PreferenceQuery.status == "pending",
                   and_(PreferenceQuery.status == "leased", mine))
    a, b = aliased(Episode), aliased(Episode)
    rows = session.execute(
        select(PreferenceQuery.id, PreferenceQuery.created_at, a.id, a.robot, b.id, b.robot)
        .join(a, PreferenceQuery.episode_a_id == a.id)
        .join(b, PreferenceQuery.episode_b_id == b.id)
        .where(PreferenceQuery.run_id == run_id, takeable))
    items = []
    for qid, created_at, a_id, a_robot, b_id, b_robot in rows:
        items.append(PreferenceQueueItem(
            id=qid, run_id=run_id, robot=a_robot if a_robot == b_robot else None,
            robots=tuple(sorted({r for r in (a_robot, b_robot) if r is not None})),
            episode_ids=(a_id, b_id), created_at=_aware(created_at)))
    return items


def resolve_request(session: Session, request_id: int, resolution: str,
                    user_id: int | None, *,
                    now: dt.datetime | None = None) -> OperatorRequestRecord:
    """Close an open request with what the person did (the caller commits); `now` is when
    (default: the clock now; a simulation passes its own).

    Raises:
        StoreError: unknown request, unknown resolution, or the request is no longer open
            (nothing changes then).
    """
    if resolution not in OPERATOR_REQUEST_RESOLUTIONS:
        raise StoreError(f"operator request {request_id}: resolution must be one of "
                         f"{list(OPERATOR_REQUEST_RESOLUTIONS)}, got {resolution!r}")
    row = session.get(OperatorRequest, request_id, with_for_update=True)
    if row is None:
        raise StoreError(f"operator request {request_id} does not exist")
    if row.status != "open":
        raise StoreError(f"operator request {request_id} is already {row.status} "
                         f"({row.resolution}); nothing changed")
    row.status = _STATUS_OF[resolution]
    row.resolution = resolution
    row.resolved_at = now or utcnow()
    row.user_id = user_id
    session.flush()
    return _record(row)


@dataclass(frozen=True)
class Waits:
    """How long answered requests of one kind waited for a person, s."""

    answered: int
    mean_s: float | None
    p50_s: float | None
    max_s: float | None

    @classmethod
    def of(cls, waits: list[float]) -> Waits:
        if not waits:
            return cls(answered=0, mean_s=None, p50_s=None, max_s=None)
        ordered = sorted(waits)
        mid = len(ordered) // 2
        p50 = ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
        return cls(answered=len(ordered), mean_s=sum(ordered) / len(ordered), p50_s=p50,
                   max_s=ordered[-1])


@dataclass(frozen=True)
class HelpRates:
    """What a run cost in human attention, per hour of recorded robot time."""

    robot_hours: float
    requests: int
    human_resets: int
    interventions: int  # episodes with at least one operator-controlled step
    requests_per_hour: float | None
    human_resets_per_hour: float | None
    interventions_per_hour: float | None
    request_waits: Waits
    preference_waits: Waits


def request_waits(session: Session, run_id: int) -> list[float]:
    """How long each closed (resolved or dismissed) operator request of a run waited, s."""
    return [_waited_s(opened, closed) for opened, closed in session.execute(
        select(OperatorRequest.created_at, OperatorRequest.resolved_at)
        .where(OperatorRequest.run_id == run_id, OperatorRequest.resolved_at.is_not(None)))
        if closed is not None]


def preference_waits(session: Session, run_id: int) -> list[float]:
    """How long each answered preference query of a run waited for its answer, s (its live
    answer's time - the query's creation; an undone answer does not count)."""
    return [_waited_s(asked, answered) for asked, answered in session.execute(
        select(PreferenceQuery.created_at, PreferenceAnswer.created_at)
        .join(PreferenceAnswer, PreferenceAnswer.query_id == PreferenceQuery.id)
        .where(PreferenceQuery.run_id == run_id, PreferenceQuery.status == "answered",
               PreferenceAnswer.undone.is_(False)))]


def help_rates(session: Session, run_id: int, control_hz: float) -> HelpRates:
    """Human resets, interventions and requests per hour of the run's recorded steps
    (steps / control rate), the same clock the reset-free benchmark reports in; and how
    long closed operator requests and answered preference queries waited."""
    steps = session.scalar(select(func.coalesce(func.sum(Episode.num_steps), 0))
                           .where(Episode.run_id == run_id)) or 0
    interventions = session.scalar(
        select(func.count()).select_from(Episode)
        .where(Episode.run_id == run_id, Episode.has_intervention.is_(True))) or 0
    by_resolution = dict(session.execute(
        select(OperatorRequest.resolution, func.count())
        .where(OperatorRequest.run_id == run_id).group_by(OperatorRequest.resolution)).all())
    requests = sum(by_resolution.values())
    resets = by_resolution.get("human_reset", 0)
    hours = steps / control_hz / 3600.0

    def rate(n: int) -> float | None:
        return n / hours if hours > 0 else None

    return HelpRates(robot_hours=hours, requests=requests, human_resets=resets,
                     interventions=interventions, requests_per_hour=rate(requests),
                     human_resets_per_hour=rate(resets),
                     interventions_per_hour=rate(interventions),
                     request_waits=Waits.of(request_waits(session, run_id)),
                     preference_waits=Waits.of(preference_waits(session, run_id)))
