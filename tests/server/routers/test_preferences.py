"""Preference queries under leases: no pair is handed to two operators at once, an expired
lease returns the pair to the pool, answers can be undone."""

from __future__ import annotations

import datetime as dt
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi import FastAPI
from sqlalchemy import select

from robolearn.server import preferences
from robolearn.store import Store
from robolearn.store.models import PreferenceAnswer, PreferenceQuery
from tests.server.conftest import (
    PASSWORD,
    Actor,
    FakeClock,
    add_query,
    add_user,
    login,
    record_episode,
)


@pytest.fixture
def queries(store: Store) -> list[int]:
    run = store.create_run("r", {})
    a = record_episode(store, run, steps=4)
    b = record_episode(store, run, steps=4, outcome="failure")
    return [add_query(store, run, a, b) for _ in range(12)]


def test_nothing_pending_says_so(users: dict[str, Actor]) -> None:
    r = users["operator"].post("/api/preferences/next")
    assert r.status_code == 200
    body = r.json()
    assert body["query"] is None and "no pending preference queries" in body["detail"]


def test_two_operators_concurrently_never_share_a_pair(app: FastAPI, users: dict[str, Actor],
                                                       store: Store, queries: list[int]) -> None:
    add_user(store, "op2", "operator")
    ops = [users["operator"], login(app, "op2", PASSWORD)]
    barrier = threading.Barrier(2)

    def work(op: Actor) -> list[int]:
        got = []
        barrier.wait()
        for _ in range(len(queries)):
            r = op.post("/api/preferences/next")
            assert r.status_code == 200, r.text
            q = r.json()["query"]
            if q is None:
                break
            got.append(q["id"])
            assert op.post(f"/api/preferences/{q['id']}/answer",
                           json={"answer": "left"}).status_code == 201
        return got

    with ThreadPoolExecutor(2) as pool:
        first, second = pool.map(work, ops)
    assert not set(first) & set(second)
    assert sorted(first + second) == queries
    with store.session() as db:
        answers = list(db.scalars(select(PreferenceAnswer.query_id)))
    assert sorted(answers) == queries  # exactly one answer per query


def test_racing_leases_in_the_database(store: Store, queries: list[int]) -> None:
    """Eight workers with their own sessions grab leases at once: each query goes to one."""
    now = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    start = threading.Barrier(8)

    def grab(user_id: int) -> list[int]:
        got = []
        start.wait()
        with store.session() as db:
            while (q := preferences.lease_next(db, user_id, now, 60.0)) is not None:
                got.append(q.id)
                preferences.answer(db, user_id, q.id, "equal", now)
                db.commit()
        return got

    user_ids = [add_user(store, f"u{i}", "operator") for i in range(8)]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(grab, user_ids))
    flat = [q for r in results for q in r]
    assert sorted(flat) == queries


def test_lease_expiry_returns_the_pair(app: FastAPI, users: dict[str, Actor], store: Store,
                                      clock: FakeClock, queries: list[int]) -> None:
    add_user(store, "op2", "operator")
    first, second = users["operator"], login(app, "op2", PASSWORD)
    lease_s = app.state.services.config.server.preference_lease_s
    q = first.post("/api/preferences/next").json()["query"]
    # Asking again (a page reload) returns the same lease, not a second pair.
    assert first.post("/api/preferences/next").json()["query"]["id"] == q["id"]
    other = second.post("/api/preferences/next").json()["query"]
    assert other["id"] != q["id"]
    second.post(f"/api/preferences/{other['id']}/release")
    clock.advance(lease_s + 1)
    taken = [second.post("/api/preferences/next").json()["query"]["id"]]
    assert taken == [q["id"]]  # the expired lease went back to the pool, oldest first
    late = first.post(f"/api/preferences/{q['id']}/answer", json={"answer": "right"})
    assert late.status_code == 409 and "not leased to you" in late.json()["detail"]
    assert second.post(f"/api/preferences/{q['id']}/answer",
                       json={"answer": "right"}).status_code == 201


def test_answer_undo_and_bad_answers(users: dict[str, Actor], store: Store,
                                     queries: list[int]) -> None:
    op = users["operator"]
    q = op.post("/api/preferences/next").json()["query"]
    assert q["left"]["video_urls"]["front"].startswith(f"/api/episodes/{q['left']['episode_id']}")
    bad = op.post(f"/api/preferences/{q['id']}/answer", json={"answer": "both"})
    assert bad.status_code == 422
    assert op.post(f"/api/preferences/{q['id']}/answer",
                   json={"answer": "skip"}).status_code == 201
    undone = op.post("/api/preferences/undo")
    assert undone.status_code == 200 and undone.json()["id"] == q["id"]
    assert op.post("/api/preferences/next").json()["query"]["id"] == q["id"]
    assert op.post(f"/api/preferences/{q['id']}/answer",
                   json={"answer": "left"}).status_code == 201
    with store.session() as db:
        rows = list(db.scalars(select(PreferenceAnswer).order_by(PreferenceAnswer.id)))
        status = db.get(PreferenceQuery, q["id"]).status
    assert [(r.answer, r.undone) for r in rows] == [("skip", True), ("left", False)]
    assert status == "answered"
    assert users["viewer"].post("/api/preferences/next").status_code == 403
