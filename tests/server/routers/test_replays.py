"""Replay in sim through the service: real sim-recorded episodes replayed by the job board
in the MuJoCo sim, the stored replay served against its source."""

from __future__ import annotations

import threading

import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from robolearn.store import Store
from robolearn.store.models import AuditEntry, Episode, Run
from tests.playback.recording import record_sim_episode
from tests.server.conftest import Actor, record_episode


def drain(app: FastAPI) -> None:
    """Wait until every job queued so far has finished: the board runs jobs one at a time
    in order, so a no-op submitted behind them completes after them."""
    app.state.services.jobs.submit(lambda: None).result(timeout=300)


def counts(store: Store) -> tuple[int, int, int]:
    with store.session() as db:
        return tuple(db.scalar(select(func.count()).select_from(t))  # type: ignore[return-value]
                     for t in (Run, Episode, AuditEntry))


@pytest.fixture
def logged(store: Store) -> dict[str, int]:
    """A short sim-recorded episode with a joint log, and one recorded without."""
    return {
        "joints": record_sim_episode(store, "reach", seed=0, max_steps=8),
        "no_joints": record_sim_episode(store, "reach", seed=1, max_steps=5, joints=False),
    }


def test_operator_replays_an_episode_and_gets_the_comparison(
        app: FastAPI, users: dict[str, Actor], store: Store, logged: dict[str, int]) -> None:
    operator, source_id = users["operator"], logged["joints"]
    source = store.get_episode(source_id)

    r = operator.post(f"/api/episodes/{source_id}/replays", json={"mode": "joints"})
    assert r.status_code == 202, r.text
    job = r.json()["job"]
    drain(app)

    done = operator.get(f"/api/replays/jobs/{job}").json()
    assert done["status"] == "done", done
    replay_id = done["result"]["replay_episode_id"]
    assert done["result"]["source_episode_id"] == source_id
    assert done["result"]["tracking_error_max_m"] < 0.01

    listed = users["viewer"].get(f"/api/episodes/{source_id}/replays").json()
    assert listed["job"] is None
    (replay,) = listed["replays"]
    assert replay["id"] == replay_id and replay["mode"] == "joints"
    assert replay["source_episode_id"] == source_id and replay["status"] == "complete"

    c = users["viewer"].get(f"/api/replays/{replay_id}").json()
    assert c["source_episode_id"] == source_id and c["replay_episode_id"] == replay_id
    assert c["mode"] == "joints" and c["fps"] == source.fps
    assert len(c["tracking_error_m"]) == source.num_steps + 1
    assert max(c["tracking_error_m"]) < 0.01
    assert c["tracking_error_max_m"] == max(c["tracking_error_m"])
    assert c["tracking_error_mean_m"] == pytest.approx(
        sum(c["tracking_error_m"]) / len(c["tracking_error_m"]))
    assert c["source_outcome"] == source.outcome and c["replay_outcome"] in (
        "success", "failure")
    assert c["source_cameras"] == c["replay_cameras"] == ["front", "wrist"]
    # Both videos play through the episodes routes, side by side.
    for url in (*c["source_video_urls"].values(), *c["replay_video_urls"].values()):
        video = users["viewer"].get(url)
        assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
    assert c["replay_video_urls"]["front"] == f"/api/episodes/{replay_id}/video/front"

    with store.session() as db:
        (entry,) = db.scalars(select(AuditEntry).where(AuditEntry.action == "replay.start"))
        assert entry.target == f"episode:{source_id}"
        assert entry.detail == {"mode": "joints", "job": job}


def test_one_replay_per_episode_at_a_time(app: FastAPI, users: dict[str, Actor],
                                          store: Store, logged: dict[str, int]) -> None:
    operator, board = users["operator"], app.state.services.job_board
    release = threading.Event()
    # Hold the single job worker so the replays stay queued while the test looks.
    board.submit("hold", lambda _report: {"held": release.wait(timeout=120)})
    try:
        first = operator.post(f"/api/episodes/{logged['joints']}/replays", json={})
        assert first.status_code == 202, first.text
        again = operator.post(f"/api/episodes/{logged['joints']}/replays",
                              json={"mode": "actions"})
        assert again.status_code == 409
        assert first.json()["job"] in again.json()["detail"]
        listed = operator.get(f"/api/episodes/{logged['joints']}/replays").json()
        assert listed["replays"] == []
        assert listed["job"]["job"] == first.json()["job"]
        assert listed["job"]["status"] == "queued"
        # Another episode may queue meanwhile (actions mode needs no joint log).
        other = operator.post(f"/api/episodes/{logged['no_joints']}/replays",
                              json={"mode": "actions"})
        assert other.status_code == 202, other.text
    finally:
        release.set()
    drain(app)

    by_actions = operator.get(f"/api/replays/jobs/{other.json()['job']}").json()
    assert by_actions["status"] == "done", by_actions
    c = operator.get(f"/api/replays/{by_actions['result']['replay_episode_id']}").json()
    assert c["mode"] == "actions"
    # The same seed and the same commands: the sim retraces the recorded path.
    assert c["tracking_error_max_m"] < 0.01
    assert c["replay_outcome"] == c["source_outcome"]
    # Finished: nothing blocks another replay of the episode.
    assert operator.get(f"/api/episodes/{logged['joints']}/replays").json()["job"] is None
    assert board.active(f"replay:{logged['joints']}") is None


def test_unknown_episodes_replays_and_jobs_are_404(users: dict[str, Actor], store: Store,
                                                    app: FastAPI) -> None:
    operator = users["operator"]
    run_id = store.create_run("r", {})
    plain = record_episode(store, run_id)
    before = counts(store)
    assert operator.post("/api/episodes/999999/replays", json={}).status_code == 404
    assert operator.get("/api/episodes/999999/replays").status_code == 404
    assert operator.get("/api/replays/999999").status_code == 404
    not_replay = operator.get(f"/api/replays/{plain}")
    assert not_replay.status_code == 404 and "no such replay" in not_replay.json()["detail"]
    assert operator.get("/api/replays/jobs/nojob").status_code == 404
    # Jobs of other kinds are not replay jobs.
    other = app.state.services.job_board.submit("other", lambda _report: {})
    assert operator.get(f"/api/replays/jobs/{other.id}").status_code == 404
    assert counts(store) == before


def test_viewers_and_unreplayable_episodes_get_a_clear_4xx_and_store_nothing(
        app: FastAPI, users: dict[str, Actor], store: Store, logged: dict[str, int]) -> None:
    operator = users["operator"]
    run_id = store.create_run("r", {})
    not_sim = record_episode(store, run_id, task="fold_towel")
    aborted = store.begin_episode(run_id, "reach", ["front"])
    aborted.abort("operator stopped it")
    before = counts(store)

    viewer = users["viewer"].post(f"/api/episodes/{logged['joints']}/replays", json={})
    assert viewer.status_code == 403 and "needs an operator" in viewer.json()["detail"]

    no_joints = operator.post(f"/api/episodes/{logged['no_joints']}/replays",
                              json={"mode": "joints"})
    assert no_joints.status_code == 400
    assert "no joint positions" in no_joints.json()["detail"]
    assert "'actions'" in no_joints.json()["detail"]

    foreign = operator.post(f"/api/episodes/{not_sim}/replays", json={"mode": "actions"})
    assert foreign.status_code == 400 and "'fold_towel'" in foreign.json()["detail"]

    incomplete = operator.post(f"/api/episodes/{aborted.episode_id}/replays", json={})
    assert incomplete.status_code == 409 and "aborted" in incomplete.json()["detail"]

    bad_mode = operator.post(f"/api/episodes/{logged['joints']}/replays",
                             json={"mode": "teleport"})
    assert bad_mode.status_code == 422
    extra = operator.post(f"/api/episodes/{logged['joints']}/replays",
                          json={"mode": "joints", "speed": 2})
    assert extra.status_code == 422

    board = app.state.services.job_board
    assert all(board.active(f"replay:{e}") is None
               for e in (*logged.values(), not_sim, aborted.episode_id))
    assert counts(store) == before
