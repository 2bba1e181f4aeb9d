"""Operator requests: the robot's calls for help during reset-free training.

The actor opens a request and pauses when it is stuck; an operator lists the open ones,
helps, and resolves (human reset, takeover) or dismisses the request here. The actor polls
the database for that resolution and resumes training (no extra wire path: it works with
the actor on another machine, and a resolution made while the service restarts is not lost).
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, status

from robolearn.store import runs
from robolearn.store.operator_requests import (
    PRIORITY_NAMES,
    PRIORITY_OF,
    OperatorRequestRecord,
    get_request,
    help_rates,
    list_requests,
    request_queue,
    resolve_request,
)
from server import operator_request_schemas as schemas
from server.deps import CurrentOperator, CurrentUser, DbSession, Id, RunOr404, ServicesDep, audit
from server.schemas import INT64_MAX, Message

router = APIRouter(prefix="/api/operator-requests", tags=["operator_requests"])


def public_request(rec: OperatorRequestRecord) -> schemas.OperatorRequestPublic:
    return schemas.OperatorRequestPublic(**vars(rec), priority=rec.priority,
                                         waited_s=round(rec.waited_s(), 3))


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
    _user: CurrentUser, db: DbSession,
    run_id: Annotated[int | None, Query(ge=1, le=INT64_MAX)] = None,
) -> schemas.RequestQueue:
    """One queue for every robot: the open requests of a run (default: the newest running
    one) in the order to take them, most urgent priority first (stuck, then a takeover the
    learner asks for, then preference queries), oldest first within a priority."""
    if run_id is None:
        running = next((r for r in runs.list_runs(db, newest_first=True)
                        if r.status == "running"), None)
        run_id = None if running is None else running.id
    rows = [] if run_id is None else request_queue(db, run_id)
    return schemas.RequestQueue(
        run_id=run_id, requests=[public_request(r) for r in rows],
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
    """Human resets, interventions and requests per hour of the run's robot time."""
    r = help_rates(db, run.id, services.config.actor.control_hz)
    return schemas.HelpRatesPublic(run_id=run.id, **vars(r))
