"""Reset-free runs end to end: the in-process actor against the real sim driver process, the
real store, and (for escalation) the real operator service app on the same store."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import zmq
from fastapi.testclient import TestClient

from robolearn.actor.loop import Actor
from robolearn.config import RunConfig, load_config
from robolearn.learn.learner import Learner
from robolearn.learn.observation import low_dim_of
from robolearn.processes import ProcessGroup
from robolearn.protocol import Requester
from robolearn.server.app import create_app
from robolearn.store import EpisodeData, Store
from robolearn.store.operator_requests import list_requests
from tests.server.conftest import SECRET, add_user, login

# A busy CI machine may delay the driver's frames: accept older ones than the default, so an
# episode is not aborted as stale (what these tests check is the reset-free logic).
LOADED_MACHINE = {"max_obs_age_ms": 1000.0}
RESET_FREE = {"enabled": True, "forward_task": "drawer_open", "backward_task": "drawer_close"}


@pytest.fixture
def drivers(write_config) -> Iterator[Callable[..., RunConfig]]:
    started: list[ProcessGroup] = []

    def start(**sections: object) -> RunConfig:
        cfg = load_config(write_config(**sections))
        group = ProcessGroup(cfg, log_level="warning")
        group.start_drivers()
        started.append(group)
        return cfg

    yield start
    for g in started:
        g.stop()


def driver_status(cfg: RunConfig) -> dict:
    ctx = zmq.Context()
    try:
        req = Requester(ctx, cfg.robot.command_address, "test",
                        security=cfg.socket_security(cfg.robot.command_address, "operator"))
        try:
            reply = req.request("arm_command", {"command": "status"}, timeout_s=2.0)
        finally:
            req.close()
    finally:
        ctx.term()
    return reply.body["data"]


def run_episodes(cfg: RunConfig, episodes: int) -> tuple[Actor, list[EpisodeData], list]:
    """An in-process actor runs `episodes` episodes against the started driver; returns the
    actor (its reset-free state is inspected), what it stored, and the operator requests
    left in the store."""
    ctx = zmq.Context()
    try:
        with Store.open(cfg.data_dir) as store:
            actor = Actor(cfg, ctx, store=store)
            try:
                summary = actor.run(threading.Event(), episodes=episodes)
            finally:
                actor.close()
            stored = [store.load_episode(e.episode_id) for e in summary.episodes]
            with store.session() as db:
                requests = list_requests(db, status=None)
    finally:
        ctx.term()
    return actor, stored, requests


def test_directions_alternate_on_success_without_any_reset(drivers, sock_dir: Path) -> None:
    # The learner section makes the actor send state transitions of the shared
    # direction-conditioned policy (nobody pulls them here); the learner built at the end
    # loads the stored episodes of both directions.
    cfg = drivers(robot={"task": "drawer_open"}, reset_free=RESET_FREE,
                  actor={"policy": {"kind": "expert"}, "observe_state": True,
                         "episode_steps": 60, **LOADED_MACHINE},
                  learner={"enabled": True, "observation": "state",
                           "transitions_address": f"ipc://{sock_dir}/transitions",
                           "weights_address": f"ipc://{sock_dir}/weights",
                           "cqn": {"frame_stack": 1}})
    actor, stored, _ = run_episodes(cfg, 4)
    summary = actor.summary
    records = [d.record for d in stored]
    first, second = stored[0], stored[1]
    assert [e.success for e in summary.episodes] == [True] * 4, [
        (e.direction, e.end_reason, e.steps) for e in summary.episodes]
    assert [(r.direction, r.task) for r in records] == [
        ("forward", "drawer_open"), ("backward", "drawer_close")] * 2
    assert all(r.end_reason == "success" for r in records)
    # One reset sets the scene up before the first episode; none between episodes.
    status = driver_status(cfg)
    assert (status["resets"], status["task_switches"]) == (1, 3)
    # The world carried over: the cabinet was not re-placed and episode 2 (close) starts with
    # the drawer still open, where episode 1 left it (state: cabinet xyz, handle xyz).
    end_1, start_2 = first.arrays["state"][-1], second.arrays["state"][0]
    assert (end_1[:3] == start_2[:3]).all()
    slide = start_2[0] - 0.05 - start_2[3]  # face x - handle offset - handle x
    assert slide > 0.12, (end_1, start_2)
    # Between episodes the arm went home with the gripper open (objects stayed, as above):
    # episode 2 starts at episode 1's start pose although episode 1 ended far from it.
    home = first.arrays["joint_pos"][0]
    assert np.abs(first.arrays["joint_pos"][-1] - home).max() > 0.1
    assert np.abs(second.arrays["joint_pos"][0] - home).max() < 0.03
    # The policy's state carries the direction one-hot (forward [1, 0], backward [0, 1]).
    assert first.arrays["state"][0, -2:].tolist() == [1.0, 0.0]
    assert second.arrays["state"][0, -2:].tolist() == [0.0, 1.0]
    assert actor.reset_free is not None
    stats = actor.reset_free.stats.summary()
    assert stats["forward_success_rate"] == 1.0 and stats["backward_success_rate"] == 1.0
    ctx = zmq.Context()
    try:
        learner = Learner(cfg, ctx)
        try:
            learner.start()
            # proprio + drawer state + direction + the drawer's and handle's offsets from the hand
            assert learner.spec.low_dim == 8 + 6 + 2 + 6
            assert learner.online.num_episodes == 4  # drawer_open and drawer_close episodes
            # The first stored episode became the agent's vectors (direction, then offsets).
            expected = low_dim_of(learner.spec, first.arrays["proprio"], first.arrays["state"])
            oldest = learner.online.episode(learner.online.episode_keys[0])
            np.testing.assert_array_equal(oldest.low_dim, expected)
            hand_to_handle = first.arrays["state"][:, 3:6] - first.arrays["proprio"][:, :3]
            np.testing.assert_allclose(expected[:, -3:], hand_to_handle, atol=1e-6)
        finally:
            learner.close()
    finally:
        ctx.term()


def _wait(what: str, check: Callable[[], object], timeout_s: float = 60.0) -> object:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_stuck_robot_asks_an_operator_and_resumes_when_resolved(drivers) -> None:
    # A policy that holds still never moves the drawer: no progress after 6 steps.
    cfg = drivers(robot={"task": "drawer_open"},
                  reset_free={**RESET_FREE, "stuck_steps": 6, "request_poll_s": 0.05},
                  actor={"policy": {"kind": "zero"}, "episode_steps": 30, **LOADED_MACHINE},
                  server={"development": True})
    ctx = zmq.Context()
    stop = threading.Event()
    errors: list[BaseException] = []
    app = create_app(cfg, token_secret=SECRET)
    with TestClient(app), Store.open(cfg.data_dir) as store:
        add_user(app.state.services.store, "op", "operator")
        op = login(app, "op")
        actor = Actor(cfg, ctx, store=store)

        def run() -> None:
            try:
                actor.run(stop)
            except BaseException as e:  # reported by the test thread
                errors.append(e)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        try:
            def open_requests() -> list[dict]:
                r = op.get("/api/operator-requests")
                assert r.status_code == 200, r.text
                return r.json()

            (request,) = _wait("an operator request", open_requests)
            assert request["kind"] == "no_progress" and "forward" in request["reason"]
            # Paused: no episode starts while the request is open.
            episodes_while_open = len(actor.summary.episodes)
            time.sleep(0.5)
            assert len(actor.summary.episodes) == episodes_while_open == 1
            assert actor.summary.episodes[0].end_reason == "no_progress"

            r = op.post(f"/api/operator-requests/{request['id']}/resolve",
                        json={"resolution": "human_reset"})
            assert r.status_code == 200, r.text
            # Training resumes: a new episode runs (and, still holding still, gets stuck
            # again and raises a second request).
            second = _wait("a second request", lambda: [
                x for x in open_requests() if x["id"] != request["id"]])
            assert len(actor.summary.episodes) >= 2
            assert second[0]["kind"] == "no_progress"
        finally:
            stop.set()
            thread.join(timeout=20)
            actor.close()
            ctx.term()
    assert not thread.is_alive() and not errors, errors
    assert actor.reset_free is not None and actor.reset_free.stats.human_resets == 1
    # The sim emulates the person's reset with the driver's reset: one at the start, one for
    # the human reset, none between ordinary episodes.
    assert driver_status(cfg)["resets"] == 2


def test_scripted_reset_instead_of_an_operator(drivers) -> None:
    cfg = drivers(robot={"task": "drawer_close"},
                  reset_free={**RESET_FREE, "stuck_steps": 5, "on_stuck": "scripted_reset"},
                  actor={"policy": {"kind": "zero"}, "episode_steps": 20, **LOADED_MACHINE})
    actor, stored, requests = run_episodes(cfg, 3)
    assert requests == []
    summary = actor.summary
    records = [d.record for d in stored]
    # The run starts backward (robot.task), gets stuck every episode and resets each time.
    assert [(r.direction, r.end_reason, r.outcome) for r in records] == [
        ("backward", "no_progress", "failure")] * 3
    assert [e.steps for e in summary.episodes] == [5, 5, 5]
    assert actor.reset_free is not None and actor.reset_free.stats.scripted_resets == 3
    assert driver_status(cfg)["resets"] == 3  # the initial one + one before each later episode


def test_a_direction_already_done_is_skipped_not_counted(drivers) -> None:
    # Opening never succeeds (the policy holds still), so after each failure the retry cap
    # (0) switches to closing, which is already done: it is skipped, not run as a success.
    cfg = drivers(robot={"task": "drawer_open"},
                  reset_free={**RESET_FREE, "max_retries": 0, "stuck_steps": 1000},
                  actor={"policy": {"kind": "zero"}, "episode_steps": 5, **LOADED_MACHINE})
    actor, _, _ = run_episodes(cfg, 3)
    summary = actor.summary
    assert [(e.direction, e.success) for e in summary.episodes] == [("forward", False)] * 3
    assert actor.reset_free is not None
    assert actor.reset_free.scheduler.failures_in_row == 3
    status = driver_status(cfg)
    assert (status["resets"], status["task_switches"]) == (1, 4)  # close, open; close, open
