"""Optional RLBench backend for replay: the same interface as the MuJoCo backend
(`robolearn.playback.backend.ReplayBackend`) over RLBench's Panda in CoppeliaSim.

RLBench (with PyRep and CoppeliaSim) is not a dependency: install it from
https://github.com/stepjam/RLBench with CoppeliaSim v4.1 to use `--sim rlbench`. Without it,
`load_rlbench_api()` raises a ReplayError that says so. Every RLBench call goes through the
`RLBenchApi` namespace, the one place that names RLBench's modules, so tests can hand in a
recording stand-in and check the exact calls.

The environment runs RLBench's absolute joint-position arm action mode with its discrete
gripper: replay in joint mode only (RLBench's own end-effector modes plan paths, which is not
what the logged actions meant). RLBench's world frame is not robolearn's, so the backend
reports `shares_world_frame = False` and replay compares end-effector paths relative to
their start.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from robolearn.errors import ReplayError
from robolearn.playback.backend import SimObservation

log = logging.getLogger(__name__)

RLBENCH_CAMERAS = ("left_shoulder", "right_shoulder", "overhead", "wrist", "front")
# robolearn's sim tasks and the RLBench tasks closest to them; other names pass through.
TASK_NAMES = {"reach": "reach_target", "pick_cube": "pick_and_lift",
              "drawer_open": "open_drawer", "drawer_close": "close_drawer"}
_PANDA_MAX_WIDTH_M = 0.08


@dataclass(frozen=True)
class RLBenchApi:
    """The RLBench names the backend uses (real modules, or a test's stand-ins)."""

    Environment: Callable[..., Any]
    MoveArmThenGripper: Callable[..., Any]
    JointPosition: Callable[..., Any]
    Discrete: Callable[..., Any]
    ObservationConfig: Callable[..., Any]
    name_to_task_class: Callable[[str], Any]


def load_rlbench_api() -> RLBenchApi:
    """Import RLBench.

    Raises:
        ReplayError: RLBench, PyRep or CoppeliaSim is not installed.
    """
    try:
        from rlbench.action_modes.action_mode import MoveArmThenGripper
        from rlbench.action_modes.arm_action_modes import JointPosition
        from rlbench.action_modes.gripper_action_modes import Discrete
        from rlbench.environment import Environment
        from rlbench.observation_config import ObservationConfig
        from rlbench.utils import name_to_task_class
    except ImportError as exc:  # PyRep also raises ImportError when CoppeliaSim is missing
        raise ReplayError(
            f"--sim rlbench needs RLBench with PyRep and CoppeliaSim ({exc}); install "
            "CoppeliaSim v4.1, set COPPELIASIM_ROOT, then `pip install "
            "git+https://github.com/stepjam/RLBench`; or replay with --sim mujoco") from exc
    return RLBenchApi(Environment=Environment, MoveArmThenGripper=MoveArmThenGripper,
                      JointPosition=JointPosition, Discrete=Discrete,
                      ObservationConfig=ObservationConfig,
                      name_to_task_class=name_to_task_class)


class RLBenchBackend:
    """A launched RLBench task as a replay backend. Create with `launch()`."""

    name = "rlbench"
    modes = ("joints",)
    shares_world_frame = False

    def __init__(self, env: Any, task_env: Any, cameras: Sequence[str]) -> None:
        self._env = env
        self._task = task_env
        self._cameras = tuple(cameras)
        self._success = False

    @classmethod
    def launch(
        cls,
        task: str,
        *,
        cameras: Sequence[str] = ("front", "wrist"),
        image_size: tuple[int, int] = (128, 128),
        headless: bool = True,
        api: RLBenchApi | None = None,
    ) -> RLBenchBackend:
        """Start CoppeliaSim with an RLBench task.

        Args:
            task: an RLBench task file name ("reach_target") or a robolearn task with an
                RLBench counterpart (`TASK_NAMES`).
            cameras: RLBench cameras to render (RGB only).
            image_size: (height, width) of the rendered images.
            headless: no CoppeliaSim window.
            api: RLBench's names; None imports RLBench.

        Raises:
            ReplayError: RLBench missing, unknown camera or task.
        """
        bad = [c for c in cameras if c not in RLBENCH_CAMERAS]
        if bad:
            raise ReplayError(f"rlbench: unknown cameras {bad}; RLBench has "
                              f"{list(RLBENCH_CAMERAS)}")
        api = api or load_rlbench_api()
        obs_config = api.ObservationConfig()
        obs_config.set_all(False)
        for camera in cameras:
            camera_config = getattr(obs_config, f"{camera}_camera")
            camera_config.rgb = True
            # RLBench sizes are (width, height); robolearn's are (height, width).
            camera_config.image_size = (image_size[1], image_size[0])
        obs_config.joint_positions = True
        obs_config.gripper_open = True
        obs_config.gripper_pose = True
        obs_config.gripper_joint_positions = True
        obs_config.task_low_dim_state = True
        action_mode = api.MoveArmThenGripper(
            arm_action_mode=api.JointPosition(absolute_mode=True),
            gripper_action_mode=api.Discrete(),
        )
        env = api.Environment(action_mode=action_mode, obs_config=obs_config,
                              headless=headless, robot_setup="panda")
        rlbench_task = TASK_NAMES.get(task, task)
        try:
            task_class = api.name_to_task_class(rlbench_task)
        except Exception as exc:  # RLBench raises its own InvalidTaskName
            raise ReplayError(f"rlbench: no task {rlbench_task!r} ({exc}); use an RLBench "
                              "task file name such as reach_target") from exc
        env.launch()
        try:
            task_env = env.get_task(task_class)
        except BaseException:
            env.shutdown()
            raise
        log.info("rlbench: %s launched (cameras %s)", rlbench_task, list(cameras))
        return cls(env, task_env, cameras)

    @property
    def camera_names(self) -> tuple[str, ...]:
        return self._cameras

    @property
    def num_joints(self) -> int:
        return 7

    def _observe(self, obs: Any) -> SimObservation:
        pose = np.asarray(obs.gripper_pose, dtype=np.float64)  # x y z qx qy qz qw
        fingers = getattr(obs, "gripper_joint_positions", None)
        width = (float(np.sum(fingers)) if fingers is not None
                 else float(obs.gripper_open) * _PANDA_MAX_WIDTH_M)
        state = getattr(obs, "task_low_dim_state", None)
        return SimObservation(
            images={c: np.asarray(getattr(obs, f"{c}_rgb"), dtype=np.uint8)
                    for c in self._cameras},
            proprio=np.concatenate([pose[:3], pose[[6, 3, 4, 5]], [width]]).astype(np.float32),
            joint_pos_rad=np.asarray(obs.joint_positions, dtype=np.float32),
            state=None if state is None else np.asarray(state, dtype=np.float32),
        )

    def reset(self, seed: int | None) -> SimObservation:
        if seed is not None:
            # RLBench randomises its scenes from numpy's global generator.
            np.random.seed(seed)
        self._success = False
        _descriptions, obs = self._task.reset()
        return self._observe(obs)

    def _step(self, joint_pos_rad: np.ndarray, gripper_open: float) -> SimObservation:
        action = np.concatenate([np.asarray(joint_pos_rad, dtype=np.float64).reshape(7),
                                 [gripper_open]])
        obs, reward, terminate = self._task.step(action)
        self._success = self._success or bool(terminate and reward > 0)
        return self._observe(obs)

    def move_to_joints(self, joint_pos_rad: np.ndarray) -> SimObservation:
        return self._step(joint_pos_rad, 1.0)

    def follow_joints(self, joint_pos_rad: np.ndarray, gripper_close: float,
                      duration_s: float) -> SimObservation:
        # JointPosition runs RLBench's own loop until the target is reached: no timing.
        return self._step(joint_pos_rad, 0.0 if gripper_close > 0.5 else 1.0)

    def apply_action(self, action: np.ndarray) -> SimObservation:
        raise ReplayError("rlbench: this backend replays logged joint positions only; "
                          "use --mode joints")

    def success(self) -> bool:
        return self._success

    def close(self) -> None:
        self._env.shutdown()
