"""The actor in this process against the sim driver in its own process."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import zmq

from robolearn.actor.loop import Actor, ActorSummary
from robolearn.cli.processes import ProcessGroup
from robolearn.config import load_config
from robolearn.store import EpisodeData, Store


class NaNPolicy:
    name = "nan"

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        return np.array([np.nan, 1.0, np.inf, 0.0], dtype=np.float32)

    def reset(self) -> None:
        pass

    def between_steps(self) -> None:
        pass


@pytest.fixture
def driver(write_config):
    def start(**sections: object) -> tuple[ProcessGroup, Path]:
        path = write_config(**sections)
        group = ProcessGroup(load_config(path), log_level="warning")
        group.start_drivers()
        started.append(group)
        return group, path

    started: list[ProcessGroup] = []
    yield start
    for g in started:
        g.stop()


def run_actor(path: Path, episodes: int, policy: object | None = None
              ) -> tuple[ActorSummary, list[EpisodeData]]:
    """Run an in-process actor against the started driver; return what it stored."""
    cfg = load_config(path)
    ctx = zmq.Context()
    try:
        with Store.open(cfg.data_dir) as store:
            actor = Actor(cfg, ctx, store=store, policy=policy)
            try:
                summary = actor.run(threading.Event(), episodes=episodes)
            finally:
                actor.close()
            stored = [store.load_episode(e.episode_id) for e in summary.episodes]
    finally:
        ctx.term()
    return summary, stored


def test_records_world_state_when_asked(driver) -> None:
    _, path = driver(actor={"observe_state": True, "episode_steps": 5,
                            "end_on_success": False, "policy": {"kind": "expert"}})
    _, (data,) = run_actor(path, 1)
    assert data.arrays["state"].shape == (6, 3)  # reach: target position, T+1 rows
    assert np.all(data.arrays["state"] == data.arrays["state"][0])  # the target stays put


def test_non_finite_policy_output_is_recorded_as_hold_and_nothing_crashes(driver) -> None:
    _, path = driver(actor={"episode_steps": 8, "end_on_success": False})
    summary, (data,) = run_actor(path, 1, NaNPolicy())
    assert summary.filter_counts.get("non_finite") == 8
    np.testing.assert_array_equal(data.arrays["action"][:, :3], 0.0)
    assert np.all(np.isfinite(data.arrays["action"]))
    # Holding still: the end effector barely moved over the episode.
    ee = data.arrays["proprio"][:, :3]
    assert np.abs(ee - ee[0]).max() < 0.005


def test_every_nth_cqn_episode_is_a_stored_greedy_evaluation(driver) -> None:
    _, path = driver(actor={"observe_state": True, "episode_steps": 3, "eval_every": 2,
                            "end_on_success": False, "policy": {"kind": "cqn"}},
                     learner={"observation": "state",
                              "cqn": {"frame_stack": 1, "hidden_dim": 16, "atoms": 5}})
    summary, stored = run_actor(path, 4)
    policies = [data.record.policy for data in stored]
    assert [e.evaluation for e in summary.episodes] == [False, True, False, True]
    assert policies == ["cqn", "cqn-eval", "cqn", "cqn-eval"]
