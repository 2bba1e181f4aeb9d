"""The RLBench replay backend against a recording stand-in of RLBench's API (RLBench and
CoppeliaSim cannot be installed here): the exact calls it makes, the joint replay through it,
and the clear error when RLBench is missing."""

from __future__ import annotations

import importlib.util
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from robolearn.errors import ReplayError
from robolearn.playback import replay_episode
from robolearn.playback.rlbench import RLBenchApi, RLBenchBackend, load_rlbench_api
from robolearn.store import Store
from tests.playback.recording import record_sim_episode

# RLBench's world frame: the Panda's base sits elsewhere than robolearn's.
RLBENCH_OFFSET_M = np.array([-0.3, 0.0, 0.75])


class FakeRLBench:
    """Records every call made through the API; the task "moves" to each joint target and
    reports the logged pose for it (shifted into RLBench's frame)."""

    def __init__(self, poses_by_joints: dict[bytes, np.ndarray],
                 first: np.ndarray | None = None) -> None:
        self.first = first
        self.calls: list[tuple[str, Any]] = []
        self.poses = poses_by_joints
        self.obs_config: types.SimpleNamespace | None = None

    def api(self) -> RLBenchApi:
        fake = self

        def camera() -> types.SimpleNamespace:
            return types.SimpleNamespace(rgb=None, image_size=None)

        class ObservationConfig(types.SimpleNamespace):
            def __init__(self) -> None:
                super().__init__(**{f"{c}_camera": camera() for c in
                                    ("left_shoulder", "right_shoulder", "overhead", "wrist",
                                     "front")})
                fake.obs_config = self

            def set_all(self, value: bool) -> None:
                fake.calls.append(("ObservationConfig.set_all", value))

        class Env:
            def __init__(self, **kwargs: Any) -> None:
                fake.calls.append(("Environment", kwargs))

            def launch(self) -> None:
                fake.calls.append(("launch", None))

            def get_task(self, task_class: Any) -> Any:
                fake.calls.append(("get_task", task_class))
                return fake

            def shutdown(self) -> None:
                fake.calls.append(("shutdown", None))

        def record(name: str) -> Any:
            def make(**kwargs: Any) -> tuple[str, dict[str, Any]]:
                fake.calls.append((name, kwargs))
                return (name, kwargs)
            return make

        def name_to_task_class(name: str) -> str:
            fake.calls.append(("name_to_task_class", name))
            if name != "pick_and_lift":
                raise ValueError(f"The task file '{name}' does not exist")
            return "PickAndLift"

        return RLBenchApi(Environment=Env, MoveArmThenGripper=record("MoveArmThenGripper"),
                          JointPosition=record("JointPosition"), Discrete=record("Discrete"),
                          ObservationConfig=ObservationConfig,
                          name_to_task_class=name_to_task_class)

    def _obs(self, joints: np.ndarray) -> types.SimpleNamespace:
        logged = self.poses[np.asarray(joints, np.float32).tobytes()]
        xyzw = np.concatenate([logged[:3] + RLBENCH_OFFSET_M, logged[[4, 5, 6, 3]]])
        return types.SimpleNamespace(
            gripper_pose=xyzw, gripper_joint_positions=np.array([logged[7] / 2] * 2),
            gripper_open=1.0, joint_positions=np.asarray(joints, np.float64),
            task_low_dim_state=np.zeros(3), front_rgb=np.zeros((24, 32, 3), np.uint8),
            wrist_rgb=np.full((24, 32, 3), 7, np.uint8))

    # The TaskEnvironment part of the API.
    def reset(self) -> tuple[list[str], types.SimpleNamespace]:
        self.calls.append(("reset", None))
        return ["pick up the red block"], self._obs(self.first)

    def step(self, action: np.ndarray) -> tuple[types.SimpleNamespace, float, bool]:
        self.calls.append(("step", np.asarray(action).copy()))
        return self._obs(action[:7].astype(np.float32)), 0.0, False


def _fake_for(store: Store, episode_id: int) -> FakeRLBench:
    data = store.load_episode(episode_id)
    joints, proprio = data.arrays["joint_pos"], data.arrays["proprio"]
    return FakeRLBench({q.astype(np.float32).tobytes(): p
                        for q, p in zip(joints, proprio, strict=True)}, first=joints[0])


@pytest.fixture
def store(tmp_path: Path):
    with Store.open(tmp_path / "data") as s:
        yield s


def test_launch_makes_rlbench_calls_in_order(store: Store) -> None:
    source_id = record_sim_episode(store, "pick_cube", seed=3, image_size=(24, 32))
    fake = _fake_for(store, source_id)
    backend = RLBenchBackend.launch("pick_cube", cameras=("front", "wrist"),
                                    image_size=(24, 32), api=fake.api())
    names = [name for name, _ in fake.calls]
    assert names == ["ObservationConfig.set_all", "JointPosition", "Discrete",
                     "MoveArmThenGripper", "Environment", "name_to_task_class", "launch",
                     "get_task"]
    calls = dict(fake.calls)
    assert calls["ObservationConfig.set_all"] is False
    assert calls["JointPosition"] == {"absolute_mode": True}
    assert calls["MoveArmThenGripper"] == {"arm_action_mode": ("JointPosition",
                                                               {"absolute_mode": True}),
                                           "gripper_action_mode": ("Discrete", {})}
    env_kwargs = calls["Environment"]
    assert env_kwargs["headless"] is True and env_kwargs["robot_setup"] == "panda"
    assert env_kwargs["obs_config"] is fake.obs_config
    assert calls["name_to_task_class"] == "pick_and_lift"
    assert calls["get_task"] == "PickAndLift"
    cfg = fake.obs_config
    assert cfg.front_camera.rgb and cfg.wrist_camera.rgb and cfg.overhead_camera.rgb is None
    assert cfg.front_camera.image_size == (32, 24)  # RLBench sizes are (width, height)
    assert cfg.joint_positions and cfg.gripper_pose and cfg.gripper_joint_positions
    backend.close()
    assert fake.calls[-1] == ("shutdown", None)


def test_joint_replay_through_rlbench_steps_the_logged_joints(store: Store) -> None:
    source_id = record_sim_episode(store, "pick_cube", seed=3, image_size=(24, 32))
    source = store.load_episode(source_id)
    fake = _fake_for(store, source_id)
    backend = RLBenchBackend.launch("pick_cube", image_size=(24, 32), api=fake.api())
    fake.calls.clear()

    report = replay_episode(store, source_id, mode="joints", backend=backend)

    steps = [action for name, action in fake.calls if name == "step"]
    assert [name for name, _ in fake.calls][:2] == ["reset", "step"]
    assert len(steps) == source.num_steps + 1  # the move to the start, then every step
    joints = source.arrays["joint_pos"]
    np.testing.assert_allclose(steps[0], np.append(joints[0], 1.0))  # start, gripper open
    for t, action in enumerate(steps[1:]):
        closing = source.arrays["action"][t, -1] > 0
        np.testing.assert_allclose(action, np.append(joints[t + 1], 0.0 if closing else 1.0))
    # RLBench's frame is shifted; the paths are compared from their common start.
    assert report.backend == "rlbench"
    assert report.tracking_error_max_m < 1e-5
    replay = store.load_episode(report.replay_episode_id)
    assert replay.record.cameras == ("front", "wrist")
    assert np.all(replay.images("wrist") == 7)


def test_rlbench_refuses_action_mode_before_recording(store: Store) -> None:
    source_id = record_sim_episode(store, "pick_cube", seed=3, image_size=(24, 32))
    fake = _fake_for(store, source_id)
    backend = RLBenchBackend.launch("pick_cube", image_size=(24, 32), api=fake.api())
    runs = len(store.list_runs())
    with pytest.raises(ReplayError, match="cannot replay in actions mode"):
        replay_episode(store, source_id, mode="actions", backend=backend)
    assert len(store.list_runs()) == runs


def test_unknown_rlbench_task_shuts_nothing_down_and_says_so(store: Store) -> None:
    fake = FakeRLBench({})
    with pytest.raises(ReplayError, match="no task 'stack_towers'"):
        RLBenchBackend.launch("stack_towers", api=fake.api())
    assert ("launch", None) not in fake.calls


def test_missing_rlbench_gives_a_clear_error(store: Store) -> None:
    if importlib.util.find_spec("rlbench") is not None:
        pytest.skip("RLBench is installed here")
    with pytest.raises(ReplayError, match="CoppeliaSim"):
        load_rlbench_api()
    source_id = record_sim_episode(store, "reach", seed=0, max_steps=2)
    runs = len(store.list_runs())
    with pytest.raises(ReplayError, match="--sim mujoco"):
        replay_episode(store, source_id, backend="rlbench")
    assert len(store.list_runs()) == runs
