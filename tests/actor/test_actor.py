"""The actor in this process against the sim driver in its own process."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import zmq

from robolearn.actor.loop import Actor
from robolearn.actor.policies import PolicyBase
from robolearn.config import load_config
from robolearn.errors import ConfigError, StoreError
from robolearn.store import Store
from tests.actor.conftest import run_actor


class NaNPolicy(PolicyBase):
    name = "nan"

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        return np.array([np.nan, 1.0, np.inf, 0.0], dtype=np.float32)


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


def test_records_into_a_given_run_and_ends_it(driver) -> None:
    _, path = driver(actor={"episode_steps": 3, "end_on_success": False})
    cfg = load_config(path)
    ctx = zmq.Context()
    try:
        with Store.open(cfg.data_dir) as store:
            run_id = store.create_run("registered", {})
            store.end_run(run_id, "stopped")  # an earlier session of the same run
            actor = Actor(cfg, ctx, store=store, run_id=run_id)
            try:
                summary = actor.run(threading.Event(), episodes=2)
            finally:
                actor.close()
            assert [r.id for r in store.list_runs()] == [run_id]  # no second row
            run = store.get_run(run_id)
            assert run.status == "finished" and run.ended_at is not None
            stored = {e.episode_id for e in summary.episodes}
            assert {e.id for e in store.list_episodes(run_id=run_id)} == stored
            assert len(stored) == 2
    finally:
        ctx.term()


def test_an_unknown_run_id_is_refused_before_anything_opens(write_config) -> None:
    cfg = load_config(write_config())
    with Store.open(cfg.data_dir) as store:
        with pytest.raises(StoreError, match="run 42 does not exist"):
            Actor(cfg, None, store=store, run_id=42)  # type: ignore[arg-type] - no socket
        assert store.list_runs() == []
    with pytest.raises(ConfigError, match="records nothing"):
        Actor(cfg, None, run_id=1)  # type: ignore[arg-type]
