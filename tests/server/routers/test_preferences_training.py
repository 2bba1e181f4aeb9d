"""Preferences while training, through the running service: its background loop makes
queries from the active training run (never from a newer replay run) without any request
asking, retrains after N answers given through the API, and the status endpoint shows the
versions with their held-out agreement."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from robolearn.config import RunConfig, parse_config
from robolearn.store import Store
from robolearn.store.models import PreferenceQuery
from tests.conftest import run_config_dict
from tests.server.conftest import Actor, record_episode

PREFERENCE = {"inputs": ["proprio", "action"], "segment_steps": 3, "ensemble": 2,
              "hidden": 8, "steps": 20, "queries_per_episode": 2, "max_pending": 5,
              "retrain_every": 3, "holdout_fraction": 0.5, "loop_interval_s": 0.2}


@pytest.fixture
def config(sock_dir: Path, tmp_path: Path) -> RunConfig:
    raw = run_config_dict(sock_dir, tmp_path / "data", rewards={
        "preference": PREFERENCE, "shaping": [{"source": "preference", "weight": 0.1}]})
    raw["server"] = {"development": True}
    return parse_config(raw)


def wait_for(predicate: Callable[[], Any], what: str, timeout_s: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.1)
    return value


def test_queries_and_retraining_happen_while_the_run_trains(
        users: dict[str, Actor], store: Store, config: RunConfig) -> None:
    op, viewer = users["operator"], users["viewer"]
    training = store.create_run("train", config.model_dump(mode="json"))
    episodes = {record_episode(store, training, steps=6) for _ in range(3)}
    replay = store.create_run("replay of episode 1", {"replay": {"source_episode_id": 1}})
    replayed = record_episode(store, replay, steps=6)

    # Nobody asks: the service's loop tops the run up to 2 per episode, at most 5 waiting.
    status = wait_for(lambda: (s := viewer.get("/api/preferences/status").json())["asked"] >= 5
                      and s, "the loop's first queries")
    assert status["run_id"] == training and status["collecting"] is True
    assert status["episodes"] == 3 and status["pending"] == 5 and status["versions"] == []
    assert status["next_retrain_in"] == 3 and "training episodes" in status["detail"]
    with store.session() as db:
        rows = list(db.scalars(select(PreferenceQuery)))
    assert {r.run_id for r in rows} == {training}
    assert {r.episode_a_id for r in rows} | {r.episode_b_id for r in rows} <= episodes
    assert replayed not in {r.episode_a_id for r in rows} | {r.episode_b_id for r in rows}

    # Three answers from the operator: version 1, trained off the request thread.
    for value in ("left", "right", "left"):
        query = op.post("/api/preferences/next").json()["query"]
        r = op.post(f"/api/preferences/{query['id']}/answer", json={"answer": value})
        assert r.status_code == 201, r.text
    status = wait_for(lambda: (s := viewer.get("/api/preferences/status").json())["versions"]
                      and s, "preference model version 1")
    (v1,) = status["versions"]
    assert v1["version"] == 1 and v1["n_labels"] + v1["n_holdout"] == 3
    assert status["answers"] == 3 and status["next_retrain_in"] == 3
    # The answers freed room: the loop made the sixth query the rate allows (3 x 2).
    wait_for(lambda: viewer.get("/api/preferences/status").json()["asked"] == 6,
             "the loop topping up after answers")

    r = viewer.get("/api/preferences/status", params={"run_id": replay})
    assert r.status_code == 400 and "is a replay run" in r.json()["detail"]


def test_status_without_a_training_run_says_so(users: dict[str, Actor], store: Store) -> None:
    body = users["viewer"].get("/api/preferences/status").json()
    assert body["run_id"] is None and body["collecting"] is False
    assert "no training run" in body["detail"]
    store.create_run("stopped", {"name": "x"})
    nxt = users["operator"].post("/api/preferences/next").json()
    assert nxt["query"] is None and "no new ones are made now" in nxt["detail"]
