"""The operator's one queue on a real SQLite file: operator requests and pending preference
queries ordered by priority, then age; preference queries attributed to the robot their
clips come from; answered and leased ones drop out; and how long answered ones waited."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from robolearn.store import Store, preferences, users
from robolearn.store.models import PreferenceQuery
from robolearn.store.operator_requests import (
    PreferenceQueueItem,
    help_rates,
    open_request,
    request_queue,
    resolve_request,
)
from robolearn.store.preferences import LeaseConflict

from .conftest import record

T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


def _at(s: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=s)


def _episode(store: Store, run_id: int, robot: str | None) -> int:
    with store.begin_episode(run_id, "pick", ["cam"], robot=robot) as writer:
        episode_id, _ = record(writer, 3, np.random.default_rng(0), size=(16, 16))
    return episode_id


def _query(store: Store, run_id: int, a: int, b: int, created_s: float) -> int:
    with store.session() as db:
        row = PreferenceQuery(
            run_id=run_id,
            episode_a_id=a,
            episode_a_start=0,
            episode_a_end=1,
            episode_b_id=b,
            episode_b_start=1,
            episode_b_end=2,
            created_at=_at(created_s),
        )
        db.add(row)
        db.commit()
        return row.id


@pytest.fixture
def fleet(store: Store) -> tuple[int, dict[str | None, int]]:
    run = store.create_run("fleet", {})
    return run, {robot: _episode(store, run, robot) for robot in ("left", "right", None)}


def test_one_queue_orders_kinds_by_priority_then_age(
    store: Store, fleet: tuple[int, dict[str | None, int]]
) -> None:
    run, ep = fleet
    pref_old = _query(store, run, ep["left"], ep["left"], created_s=0)
    pref_mixed = _query(store, run, ep["left"], ep["right"], created_s=20)
    pref_new = _query(store, run, ep["right"], ep["right"], created_s=40)
    with store.session() as db:
        take = open_request(db, run, "uncertain_takeover", "", robot="right", now=_at(50)).id
        stuck = open_request(db, run, "no_progress", "", robot="left", now=_at(60)).id
        # An operator request of kind "preference" shares the class; same age as pref_mixed:
        # operator requests come first.
        legacy = open_request(db, run, "preference", "", robot="left", now=_at(20)).id
        db.commit()
        queue = request_queue(db, run, now=_at(100))
    assert [(q.source, q.id) for q in queue] == [
        ("operator_request", stuck),
        ("operator_request", take),
        ("preference_query", pref_old),
        ("operator_request", legacy),
        ("preference_query", pref_mixed),
        ("preference_query", pref_new),
    ]
    assert [q.priority for q in queue] == [0, 1, 2, 2, 2, 2]
    prefs = {q.id: q for q in queue if isinstance(q, PreferenceQueueItem)}
    # Attribution: both clips of one robot -> that robot; clips of two -> none, both named.
    assert (prefs[pref_old].robot, prefs[pref_old].robots) == ("left", ("left",))
    assert (prefs[pref_mixed].robot, prefs[pref_mixed].robots) == (None, ("left", "right"))
    assert "robots left and right" in prefs[pref_mixed].reason
    assert prefs[pref_new].robot == "right"
    assert prefs[pref_old].waited_s(_at(100)) == 100.0
    assert prefs[pref_old].kind == "preference"
    # Only what a robot waits on, and the head of the queue.
    with store.session() as db:
        assert [q.source for q in request_queue(db, run, preferences=False)] == [
            "operator_request"
        ] * 3
        assert [q.id for q in request_queue(db, run, now=_at(100), limit=1)] == [stuck]


def test_a_run_of_one_robot_and_other_runs(
    store: Store, fleet: tuple[int, dict[str | None, int]]
) -> None:
    run, ep = fleet
    solo = _query(store, run, ep[None], ep[None], created_s=0)
    half = _query(store, run, ep[None], ep["left"], created_s=1)
    other = store.create_run("other", {})
    _query(store, other, _episode(store, other, None), ep[None], created_s=0)
    with store.session() as db:
        queue = request_queue(db, run, now=_at(10))
    assert [(q.id, q.robot, q.robots) for q in queue] == [(solo, None, ()), (half, None, ("left",))]


def test_answered_and_leased_queries_drop_out_and_their_waits_count(
    store: Store, fleet: tuple[int, dict[str | None, int]]
) -> None:
    run, ep = fleet
    q1, q2, q3 = (_query(store, run, ep["left"], ep["right"], created_s=s) for s in (0, 1, 2))
    with store.session() as db:
        ann = users.add_user(db, "ann", "x", "operator").id
        bob = users.add_user(db, "bob", "x", "operator").id
        db.commit()

        def queued(user: int | None, at_s: float) -> list[int]:
            return [q.id for q in request_queue(db, run, now=_at(at_s), user_id=user)]

        # ann takes q2 from the queue by id: gone from bob's queue, still in hers.
        assert preferences.lease_query(db, ann, q2, _at(10), 60).status == "leased"
        assert queued(bob, 10) == [q1, q3]
        assert queued(ann, 10) == [q1, q2, q3]
        assert queued(None, 10) == [q1, q3]
        # Another operator cannot claim it while the lease lasts; after it expires they can.
        with pytest.raises(LeaseConflict):
            preferences.lease_query(db, bob, q2, _at(20), 60)
        assert queued(bob, 71) == [q1, q2, q3]
        # Claiming another one gives back what ann held.
        preferences.lease_query(db, ann, q1, _at(30), 60)
        released = preferences.get_query(db, q2)
        assert released is not None and released.status == "pending"
        preferences.answer(db, ann, q1, "left", _at(45))
        db.commit()
        assert queued(ann, 50) == [q2, q3]
        with pytest.raises(LeaseConflict):
            preferences.lease_query(db, bob, q1, _at(50), 60)  # answered
        # An undone answer does not count; the new one does.
        preferences.undo_last(db, ann, _at(60), 60)
        preferences.answer(db, ann, q1, "right", _at(90))
        preferences.lease_query(db, bob, q3, _at(100), 60)
        preferences.answer(db, bob, q3, "equal", _at(102))
        request = open_request(db, run, "no_progress", "", robot="left", now=_at(0)).id
        resolve_request(db, request, "human_reset", ann, now=_at(30))
        db.commit()
        answers = preferences.list_answers(db, run_id=run)
        waits = preferences.answer_waits_s(db, [a.id for a in answers])
        assert [waits[a.id] for a in answers] == [100.0, 90.0, 45.0]
        rates = help_rates(db, run, control_hz=10.0)
    assert rates.preference_waits.answered == 2
    assert (
        rates.preference_waits.mean_s,
        rates.preference_waits.p50_s,
        rates.preference_waits.max_s,
    ) == (95.0, 95.0, 100.0)
    assert (rates.request_waits.answered, rates.request_waits.max_s) == (1, 30.0)


def test_claiming_an_unknown_query_is_a_conflict(store: Store) -> None:
    with store.session() as db:
        ann = users.add_user(db, "ann", "x", "operator").id
        db.commit()
        with pytest.raises(LeaseConflict):
            preferences.lease_query(db, ann, 4242, T0, 60)
        assert help_rates(db, store.create_run("empty", {}), 10.0).preference_waits.mean_s is None
