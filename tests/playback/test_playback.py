"""Replay of logged episodes in the MuJoCo sim: joint and action mode, the linked episode,
the comparison the operator service serves, policy evaluation on replayed states."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from robolearn.actor.policies import ZeroPolicy
from robolearn.config import load_config
from robolearn.errors import ReplayError
from robolearn.playback import list_replays, replay_comparison, replay_episode
from robolearn.processes import run_episodes_on_sim
from robolearn.store import Store
from tests.playback.recording import record_sim_episode


@pytest.fixture
def store(tmp_path: Path):
    with Store.open(tmp_path / "data") as s:
        yield s


def test_joint_mode_reproduces_path_within_1cm_and_success(store: Store) -> None:
    source_id = record_sim_episode(store, "pick_cube", seed=3)
    source = store.load_episode(source_id)
    assert source.record.outcome == "success"

    report = replay_episode(store, source_id, mode="joints")

    assert report.steps == source.num_steps
    assert len(report.tracking_error_m) == source.num_steps + 1
    assert report.tracking_error_max_m < 0.01
    assert report.replay_success and report.source_success
    # The replay is its own complete episode, linked to its source, with videos.
    replay = store.load_episode(report.replay_episode_id)
    assert replay.record.source_episode_id == source_id
    assert replay.record.policy == "replay-joints"
    assert replay.record.cameras == ("front", "wrist")
    assert replay.images("front").shape == (source.num_steps + 1, 32, 32, 3)
    assert replay.arrays["joint_pos"].shape == (source.num_steps + 1, 7)
    assert store.video_path(replay.record.id, "wrist").is_file()
    assert replay.record.run_id != source.record.run_id
    assert [r.id for r in list_replays(store, source_id)] == [replay.record.id]
    # What the server serves for the chart is the same error, read back from the store.
    comparison = replay_comparison(store, report.replay_episode_id)
    assert comparison.source_episode_id == source_id
    assert comparison.mode == "joints"
    np.testing.assert_allclose(comparison.tracking_error_m, report.tracking_error_m, atol=1e-6)
    assert comparison.replay_outcome == "success"


def test_joint_mode_reproduces_a_failure(store: Store) -> None:
    # Pushing down-left for a few steps never lifts the cube.
    source_id = record_sim_episode(
        store, "pick_cube", seed=1, max_steps=6,
        policy=lambda _b: np.array([0.0, -1.0, -0.5, -1.0], np.float32))
    assert store.get_episode(source_id).outcome == "failure"
    report = replay_episode(store, source_id, mode="joints", render=False, record=False)
    assert report.tracking_error_max_m < 0.01
    assert not report.replay_success
    assert report.replay_episode_id is None


def test_action_mode_reproduces_a_seeded_sim_episode(store: Store) -> None:
    source_id = record_sim_episode(store, "push_cube", seed=5)
    source = store.load_episode(source_id)

    report = replay_episode(store, source_id, mode="actions")

    assert report.tracking_error_max_m < 1e-5  # the same seed, the same commands
    assert report.replay_success == (source.record.outcome == "success")
    replay = store.load_episode(report.replay_episode_id)
    np.testing.assert_allclose(replay.arrays["state"], source.arrays["state"], atol=1e-5)
    np.testing.assert_array_equal(replay.arrays["action"], source.arrays["action"])


def test_joint_mode_needs_logged_joints_and_changes_nothing(store: Store) -> None:
    source_id = record_sim_episode(store, "reach", seed=0, joints=False)
    runs_before = len(store.list_runs())
    with pytest.raises(ReplayError, match=r"no joint positions.*--mode actions"):
        replay_episode(store, source_id, mode="joints")
    assert len(store.list_runs()) == runs_before
    assert store.list_episodes(status=None) == store.list_episodes(run_id=1, status=None)


def test_unknown_task_and_mode_are_refused(store: Store) -> None:
    source_id = record_sim_episode(store, "reach", seed=0)
    with pytest.raises(ReplayError, match="fold_towel"):
        replay_episode(store, source_id, task="fold_towel")
    with pytest.raises(ReplayError, match="unknown replay mode"):
        replay_episode(store, source_id, mode="teleport")  # type: ignore[arg-type]
    with pytest.raises(ReplayError, match="unknown replay backend"):
        replay_episode(store, source_id, backend="gazebo")
    with pytest.raises(ReplayError, match="not a replay"):
        replay_comparison(store, source_id)


class _Scripted:
    """Plays back a fixed action list (a policy that agrees with the log exactly)."""

    def __init__(self, actions: np.ndarray) -> None:
        self.actions = actions
        self.t = 0
        self.seen: list[dict[str, np.ndarray]] = []

    def reset(self) -> None:
        self.t = 0

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        self.seen.append(obs)
        self.t += 1
        return self.actions[self.t - 1]


def test_policy_is_evaluated_on_the_replayed_observations(store: Store) -> None:
    source_id = record_sim_episode(store, "reach", seed=2)
    logged = store.load_episode(source_id).arrays["action"]

    agreeing = _Scripted(logged)
    report = replay_episode(store, source_id, mode="actions", policy=agreeing,
                            policy_name="scripted", record=False)
    assert report.policy is not None
    assert report.policy.action_error_max == 0.0
    assert report.policy.gripper_agreement == 1.0
    assert set(agreeing.seen[0]) == {"front", "wrist", "proprio", "state"}
    assert agreeing.seen[0]["front"].shape == (32, 32, 3)

    zero = replay_episode(store, source_id, mode="joints", policy=ZeroPolicy(4),
                          record=False, render=False).policy
    assert zero is not None
    hold_open = np.array([0.0, 0.0, 0.0, -1.0], np.float32)  # what ZeroPolicy commands
    np.testing.assert_allclose(zero.action_error, np.linalg.norm(logged - hold_open, axis=1),
                               rtol=1e-5)
    assert zero.gripper_agreement == np.mean(np.sign(logged[:, -1]) == -1.0)


def test_joint_mode_follows_an_episode_the_actor_recorded_through_the_driver(
        write_config) -> None:
    # The real path: sim driver process, actor over ZeroMQ, physics in real time.
    path = write_config(actor={"episode_steps": 12, "end_on_success": False,
                               "policy": {"kind": "expert"}})
    cfg = load_config(path)
    results = []
    run_episodes_on_sim(cfg, 1, threading.Event(), results.append)
    (result,) = results
    with Store.open(cfg.data_dir) as store:
        source = store.load_episode(result.episode_id)
        assert source.arrays["joint_pos"].shape == (source.num_steps + 1, 7)
        report = replay_episode(store, result.episode_id, mode="joints", record=False,
                                render=False)
    assert report.tracking_error_max_m < 0.01
    assert report.replay_success == report.source_success


def test_step_durations_follow_the_logged_clock_or_fall_back_to_the_period() -> None:
    from robolearn.playback.runner import step_durations

    stamps = np.array([0, 100, 250, 350]) * 1_000_000  # a late tick at step 1
    np.testing.assert_allclose(step_durations(stamps, 0.1), [0.1, 0.15, 0.1, 0.1])
    np.testing.assert_allclose(step_durations(np.zeros(3, np.int64), 0.1), [0.1] * 3)
    backwards = np.array([0, 100, 50]) * 1_000_000  # not a wall clock: ignore it
    np.testing.assert_allclose(step_durations(backwards, 0.1), [0.1] * 3)
