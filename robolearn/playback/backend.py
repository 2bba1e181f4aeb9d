"""The simulator interface replay drives, and its MuJoCo implementation over `PandaSim`.

A backend steps one control period at a time, either toward a logged joint configuration
(joint mode) or with a logged policy action through its own end-effector controller (action
mode), and reports what a recorder needs: camera images, proprioception, joint positions and
the task's success. `robolearn.playback.rlbench.RLBenchBackend` implements the same interface over
RLBench.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from robolearn.actionspace import ActionScale
from robolearn.errors import ConfigError, ReplayError

log = logging.getLogger(__name__)

# Joint-mode pre-positioning: the sim starts at home; a log that starts elsewhere (a real
# arm) is reached first, untracked, at this fraction of the velocity limits.
_PREPOSITION_SPEED_FRACTION = 0.3
_PREPOSITION_TOLERANCE_RAD = 1e-3


@dataclass(frozen=True)
class SimObservation:
    """What a backend shows after a control step.

    Attributes:
        images: camera name -> uint8 [H, W, 3].
        proprio: float32 [8]: end-effector position (3), orientation wxyz (4), gripper
            width (1), the actor's layout.
        joint_pos_rad: float32 [J] measured arm joint positions.
        state: float32 world state (task objects' positions, the actor's `state` layout),
            or None where the backend has no privileged state.
    """

    images: dict[str, np.ndarray]
    proprio: np.ndarray
    joint_pos_rad: np.ndarray
    state: np.ndarray | None

    @property
    def ee_pos_m(self) -> np.ndarray:
        return self.proprio[:3]

    def as_policy_obs(self) -> dict[str, np.ndarray]:
        """The observation dict a robolearn policy acts on (as the actor builds it)."""
        obs: dict[str, np.ndarray] = dict(self.images)
        obs["proprio"] = self.proprio
        if self.state is not None:
            obs["state"] = self.state
        return obs


class ReplayBackend(Protocol):
    """A simulator that can replay a logged episode.

    Attributes:
        name: "mujoco", "rlbench", ...
        modes: the replay modes it supports ("joints", "actions").
        shares_world_frame: whether its positions are in robolearn's world frame (else
            replay compares end-effector paths relative to their start).
    """

    name: str
    modes: tuple[str, ...]
    shares_world_frame: bool

    @property
    def camera_names(self) -> tuple[str, ...]: ...

    @property
    def num_joints(self) -> int: ...

    def reset(self, seed: int | None) -> SimObservation:
        """Start the task (objects placed from `seed` where the backend can)."""
        ...

    def move_to_joints(self, joint_pos_rad: np.ndarray) -> SimObservation:
        """Bring the arm to a start configuration before a joint-mode replay (untracked)."""
        ...

    def follow_joints(self, joint_pos_rad: np.ndarray, gripper_close: float,
                      duration_s: float) -> SimObservation:
        """One logged step: arm to `joint_pos_rad` over `duration_s` (the logged time
        between the two observations), gripper to `gripper_close` (0 open .. 1 closed)."""
        ...

    def apply_action(self, action: np.ndarray) -> SimObservation:
        """One control period of a normalised end-effector action (robolearn's action
        space) through the backend's own controller."""
        ...

    def success(self) -> bool: ...

    def close(self) -> None: ...


class MujocoBackend:
    """`PandaSim` as a replay backend.

    Args:
        task: a `robolearn.sim.TASKS` name.
        cameras: sim cameras to render ("front", "wrist").
        image_size: (height, width) of rendered images.
        control_hz: the logged episode's control rate; one step is one period.
        scale: the logged run's action scale (what a full-scale action meant).
        render: False renders nothing (images stay empty): for tracking-only replays.

    Raises:
        ReplayError: unknown task or camera, or an image size the sim cannot render.
    """

    name = "mujoco"
    modes = ("joints", "actions")
    shares_world_frame = True

    def __init__(
        self,
        task: str,
        *,
        cameras: Sequence[str],
        image_size: tuple[int, int],
        control_hz: float,
        scale: ActionScale | None = None,
        render: bool = True,
    ) -> None:
        from robolearn.sim import PandaSim

        try:
            self.sim = PandaSim(task, image_size=image_size, cameras=tuple(cameras) or ("front",),
                                control_hz=control_hz, scale=scale or ActionScale(),
                                render=render)
        except ConfigError as exc:
            raise ReplayError(f"mujoco replay of task {task!r}: {exc}") from exc
        self._cameras = tuple(cameras) if render else ()
        self._period_s = 1.0 / control_hz

    @property
    def camera_names(self) -> tuple[str, ...]:
        return self._cameras

    @property
    def num_joints(self) -> int:
        return 7

    def _observe(self) -> SimObservation:
        sim = self.sim
        positions = sim.object_positions()
        # Same layout as the sim driver's `object_state`: positions in name order.
        state = np.concatenate([np.asarray(positions[k], dtype=np.float32).ravel()
                                for k in sorted(positions)]) if positions else None
        return SimObservation(
            images={c: sim.render(c) for c in self._cameras},
            proprio=sim.proprio(),
            joint_pos_rad=sim.state().joint_pos_rad.astype(np.float32),
            state=state,
        )

    def reset(self, seed: int | None) -> SimObservation:
        self.sim.reset(seed=seed)
        return self._observe()

    def move_to_joints(self, joint_pos_rad: np.ndarray) -> SimObservation:
        from robolearn.sim import DQ_MAX_RAD_S

        q = np.asarray(joint_pos_rad, dtype=np.float64)
        gap = np.abs(q - self.sim.state().joint_pos_rad)
        if np.max(gap) > _PREPOSITION_TOLERANCE_RAD:
            duration = float(np.max(gap / (DQ_MAX_RAD_S * _PREPOSITION_SPEED_FRACTION)))
            self.sim.track_joint_waypoint(q, max(duration, self._period_s))
            # Then let the servos settle on the goal for a few periods.
            self.sim.advance(duration + 5 * self._period_s)
        return self._observe()

    def follow_joints(self, joint_pos_rad: np.ndarray, gripper_close: float,
                      duration_s: float) -> SimObservation:
        self.sim.set_gripper(gripper_close)
        self.sim.track_joint_waypoint(np.asarray(joint_pos_rad, dtype=np.float64), duration_s)
        self.sim.advance(duration_s)
        return self._observe()

    def apply_action(self, action: np.ndarray) -> SimObservation:
        self.sim.step(np.asarray(action, dtype=np.float64))
        return self._observe()

    def success(self) -> bool:
        return self.sim.success()

    def close(self) -> None:
        self.sim.close()
