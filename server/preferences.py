"""Leasing preference queries to operators so two never label the same pair at once.

A lease is one conditional UPDATE that succeeds only while the row is still free (pending,
or leased with an expired lease): a compare-and-swap. On SQLite the database write lock
serialises the UPDATEs; on PostgreSQL (READ COMMITTED) the second UPDATE waits for the row
lock and re-checks its WHERE clause against the committed row, so it matches nothing. The
loser sees rowcount 0 and tries the next candidate. Expired leases need no sweeper: the
next request for work takes them back.

`PreferenceLoopThread` runs robolearn.rewards.preference_loop for the active training run on
its own thread for as long as the service lives: queries and retraining never run on a
request thread, and everything it counts is in the database, so a restarted service
carries on. `loop_status` is what the Preferences page shows of it.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from robolearn.config.rewards import PreferenceConfig
from robolearn.errors import RewardModelError
from robolearn.rewards.preference_loop import PreferenceLoop, loop_state
from robolearn.rewards.preference_runs import (
    active_training_run,
    choose_run,
    collects_preferences,
    run_config,
)
from robolearn.store import Store
from robolearn.store.models import PreferenceAnswer, PreferenceQuery, RewardModel
from server import schemas

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


# ------------------------------------------------------------------ preferences while training
class PreferenceLoopThread:
    """The preference loop on a daemon thread; `stop()` waits for a tick in progress."""

    def __init__(self, store: Store, interval_s: float) -> None:
        self._loop = PreferenceLoop(store)
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop.run_forever,
                                        args=(self._stop, interval_s),
                                        name="preference-loop", daemon=True)

    def start(self) -> None:
        self._thread.start()
        log.info("preference loop: checking the active training run every %.1f s",
                 self._interval_s)

    def stop(self, timeout_s: float = 60.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                log.warning("preference loop still busy after %.0f s (training?); the "
                            "service stops without it", timeout_s)


def _versions(db: Session, run_id: int) -> list[schemas.PreferenceVersion]:
    rows = db.scalars(select(RewardModel).where(
        RewardModel.kind == "preference", RewardModel.run_id == run_id,
        RewardModel.status == "ready").order_by(RewardModel.version))
    out = []
    for row in rows:
        m = row.metrics or {}
        agreement = m.get("holdout_agreement")
        accuracy = m.get("train_accuracy")
        out.append(schemas.PreferenceVersion(
            model_id=row.id, version=row.version, created_at=row.created_at,
            n_labels=int(m.get("n_labels", 0)), n_holdout=int(m.get("n_holdout", 0)),
            holdout_agreement=float(agreement) if isinstance(agreement, int | float) else None,
            train_accuracy=float(accuracy) if isinstance(accuracy, int | float) else None))
    return out


def loop_status(db: Session, store: Store, run_id: int | None) -> schemas.PreferenceLoopStatus:
    """Preference collection of a run (default: the active, else newest, training run).

    Raises:
        RewardModelError: the given run is a replay or import run, or does not exist.
    """
    try:
        run, _why = choose_run(store, run_id)
    except RewardModelError:
        if run_id is not None:
            raise
        return schemas.PreferenceLoopStatus(
            run_id=None, collecting=False,
            detail="no training run yet: queries are made from a run's episodes while it "
            "trains with preference shaping")
    cfg = run_config(run)
    active = active_training_run(store)
    is_active = active is not None and active.id == run.id
    wants = cfg is not None and collects_preferences(cfg)
    pref = cfg.rewards.preference if cfg is not None else None
    collecting = is_active and wants
    if collecting:
        detail = (f"new queries come from run {run.id}'s training episodes as it records "
                  "them; its actor rewards with a retrained version from the run's next start")
    elif not is_active:
        detail = f"run {run.id} is not training ({run.status}): no new queries are made"
    elif cfg is None:
        detail = f"run {run.id}'s stored config does not parse: no new queries are made"
    else:
        detail = (f"run {run.id} does not use preference shaping: no new queries are made "
                  "(set rewards.preference.collect_without_shaping to collect for a first "
                  "model)")
    state = loop_state(store, run, pref or PreferenceConfig(), collecting)
    return schemas.PreferenceLoopStatus(
        run_id=run.id, run_name=run.name, collecting=collecting, detail=detail,
        episodes=state.episodes, asked=state.asked, pending=state.pending,
        answers=state.answers, next_retrain_in=state.next_retrain_in if pref else None,
        queries_per_episode=pref.queries_per_episode if pref else None,
        versions=_versions(db, run.id))
