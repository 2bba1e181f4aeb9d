"""Preference queries: get the next pair under a lease (or claim one by id, as the
operator's queue opens it), answer it, undo, give it back; and where collection for the
training run stands (its queries, answers and model versions)."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status

from robolearn.server import preferences as service_preferences
from robolearn.server import schemas
from robolearn.server.deps import CurrentOperator, CurrentUser, DbSession, Id, ServicesDep, audit
from robolearn.server.routers.episodes import video_url
from robolearn.store import episodes, preferences
from robolearn.store.models import PreferenceAnswer, PreferenceQuery

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/preferences", tags=["preferences"])

RunFilter = Annotated[int | None, Query(ge=1, le=schemas.INT64_MAX,
                                        description="Only this run's queries.")]


def _now(services: ServicesDep) -> dt.datetime:
    return dt.datetime.fromtimestamp(services.clock(), dt.UTC)


def _aware(value: dt.datetime) -> dt.datetime:
    # SQLite returns naive datetimes; everything stored is UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def _segment(db: DbSession, episode_id: int, start: int, end: int) -> schemas.Segment:
    episode = episodes.get_episode(db, episode_id)
    fps = episode.fps if episode else 10.0
    # A media fragment (#t=begin,end in seconds) makes the browser play just the segment.
    fragment = f"#t={start / fps:.3f},{(end + 1) / fps:.3f}"
    cameras = episode.cameras if episode else []
    return schemas.Segment(episode_id=episode_id, start=start, end=end, fps=fps,
                           video_urls={c: video_url(episode_id, c) + fragment for c in cameras})


def _public(db: DbSession, query: PreferenceQuery) -> schemas.PreferenceQueryPublic:
    return schemas.PreferenceQueryPublic(
        id=query.id, run_id=query.run_id,
        left=_segment(db, query.episode_a_id, query.episode_a_start, query.episode_a_end),
        right=_segment(db, query.episode_b_id, query.episode_b_start, query.episode_b_end),
        lease_expires_at=_aware(query.lease_expires_at),
    )


def _conflict(query_id: int) -> HTTPException:
    return HTTPException(status.HTTP_409_CONFLICT,
                         f"preference query {query_id} is not leased to you (answered, given "
                         "back, or its lease expired and someone else took it); ask for the "
                         "next one")


@router.post("/next")
def next_query(user: CurrentOperator, services: ServicesDep, db: DbSession,
               run_id: RunFilter = None) -> schemas.NextQuery:
    """Lease the next query to this user (or renew the one they hold)."""
    now = _now(services)
    lease_s = services.config.server.preference_lease_s
    query = preferences.lease_next(db, user.id, now, lease_s, run_id)
    pending = preferences.count_free(db, now, run_id)
    if query is None:
        where = f" for run {run_id}" if run_id is not None else ""
        loop = service_preferences.loop_status(db, services.store, None)
        more = (f"new ones come from run {loop.run_id}'s training episodes as it records them"
                if loop.collecting else f"no new ones are made now ({loop.detail})")
        return schemas.NextQuery(
            query=None, pending=pending,
            detail=f"no pending preference queries{where}: all are answered or leased to "
            f"other operators; {more}",
        )
    audit(db, user, "preference.lease", f"preference_query:{query.id}")
    db.commit()
    return schemas.NextQuery(query=_public(db, query), pending=pending)


@router.post("/{query_id}/claim", responses={404: {"model": schemas.Message},
                                             409: {"model": schemas.Message}})
def claim(query_id: Id, user: CurrentOperator, services: ServicesDep,
          db: DbSession) -> schemas.PreferenceQueryPublic:
    """Lease this query to you (the operator's queue opens one by id), or renew your lease on
    it; any other query you hold goes back to the pool. 409: it is answered, or another
    operator holds it."""
    if preferences.get_query(db, query_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND,
                            f"preference query {query_id}: no such query")
    now = _now(services)
    try:
        query = preferences.lease_query(db, user.id, query_id, now,
                                        services.config.server.preference_lease_s)
    except preferences.LeaseConflict as exc:
        row = preferences.get_query(db, query_id)
        until = None if row is None else row.lease_expires_at
        why = ("is already answered" if row is not None and row.status == "answered" else
               "is leased to another operator" + (
                   "" if until is None
                   else f" until {_aware(until).isoformat(timespec='seconds')}"))
        raise HTTPException(status.HTTP_409_CONFLICT,
                            f"preference query {query_id} {why}; take the next one in the "
                            "queue") from exc
    audit(db, user, "preference.claim", f"preference_query:{query_id}")
    db.commit()
    return _public(db, query)


@router.get("/status", responses={400: {"model": schemas.Message}})
def loop_status(_user: CurrentUser, services: ServicesDep, db: DbSession,
                run_id: RunFilter = None) -> schemas.PreferenceLoopStatus:
    """Preference collection of a run (default: the active training run, else the newest):
    queries made and waiting, answers, the next retraining, and every model version with
    its agreement on held-out answers."""
    return service_preferences.loop_status(db, services.store, run_id)


@router.post("/{query_id}/answer", status_code=status.HTTP_201_CREATED)
def answer(query_id: Id, body: schemas.PreferenceAnswerCreate, user: CurrentOperator,
           services: ServicesDep, db: DbSession) -> schemas.PreferenceAnswerPublic:
    """Answer a query leased to you: left, right, equal, or skip (cannot tell)."""
    try:
        row = preferences.answer(db, user.id, query_id, body.answer, _now(services))
    except preferences.LeaseConflict as exc:
        raise _conflict(query_id) from exc
    audit(db, user, "preference.answer", f"preference_query:{query_id}",
          {"answer": body.answer, "answer_id": row.id})
    db.commit()
    return _answers(db, [row])[0]


@router.post("/undo", responses={404: {"model": schemas.Message}})
def undo(user: CurrentOperator, services: ServicesDep,
         db: DbSession) -> schemas.PreferenceQueryPublic:
    """Undo your last answer; its query is leased back to you to answer again."""
    try:
        row = preferences.undo_last(db, user.id, _now(services),
                                    services.config.server.preference_lease_s)
    except preferences.LeaseConflict as exc:
        raise _conflict(exc.args[0]) from exc
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "you have no answer to undo")
    audit(db, user, "preference.undo", f"preference_query:{row.query_id}",
          {"answer_id": row.id, "answer": row.answer})
    db.commit()
    return _public(db, preferences.get_query(db, row.query_id))


@router.post("/{query_id}/release")
def release(query_id: Id, user: CurrentOperator, db: DbSession) -> schemas.Message:
    """Give a leased query back to the pool without answering it."""
    try:
        preferences.release(db, user.id, query_id)
    except preferences.LeaseConflict as exc:
        raise _conflict(query_id) from exc
    audit(db, user, "preference.release", f"preference_query:{query_id}")
    db.commit()
    return schemas.Message(detail=f"preference query {query_id} is back in the pool")


@router.get("/answers")
def list_answers(
    _user: CurrentUser, db: DbSession, run_id: RunFilter = None,
    offset: Annotated[int, Query(ge=0, le=schemas.INT64_MAX)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[schemas.PreferenceAnswerPublic]:
    """Answers, newest first (undone ones included, flagged), each with how long its query
    waited for it."""
    return _answers(db, preferences.list_answers(db, run_id=run_id, offset=offset,
                                                 limit=limit))


def _answers(db: DbSession, rows: list[PreferenceAnswer]
             ) -> list[schemas.PreferenceAnswerPublic]:
    waits = preferences.answer_waits_s(db, [r.id for r in rows])
    return [schemas.PreferenceAnswerPublic.model_validate(r).model_copy(
        update={"waited_s": round(waits[r.id], 3)}) for r in rows]
