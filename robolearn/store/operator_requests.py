"""Operator requests: open one (the actor, when reset-free training is stuck), list the open
ones, resolve or dismiss one (the service, for a person), and count what they cost per hour.

Functions take an ORM session so the service's request-scoped session and the actor's
`Store.session()` share one implementation.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from robolearn.errors import StoreError
from robolearn.store.models import (
    OPERATOR_REQUEST_RESOLUTIONS,
    Episode,
    OperatorRequest,
    Run,
    utcnow,
)

log = logging.getLogger(__name__)

# A resolution decides the final status: dismissing closes it as "dismissed".
_STATUS_OF = {"human_reset": "resolved", "takeover": "resolved", "dismiss": "dismissed"}


@dataclass(frozen=True)
class OperatorRequestRecord:
    id: int
    run_id: int
    kind: str
    reason: str
    status: str
    resolution: str | None
    created_at: dt.datetime
    resolved_at: dt.datetime | None
    user_id: int | None


def _record(row: OperatorRequest) -> OperatorRequestRecord:
    return OperatorRequestRecord(
        id=row.id, run_id=row.run_id, kind=row.kind, reason=row.reason, status=row.status,
        resolution=row.resolution, created_at=row.created_at, resolved_at=row.resolved_at,
        user_id=row.user_id,
    )


def open_request(session: Session, run_id: int, kind: str, reason: str) -> OperatorRequestRecord:
    """Insert an open request (the caller commits).

    Raises:
        StoreError: unknown run, or a kind that is empty or longer than 32 characters.
    """
    if not kind or len(kind) > 32:
        raise StoreError(f"operator request for run {run_id}: kind must be 1-32 characters, "
                         f"got {kind!r}")
    if session.get(Run, run_id) is None:
        raise StoreError(f"operator request: run {run_id} does not exist")
    row = OperatorRequest(run_id=run_id, kind=kind, reason=reason, status="open")
    session.add(row)
    session.flush()
    log.warning("run %d: operator request %d opened (%s): %s", run_id, row.id, kind, reason)
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


def resolve_request(session: Session, request_id: int, resolution: str,
                    user_id: int | None) -> OperatorRequestRecord:
    """Close an open request with what the person did (the caller commits).

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
    row.resolved_at = utcnow()
    row.user_id = user_id
    session.flush()
    return _record(row)


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


def help_rates(session: Session, run_id: int, control_hz: float) -> HelpRates:
    """Human resets, interventions and requests per hour of the run's recorded steps
    (steps / control rate), the same clock the reset-free benchmark reports in."""
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
                     interventions_per_hour=rate(interventions))
