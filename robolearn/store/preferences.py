"""Preference queries and answers: lease a query to one operator at a time, answer it,
undo an answer, give a query back, and read answers.

A lease is one conditional UPDATE that succeeds only while the row is still free (pending,
or leased with an expired lease): a compare-and-swap. On SQLite the database write lock
serialises the UPDATEs; on PostgreSQL (READ COMMITTED) the second UPDATE waits for the row
lock and re-checks its WHERE clause against the committed row, so it matches nothing. The
loser sees rowcount 0 and tries the next candidate. Expired leases need no sweeper: the
next request for work takes them back.

Functions take an ORM session; `lease_next` commits (each lease attempt must be visible to
other operators at once), the others leave committing to the caller.
"""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from robolearn.store.models import PreferenceAnswer, PreferenceQuery

log = logging.getLogger(__name__)

# Candidates tried per request before giving up (each lost race moves to the next one).
MAX_LEASE_ATTEMPTS = 32


class LeaseConflict(Exception):
    """The query is not leased to this user (answered, released, or re-leased elsewhere)."""


def _free(now: dt.datetime) -> ColumnElement[bool]:
    return or_(
        PreferenceQuery.status == "pending",
        and_(PreferenceQuery.status == "leased", PreferenceQuery.lease_expires_at <= now),
    )


def count_free(db: Session, now: dt.datetime, run_id: int | None) -> int:
    query = select(func.count()).select_from(PreferenceQuery).where(_free(now))
    if run_id is not None:
        query = query.where(PreferenceQuery.run_id == run_id)
    return db.scalar(query) or 0


def lease_next(db: Session, user_id: int, now: dt.datetime, lease_s: float,
               run_id: int | None = None) -> PreferenceQuery | None:
    """The query this user should answer now, leased to them until now + lease_s.

    A user who already holds a live lease gets that query again (its lease renewed), so a
    page reload never reserves a second pair. Commits.
    """
    expires = now + dt.timedelta(seconds=lease_s)
    held = select(PreferenceQuery.id).where(
        PreferenceQuery.status == "leased", PreferenceQuery.leased_to == user_id,
        PreferenceQuery.lease_expires_at > now,
    )
    if run_id is not None:
        held = held.where(PreferenceQuery.run_id == run_id)
    held_id = db.scalar(held.order_by(PreferenceQuery.id).limit(1))
    if held_id is not None:
        renewed = db.execute(
            update(PreferenceQuery)
            .where(PreferenceQuery.id == held_id, PreferenceQuery.status == "leased",
                   PreferenceQuery.leased_to == user_id)
            .values(lease_expires_at=expires)
        )
        db.commit()
        if renewed.rowcount == 1:
            return db.get(PreferenceQuery, held_id)
    skip: list[int] = []
    for _ in range(MAX_LEASE_ATTEMPTS):
        candidates = select(PreferenceQuery.id).where(_free(now))
        if run_id is not None:
            candidates = candidates.where(PreferenceQuery.run_id == run_id)
        if skip:
            candidates = candidates.where(PreferenceQuery.id.not_in(skip))
        candidate = db.scalar(candidates.order_by(PreferenceQuery.id).limit(1))
        if candidate is None:
            db.rollback()
            return None
        taken = db.execute(
            update(PreferenceQuery)
            .where(PreferenceQuery.id == candidate, _free(now))
            .values(status="leased", leased_to=user_id, lease_expires_at=expires)
        )
        db.commit()
        if taken.rowcount == 1:
            row = db.get(PreferenceQuery, candidate)
            db.refresh(row)
            return row
        skip.append(candidate)  # another operator won this one: try the next
    log.warning("user %d: lost %d lease races in a row", user_id, MAX_LEASE_ATTEMPTS)
    return None


def lease_query(db: Session, user_id: int, query_id: int, now: dt.datetime,
                lease_s: float) -> PreferenceQuery:
    """Lease this one query to this user until now + lease_s (the operator's queue opens a
    query by id): it must be free, or already leased to this user (the lease is renewed).
    Any other live lease of this user goes back to the pool, so an operator holds one pair
    at a time, as with `lease_next`. Commits.

    Raises:
        LeaseConflict: no such query, it is answered, or another user holds a live lease.
    """
    taken = db.execute(
        update(PreferenceQuery)
        .where(PreferenceQuery.id == query_id,
               or_(_free(now), and_(PreferenceQuery.status == "leased",
                                    PreferenceQuery.leased_to == user_id)))
        .values(status="leased", leased_to=user_id,
                lease_expires_at=now + dt.timedelta(seconds=lease_s))
    )
    if taken.rowcount != 1:
        db.rollback()
        raise LeaseConflict(query_id)
    db.execute(
        update(PreferenceQuery)
        .where(PreferenceQuery.status == "leased", PreferenceQuery.leased_to == user_id,
               PreferenceQuery.id != query_id)
        .values(status="pending", leased_to=None, lease_expires_at=None)
    )
    db.commit()
    row = db.get(PreferenceQuery, query_id)
    assert row is not None  # leased above
    db.refresh(row)
    return row


def answer(db: Session, user_id: int, query_id: int, value: str,
           now: dt.datetime) -> PreferenceAnswer:
    """Record this user's answer to a query leased to them (not committed).

    Raises:
        LeaseConflict: the query is not leased to this user.
    """
    closed = db.execute(
        update(PreferenceQuery)
        .where(PreferenceQuery.id == query_id, PreferenceQuery.status == "leased",
               PreferenceQuery.leased_to == user_id)
        .values(status="answered", lease_expires_at=None)
    )
    if closed.rowcount != 1:
        db.rollback()
        raise LeaseConflict(query_id)
    row = PreferenceAnswer(query_id=query_id, user_id=user_id, answer=value, created_at=now,
                           undone=False)
    db.add(row)
    db.flush()
    return row


def undo_last(db: Session, user_id: int, now: dt.datetime,
              lease_s: float) -> PreferenceAnswer | None:
    """Undo this user's newest live answer: the answer row is kept (flagged undone) and the
    query is leased back to the same user so they can answer again. Not committed."""
    last = db.scalar(
        select(PreferenceAnswer)
        .where(PreferenceAnswer.user_id == user_id, PreferenceAnswer.undone.is_(False))
        .order_by(PreferenceAnswer.id.desc()).limit(1)
    )
    if last is None:
        return None
    reopened = db.execute(
        update(PreferenceQuery)
        .where(PreferenceQuery.id == last.query_id, PreferenceQuery.status == "answered")
        .values(status="leased", leased_to=user_id,
                lease_expires_at=now + dt.timedelta(seconds=lease_s))
    )
    if reopened.rowcount != 1:
        db.rollback()
        raise LeaseConflict(last.query_id)
    last.undone = True
    db.flush()
    return last


def release(db: Session, user_id: int, query_id: int) -> None:
    """Give a leased query back to the pool (not committed).

    Raises:
        LeaseConflict: the query is not leased to this user.
    """
    done = db.execute(
        update(PreferenceQuery)
        .where(PreferenceQuery.id == query_id, PreferenceQuery.status == "leased",
               PreferenceQuery.leased_to == user_id)
        .values(status="pending", leased_to=None, lease_expires_at=None)
    )
    if done.rowcount != 1:
        db.rollback()
        raise LeaseConflict(query_id)


def get_query(session: Session, query_id: int) -> PreferenceQuery | None:
    return session.get(PreferenceQuery, query_id)


def list_answers(session: Session, *, run_id: int | None = None, offset: int = 0,
                 limit: int = 100) -> list[PreferenceAnswer]:
    """Answers newest first, undone ones included (of `run_id`'s queries when given)."""
    query = select(PreferenceAnswer).order_by(PreferenceAnswer.id.desc())
    if run_id is not None:
        query = query.join(PreferenceQuery).where(PreferenceQuery.run_id == run_id)
    return list(session.scalars(query.offset(offset).limit(limit)))


def answer_waits_s(session: Session, answer_ids: list[int]) -> dict[int, float]:
    """How long each answer's query waited for it, s (answer time - query creation), by
    answer id."""
    if not answer_ids:
        return {}
    rows = session.execute(
        select(PreferenceAnswer.id, PreferenceAnswer.created_at, PreferenceQuery.created_at)
        .join(PreferenceQuery, PreferenceAnswer.query_id == PreferenceQuery.id)
        .where(PreferenceAnswer.id.in_(answer_ids)))
    return {aid: waited_s(asked, answered) for aid, answered, asked in rows}


def waited_s(asked: dt.datetime, answered: dt.datetime) -> float:
    """Seconds from `asked` to `answered` (never negative; naive times are UTC, as SQLite
    hands them back)."""
    def aware(t: dt.datetime) -> dt.datetime:
        return t if t.tzinfo is not None else t.replace(tzinfo=dt.UTC)

    return max(0.0, (aware(answered) - aware(asked)).total_seconds())


def count_queries(session: Session, run_id: int,
                  statuses: tuple[str, ...] | None = None) -> int:
    """How many queries a run has (with one of `statuses`, when given)."""
    query = select(func.count()).select_from(PreferenceQuery).where(
        PreferenceQuery.run_id == run_id)
    if statuses is not None:
        query = query.where(PreferenceQuery.status.in_(statuses))
    return int(session.scalar(query) or 0)


def count_answers(session: Session, run_id: int) -> int:
    """Answers of a run that count for training (not undone, not skipped)."""
    return int(session.scalar(
        select(func.count()).select_from(PreferenceAnswer)
        .join(PreferenceQuery, PreferenceAnswer.query_id == PreferenceQuery.id)
        .where(PreferenceQuery.run_id == run_id, PreferenceAnswer.undone.is_(False),
               PreferenceAnswer.answer != "skip")
    ) or 0)


def add_queries(session: Session, run_id: int,
                pairs: list[tuple[tuple[int, int, int], tuple[int, int, int]]],
                ) -> list[PreferenceQuery]:
    """Insert one pending query per ((episode, start, end), (episode, start, end)) pair
    (flushed: ids exist; not committed)."""
    rows = [PreferenceQuery(run_id=run_id, episode_a_id=a[0], episode_a_start=a[1],
                            episode_a_end=a[2], episode_b_id=b[0], episode_b_start=b[1],
                            episode_b_end=b[2], status="pending") for a, b in pairs]
    session.add_all(rows)
    session.flush()
    return rows


def pending_queries(session: Session, run_id: int, limit: int) -> list[PreferenceQuery]:
    """A run's oldest `limit` pending queries."""
    return list(session.scalars(
        select(PreferenceQuery)
        .where(PreferenceQuery.run_id == run_id, PreferenceQuery.status == "pending")
        .order_by(PreferenceQuery.id).limit(limit)))


def record_answer(session: Session, query: PreferenceQuery, value: str,
                  user_id: int | None = None) -> PreferenceAnswer:
    """Answer a query that is not leased (a scripted teacher); not committed."""
    row = PreferenceAnswer(query_id=query.id, user_id=user_id, answer=value)
    session.add(row)
    query.status = "answered"
    return row


def live_answers(session: Session, run_id: int) -> list[tuple[PreferenceQuery, str]]:
    """Every answer of a run that is not undone (skips included), oldest first, with its
    query."""
    return [(q, a) for q, a in session.execute(
        select(PreferenceQuery, PreferenceAnswer.answer)
        .join(PreferenceAnswer, PreferenceAnswer.query_id == PreferenceQuery.id)
        .where(PreferenceQuery.run_id == run_id, PreferenceAnswer.undone.is_(False))
        .order_by(PreferenceAnswer.id)).all()]
