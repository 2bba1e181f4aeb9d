"""Preference leases and answers through their query module, on a real database."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from robolearn.store import Store, preferences, users
from robolearn.store.models import PreferenceQuery
from robolearn.store.preferences import LeaseConflict

from .conftest import record

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def _queries(store: Store, run_id: int, n: int) -> list[int]:
    episode_id, _ = record(store.begin_episode(run_id, "pick", ["cam"]), 3,
                           np.random.default_rng(0), size=(16, 16))
    with store.session() as db:
        rows = [PreferenceQuery(run_id=run_id, episode_a_id=episode_id, episode_a_start=0,
                                episode_a_end=1, episode_b_id=episode_id, episode_b_start=1,
                                episode_b_end=2) for _ in range(n)]
        db.add_all(rows)
        db.commit()
        return [r.id for r in rows]


def test_leases_answers_undo_release(any_store: Store) -> None:
    store = any_store
    run_a, run_b = store.create_run("a", {}), store.create_run("b", {})
    q1, q2 = _queries(store, run_a, 2)
    (q3,) = _queries(store, run_b, 1)
    with store.session() as db:
        ann = users.add_user(db, "ann", "x", "operator").id
        bob = users.add_user(db, "bob", "x", "operator").id
        db.commit()
        assert preferences.count_free(db, NOW, None) == 3
        assert preferences.lease_next(db, ann, NOW, 60, run_a).id == q1
        # The same user gets the same query back; another user the next free one.
        assert preferences.lease_next(db, ann, NOW, 60, run_a).id == q1
        assert preferences.lease_next(db, bob, NOW, 60, run_a).id == q2
        assert preferences.lease_next(db, bob, NOW, 60, None).id == q2
        assert preferences.count_free(db, NOW, run_a) == 0
        # An expired lease is free again for anyone.
        later = NOW + dt.timedelta(seconds=61)
        assert preferences.count_free(db, later, run_a) == 2
        with pytest.raises(LeaseConflict):
            preferences.answer(db, bob, q1, "left", NOW)  # leased to ann
        answer = preferences.answer(db, ann, q1, "left", NOW)
        db.commit()
        assert preferences.get_query(db, q1).status == "answered"
        preferences.release(db, bob, q2)
        db.commit()
        assert preferences.get_query(db, q2).status == "pending"
        with pytest.raises(LeaseConflict):
            preferences.release(db, bob, q2)
        undone = preferences.undo_last(db, ann, NOW, 60)
        db.commit()
        assert undone.id == answer.id and undone.undone
        assert preferences.get_query(db, q1).leased_to == ann
        assert preferences.undo_last(db, bob, NOW, 60) is None
        preferences.answer(db, ann, q1, "right", NOW)
        assert preferences.lease_next(db, bob, NOW, 60, run_b).id == q3
        preferences.answer(db, bob, q3, "equal", NOW)
        db.commit()
        answers = preferences.list_answers(db)
        assert [(a.query_id, a.answer, a.undone) for a in answers] == [
            (q3, "equal", False), (q1, "right", False), (q1, "left", True)]
        assert [a.answer for a in preferences.list_answers(db, run_id=run_a, offset=1)] == [
            "left"]
        assert preferences.lease_next(db, ann, NOW, 60, run_b) is None


def test_scripted_answers_and_counts(any_store: Store) -> None:
    store = any_store
    run_id = store.create_run("a", {})
    episode_id, _ = record(store.begin_episode(run_id, "pick", ["cam"]), 3,
                           np.random.default_rng(0), size=(16, 16))
    with store.session() as db:
        rows = preferences.add_queries(db, run_id, [((episode_id, 0, 1), (episode_id, 1, 2)),
                                                    ((episode_id, 0, 0), (episode_id, 2, 3)),
                                                    ((episode_id, 1, 1), (episode_id, 3, 3))])
        db.commit()
        assert [(r.episode_a_end, r.episode_b_start, r.status) for r in rows] == [
            (1, 1, "pending"), (0, 2, "pending"), (1, 3, "pending")]
        first, second = preferences.pending_queries(db, run_id, 2)
        assert [first.id, second.id] == [rows[0].id, rows[1].id]
        preferences.record_answer(db, first, "left")
        preferences.record_answer(db, second, "skip")
        db.commit()
        assert [q.id for q in preferences.pending_queries(db, run_id, 5)] == [rows[2].id]
        assert preferences.count_queries(db, run_id) == 3
        assert preferences.count_queries(db, run_id, ("pending", "leased")) == 1
        # Skips are answers, but they do not count for training.
        assert preferences.count_answers(db, run_id) == 1
        assert [(q.id, a) for q, a in preferences.live_answers(db, run_id)] == [
            (rows[0].id, "left"), (rows[1].id, "skip")]
