"""Operator requests: the robot's calls for help during reset-free training.

The actor opens a request and pauses when it is stuck; an operator lists the open ones,
helps, and resolves (human reset, takeover) or dismisses the request here. The actor polls
the database for that resolution and resumes training (no extra wire path: it works with
the actor on another machine, and a resolution made while the service restarts is not lost).
The operator's queue also holds the run's pending preference queries (answered on the
Preferences page, not here).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, status
from sqlalchemy.orm import Session

from robolearn.server import operator_request_schemas as schemas
from robolearn.server.deps import (
    CurrentOperator,
    CurrentUser,
    DbSession,
    Id,
    RunOr404,
    ServicesDep,
    audit,
)
from robolearn.server.schemas import INT64_MAX, Message
from robolearn.server.services import Services
from robolearn.store import runs
from robolearn.store.operator_requests import (
    PRIORITY_NAMES,
    PRIORITY_OF,
    PreferenceQueueItem,
    QueueItem,
    get_request,
    help_rates,
    list_requests,
    request_queue,
    resolve_request,
)

router = APIRouter(prefix="/api/operator-requests", tags=["operator_requests"])


def preference_link(query_id: int) -> str:
    """The web UI's route that claims and shows one preference query."""
    return f"#/preferences?query={query_id}"


def public_request(rec: QueueItem, now: dt.datetime | None = None
                   ) -> schemas.OperatorRequestPublic:
    """An operator request or a queued preference query, as the API shows it; `now` (default:
    the clock now) ends an open item's wait."""
    common: dict[str, object] = {
        "id": rec.id, "source": rec.source, "key": f"{rec.source}:{rec.id}",
        "run_id": rec.run_id, "robot": rec.robot, "robots": list(rec.robots), "kind": rec.kind,
        "priority": rec.priority, "reason": rec.reason, "created_at": rec.created_at,
        "waited_s": round(rec.waited_s(now), 3)}
    closing: dict[str, object]
    if isinstance(rec, PreferenceQueueItem):
        closing = {"status": "open", "resolution": None, "resolved_at": None, "user_id": None,
                   "ui_link": preference_link(rec.id)}
    else:
        closing = {"status": rec.status, "resolution": rec.resolution,
                   "resolved_at": rec.resolved_at, "user_id": rec.user_id}
    return schemas.OperatorRequestPublic.model_validate(common | closing)


def queue_of(db: Session, services: Services, run_id: int,
             user_id: int) -> tuple[list[QueueItem], dt.datetime]:
    """`user_id`'s queue of a run (preference leases read on the service's clock) and the
    time it was read."""
    now = dt.datetime.fromtimestamp(services.clock(), dt.UTC)
    return request_queue(db, run_id, now=now, user_id=user_id), now


@router.get("")
def list_open(
    _user: CurrentUser, db: DbSession,
    run_id: Annotated[int | None, Query(ge=1, le=INT64_MAX)] = None,
    status_: Annotated[Literal["open", "resolved", "dismissed", "all"],
                       Query(alias="status")] = "open",
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[schemas.OperatorRequestPublic]:
    """Requests, newest first; by default only the open ones (the robot is waiting)."""
    rows = list_requests(db, run_id=run_id, status=None if status_ == "all" else status_,
                         limit=limit)
    return [public_request(r) for r in rows]


@router.get("/queue")
def queue(
    user: CurrentUser, db: DbSession, services: ServicesDep,
    run_id: Annotated[int | None, Query(ge=1, le=INT64_MAX)] = None,
) -> schemas.RequestQueue:
    """One queue for every robot: the open requests and pending preference queries of a run
    (default: the newest running one) in the order to take them, most urgent priority first
    (stuck, then a takeover the learner asks for, then preference queries), oldest first
    within a priority. A preference query leased to another operator is left out while
    their lease lasts; one leased to you stays (`ui_link` opens it)."""
    if run_id is None:
        running = next((r for r in runs.list_runs(db, newest_first=True)
                        if r.status == "running"), None)
        run_id = None if running is None else running.id
    rows, now = ([], None) if run_id is None else queue_of(db, services, run_id, user.id)
    return schemas.RequestQueue(
        run_id=run_id, requests=[public_request(r, now) for r in rows],
        priorities={kind: PRIORITY_NAMES[p] for kind, p in PRIORITY_OF.items()})


def _close(request_id: int, resolution: str, user: CurrentOperator,
           db: DbSession) -> schemas.OperatorRequestPublic:
    if get_request(db, request_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND,
                            f"operator request {request_id}: no such request")
    rec = resolve_request(db, request_id, resolution, user.id)  # 409 if no longer open
    audit(db, user, f"operator_request.{'dismiss' if resolution == 'dismiss' else 'resolve'}",
          f"operator_request:{request_id}", {"resolution": resolution, "run_id": rec.run_id,
                                             "kind": rec.kind})
    db.commit()
    return public_request(rec)


@router.post("/{request_id}/resolve", responses={404: {"model": Message},
                                                 409: {"model": Message}})
def resolve(request_id: Id, body: schemas.OperatorRequestResolve, user: CurrentOperator,
            db: DbSession) -> schemas.OperatorRequestPublic:
    """Say what you did (human reset or takeover); the paused actor resumes training."""
    return _close(request_id, body.resolution, user, db)


@router.post("/{request_id}/dismiss", responses={404: {"model": Message},
                                                 409: {"model": Message}})
def dismiss(request_id: Id, user: CurrentOperator,
            db: DbSession) -> schemas.OperatorRequestPublic:
    """Nothing needed doing: the actor resumes as it is."""
    return _close(request_id, "dismiss", user, db)


@router.get("/rates/{run_id}")
def rates(_user: CurrentUser, run: RunOr404, db: DbSession,
          services: ServicesDep) -> schemas.HelpRatesPublic:
    """Human resets, interventions and requests per hour of the run's robot time, and how
    long closed operator requests and answered preference queries waited."""
    r = help_rates(db, run.id, services.config.actor.control_hz)
    return schemas.HelpRatesPublic.model_validate({"run_id": run.id, **asdict(r)})
