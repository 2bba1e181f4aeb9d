"""Learner samples and the per-episode learning curve through the metrics API, on a real
SQLite store written by the same functions the learner uses."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select, update

from robolearn.errors import StoreError
from robolearn.store import Store
from robolearn.store.learner_metrics import LearnerSample, add_learner_metrics
from robolearn.store.models import Episode, LearnerMetrics
from tests.server.conftest import Actor, record_episode


def sample(update_step: int, **changes: object) -> LearnerSample:
    values: dict = {"session": "s1", "update_step": update_step, "env_steps": 10 * update_step,
                    "episodes": update_step // 5, "updates_per_s": 2.5,
                    "online_transitions": 8 * update_step, "demo_transitions": 40,
                    "online_episodes": update_step // 5, "demo_episodes": 2,
                    "scalars": {"critic_loss": 1.0 / (1 + update_step), "loss": 0.5}}
    return LearnerSample(**{**values, **changes})


def write(store: Store, run_id: int | None, *samples: LearnerSample,
          at: dt.datetime | None = None) -> list[int]:
    with store.session() as db:
        ids = [add_learner_metrics(db, run_id, s).id for s in samples]
        if at is not None:
            db.execute(update(LearnerMetrics).where(LearnerMetrics.id.in_(ids))
                       .values(created_at=at))
        db.commit()
    return ids


def count_rows(store: Store) -> int:
    with store.session() as db:
        return db.scalar(select(func.count()).select_from(LearnerMetrics))


@pytest.mark.parametrize("bad", [
    {"episodes": -1},
    {"env_steps": 1.5},
    {"updates_per_s": float("nan")},
    {"updates_per_s": -1.0},
    {"scalars": {"critic_loss": float("inf")}},
    {"scalars": {"": 1.0}},
    {"session": ""},
])
def test_bad_samples_are_refused_and_write_nothing(store: Store, bad: dict) -> None:
    run = store.create_run("r", {})
    with pytest.raises(StoreError):
        write(store, run, sample(1, **bad))
    assert count_rows(store) == 0


def test_unknown_run_is_refused(store: Store) -> None:
    with pytest.raises(StoreError, match="run 99 does not exist"):
        write(store, 99, sample(1))
    assert count_rows(store) == 0


def test_viewer_reads_learner_samples_in_pages(users: dict[str, Actor], store: Store) -> None:
    run = store.create_run("r", {})
    other = store.create_run("other", {})
    ids = write(store, run, *(sample(k) for k in range(1, 8)))
    write(store, other, sample(100))
    write(store, None, sample(200))  # a learner that did not know its run yet

    r = users["viewer"].get(f"/api/metrics/runs/{run}/learner", params={"limit": 3})
    assert r.status_code == 200, r.text
    page = r.json()
    assert [p["update_step"] for p in page["items"]] == [1, 2, 3]
    assert page["next_after_id"] == ids[2]
    first = page["items"][0]
    assert first["online_transitions"] == 8 and first["demo_transitions"] == 40
    assert first["updates_per_s"] == 2.5
    assert first["scalars"] == {"critic_loss": 0.5, "loss": 0.5}

    steps = [p["update_step"] for p in page["items"]]
    while page["next_after_id"] is not None:
        page = users["viewer"].get(f"/api/metrics/runs/{run}/learner",
                                   params={"limit": 3, "after_id": page["next_after_id"]}).json()
        steps += [p["update_step"] for p in page["items"]]
    assert steps == list(range(1, 8))  # every sample of this run, none of the others


def test_time_range(users: dict[str, Actor], store: Store) -> None:
    run = store.create_run("r", {})
    t0 = dt.datetime(2026, 5, 1, 12, 0, tzinfo=dt.UTC)
    for k in range(4):
        write(store, run, sample(k + 1), at=t0 + dt.timedelta(minutes=k))
    url = f"/api/metrics/runs/{run}/learner"
    r = users["viewer"].get(url, params={"since": "2026-05-01T12:01:00Z",
                                         "until": "2026-05-01T12:02:00Z"})
    assert [p["update_step"] for p in r.json()["items"]] == [2, 3]
    # A naive bound is UTC, like every time the service returns; an offset is honoured.
    r = users["viewer"].get(url, params={"since": "2026-05-01T12:02:00"})
    assert [p["update_step"] for p in r.json()["items"]] == [3, 4]
    r = users["viewer"].get(url, params={"until": "2026-05-01T14:00:30+02:00"})
    assert [p["update_step"] for p in r.json()["items"]] == [1]


def test_bad_queries_are_clear_errors(users: dict[str, Actor], store: Store) -> None:
    run = store.create_run("r", {})
    url = f"/api/metrics/runs/{run}/learner"
    viewer = users["viewer"]
    r = viewer.get(url, params={"since": "2026-05-01T13:00:00Z", "until": "2026-05-01T12:00:00Z"})
    assert r.status_code == 422 and "is after until" in r.json()["detail"]
    assert viewer.get(url, params={"limit": 0}).status_code == 422
    assert viewer.get(url, params={"after_id": -1}).status_code == 422
    assert viewer.get(url, params={"since": "yesterday"}).status_code == 422
    assert viewer.get("/api/metrics/runs/9999/learner").status_code == 404
    assert viewer.get("/api/metrics/runs/9999/episodes").status_code == 404


def test_metrics_need_a_login(users: dict[str, Actor], store: Store) -> None:
    from fastapi.testclient import TestClient

    run = store.create_run("r", {})
    anonymous = TestClient(users["viewer"].client.app)
    assert anonymous.get(f"/api/metrics/runs/{run}/learner").status_code == 401
    assert anonymous.get(f"/api/metrics/runs/{run}/episodes").status_code == 401


def test_episode_curve_has_returns_and_training_env_steps(users: dict[str, Actor],
                                                          store: Store) -> None:
    run = store.create_run("r", {})
    demo = record_episode(store, run, steps=3, outcome="success", is_demo=True)
    first = record_episode(store, run, steps=4, outcome="failure")
    evaluation = record_episode(store, run, steps=5, outcome="success")
    second = record_episode(store, run, steps=6, outcome="success")
    with store.session() as db:
        db.execute(update(Episode).where(Episode.id == evaluation).values(policy="cqn-eval"))
        db.commit()
    with store.begin_episode(run, "reach", ["front", "wrist"]) as writer:
        recording = writer.episode_id  # not complete: not on the curve
        r = users["viewer"].get(f"/api/metrics/runs/{run}/episodes")
        writer.abort("test")
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert [i["episode_id"] for i in items] == [demo, first, evaluation, second]
    assert recording not in [i["episode_id"] for i in items]
    # record_episode writes reward t at step t: the return is 0 + 1 + ... + (steps - 1).
    assert [i["episode_return"] for i in items] == [3.0, 6.0, 10.0, 15.0]
    # Demos and evaluations are not training experience: env steps count 4, then 4 + 6.
    assert [i["env_steps"] for i in items] == [0, 4, 4, 10]
    assert [i["is_eval"] for i in items] == [False, False, True, False]
    assert [i["success"] for i in items] == [True, False, True, True]
    assert r.json()["next_after_id"] is None

    # Pages join into the same curve.
    page = users["viewer"].get(f"/api/metrics/runs/{run}/episodes",
                               params={"limit": 2}).json()
    assert page["next_after_id"] == first
    rest = users["viewer"].get(f"/api/metrics/runs/{run}/episodes",
                               params={"after_id": first}).json()
    assert [i["env_steps"] for i in page["items"] + rest["items"]] == [0, 4, 4, 10]


def test_a_bound_out_of_range_in_utc_is_a_422(users: dict[str, Actor], store: Store) -> None:
    run = store.create_run("r", {})
    r = users["viewer"].get(f"/api/metrics/runs/{run}/learner",
                            params={"since": "0001-01-01T00:00:00+01:00"})
    assert r.status_code == 422 and "out of range" in r.json()["detail"]


def test_a_fleets_run_is_summarised_per_robot(users: dict[str, Actor], store: Store) -> None:
    run = store.create_run("fleet", {})
    ids = [record_episode(store, run, robot="left", outcome="success", intervention=True),
           record_episode(store, run, robot="left", outcome="failure", steps=4),
           record_episode(store, run, robot="right", outcome="failure", steps=5),
           record_episode(store, run, robot="right", outcome="success", is_demo=True)]
    # Each episode took 36 s of the robot's time (recorded times, as the store keeps them).
    with store.session() as db:
        for episode_id in ids:
            row = db.get(Episode, episode_id)
            assert row is not None
            row.finished_at = row.created_at + dt.timedelta(seconds=36)
        db.commit()
    viewer = users["viewer"]
    robots = viewer.get(f"/api/metrics/runs/{run}").json()["robots"]
    assert robots == [
        {"robot": "left", "episodes": 2, "successes": 1, "success_rate": 0.5,
         "intervention_episodes": 1, "env_steps": 10, "robot_hours": 0.02,
         "interventions_per_robot_hour": 50.0},
        {"robot": "right", "episodes": 1, "successes": 0, "success_rate": 0.0,  # no demos
         "intervention_episodes": 0, "env_steps": 5, "robot_hours": 0.01,
         "interventions_per_robot_hour": 0.0}]
    page = viewer.get("/api/episodes", params={"run_id": run, "robot": "right"}).json()
    assert sorted(e["id"] for e in page["items"]) == ids[2:]
    assert {e["robot"] for e in page["items"]} == {"right"}
