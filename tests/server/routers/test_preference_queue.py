"""Preference queries in the operator's queue, through the app and its test client: the
queue and the fleet list pending queries beside operator requests, an operator claims one by
id (200, 404, 409), answering it takes it out of the queue, and how long it waited is
reported with the answers and the run's help rates."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from fastapi import FastAPI
from sqlalchemy import select, update

from robolearn.config import RunConfig, parse_config
from robolearn.store import Store
from robolearn.store.models import AuditEntry, PreferenceQuery
from robolearn.store.operator_requests import open_request
from tests.conftest import run_config_dict
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
def config(sock_dir: Path, tmp_path: Path) -> RunConfig:
    """A fleet of two robots (no processes: the fleet page lists them without telemetry)."""
    raw = run_config_dict(sock_dir, tmp_path / "data")
    raw["server"] = {"development": True}
    raw["fleet"] = {"robots": [{"name": "left"}, {"name": "right"}]}
    return parse_config(raw)


def _at(clock: FakeClock, seconds_ago: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(clock() - seconds_ago, dt.UTC)


@pytest.fixture
def run(store: Store) -> int:
    return store.create_run("fleet", {})


def _query(store: Store, run: int, a: int, b: int, created: dt.datetime) -> int:
    qid = add_query(store, run, a, b)
    with store.session() as db:
        db.execute(
            update(PreferenceQuery).where(PreferenceQuery.id == qid).values(created_at=created)
        )
        db.commit()
    return qid


def test_the_queue_lists_pending_queries_after_requests(
    users: dict[str, Actor], store: Store, clock: FakeClock, run: int
) -> None:
    left = record_episode(store, run, robot="left")
    right = record_episode(store, run, robot="right", steps=5)
    mixed = _query(store, run, left, right, _at(clock, 300))
    own = _query(store, run, left, left, _at(clock, 200))
    with store.session() as db:
        # Same id sequence start as the queries: the key keeps them apart.
        stuck = open_request(
            db, run, "no_progress", "drawer stuck", robot="right", now=_at(clock, 10)
        ).id
        db.commit()
    body = users["viewer"].get("/api/operator-requests/queue").json()
    assert body["run_id"] == run
    items = body["requests"]
    assert [(i["source"], i["id"]) for i in items] == [
        ("operator_request", stuck),
        ("preference_query", mixed),
        ("preference_query", own),
    ]
    assert len({i["key"] for i in items}) == 3
    assert items[0]["ui_link"] is None and items[0]["robots"] == ["right"]
    pref = items[1]
    assert pref == pref | {
        "key": f"preference_query:{mixed}",
        "kind": "preference",
        "priority": 2,
        "status": "open",
        "robot": None,
        "robots": ["left", "right"],
        "ui_link": f"#/preferences?query={mixed}",
        "resolution": None,
        "user_id": None,
        "waited_s": 300.0,
    }
    assert f"episode {left} or episode {right}" in pref["reason"]
    assert (items[2]["robot"], items[2]["waited_s"]) == ("left", 200.0)

    # The fleet: the whole queue and its count, and each card its own items.
    fleet = users["viewer"].get("/api/fleet").json()
    assert fleet["open_requests"] == 3
    assert [i["key"] for i in fleet["queue"]] == [i["key"] for i in items]
    cards = {r["name"]: [i["key"] for i in r["requests"]] for r in fleet["robots"]}
    # The mixed pair is on neither card, only in the whole queue.
    assert cards == {"left": [f"preference_query:{own}"], "right": [f"operator_request:{stuck}"]}


def test_claim_answer_and_the_wait(
    app: FastAPI, users: dict[str, Actor], store: Store, clock: FakeClock, run: int
) -> None:
    episode = record_episode(store, run)
    first = _query(store, run, episode, episode, _at(clock, 90))
    second = _query(store, run, episode, episode, _at(clock, 60))
    op = users["operator"]
    add_user(store, "op2", "operator")
    other = login(app, "op2", PASSWORD)

    assert users["viewer"].post(f"/api/preferences/{second}/claim").status_code == 403
    assert op.post("/api/preferences/999/claim").status_code == 404
    r = op.post(f"/api/preferences/{second}/claim")
    assert r.status_code == 200, r.text
    assert r.json()["id"] == second and r.json()["left"]["episode_id"] == episode
    assert op.post(f"/api/preferences/{second}/claim").status_code == 200  # renewed
    r = other.post(f"/api/preferences/{second}/claim")
    assert r.status_code == 409 and "another operator" in r.json()["detail"]

    # Held by op: gone from op2's queue, still in op's (op may have left it open).
    def keys(actor: Actor) -> list[int]:
        return [i["id"] for i in actor.get("/api/operator-requests/queue").json()["requests"]]

    assert keys(other) == [first]
    assert keys(op) == [first, second]
    # /next gives op the claimed one, not a second pair.
    assert op.post("/api/preferences/next").json()["query"]["id"] == second

    clock.advance(30)
    r = op.post(f"/api/preferences/{second}/answer", json={"answer": "left"})
    assert r.status_code == 201 and r.json()["waited_s"] == 90.0
    assert keys(op) == [first]
    r = other.post(f"/api/preferences/{second}/claim")
    assert r.status_code == 409 and "already answered" in r.json()["detail"]
    answers = op.get("/api/preferences/answers", params={"run_id": run}).json()
    assert [(a["query_id"], a["waited_s"]) for a in answers] == [(second, 90.0)]

    # A lease that expired frees the query for anyone.
    assert other.post(f"/api/preferences/{first}/claim").status_code == 200
    assert op.post(f"/api/preferences/{first}/claim").status_code == 409
    clock.advance(app.state.services.config.server.preference_lease_s + 1)
    assert op.post(f"/api/preferences/{first}/claim").status_code == 200

    rates = op.get(f"/api/operator-requests/rates/{run}").json()
    assert rates["preference_waits"] == {
        "answered": 1,
        "mean_s": 90.0,
        "p50_s": 90.0,
        "max_s": 90.0,
    }
    assert rates["request_waits"]["answered"] == 0
    with store.session() as db:
        actions = list(
            db.scalars(select(AuditEntry.action).where(AuditEntry.action == "preference.claim"))
        )
    assert len(actions) == 4
