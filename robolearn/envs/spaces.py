"""Observation spaces shared by the in-process sim env and `RobotEnv` over the drivers.

One definition serves both, so a policy trained on `robolearn/PickCube-v0` sees the same
keys, shapes, dtypes and bounds as the actor's env on the sim driver or a real rig.

Bounds are finite and honest: every value a supported arm or the sim can report lies inside
them (Gymnasium's checker warns on infinite bounds, and normalising wrappers divide by them).
This module imports numpy and gymnasium only.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

PROPRIO_DIM = 8
# Length of the sim's object_state per task (object positions, 3 each, in name order).
STATE_DIMS = {"reach": 3, "push_cube": 6, "pick_cube": 3, "drawer_open": 6, "drawer_close": 6,
              "bin_a_to_b": 9, "bin_b_to_a": 9}
# A reset-free run appends its direction one-hot [forward, backward] to the state
# (`robolearn.actor.reset_free.direction_features`).
DIRECTION_DIM = 2
# Every position (end effector, sim objects) in the robot's base frame, m. The largest
# supported arm (UR20) reaches 1.75 m; the sim's objects stay on or above its floor, which
# spans +-3 m around the base at z = -0.75 m.
POSITION_BOUND_M = 3.0
# Gripper width, m: Franka, UR and xArm grippers open at most 0.085 m. The xArm width is a
# linear map of SDK units that are not clipped at the end stops, so allow a margin both ways.
GRIPPER_WIDTH_MIN_M = -0.05
GRIPPER_WIDTH_MAX_M = 0.25
# Joint positions, rad: the widest range of any supported arm is +-360 degrees (UR, xArm);
# a little over 2 pi leaves room for encoder overshoot at the limit.
JOINT_BOUND_RAD = 7.0
# Joints per supported arm; the xArm's count depends on its model.
_XARM_JOINTS = {"xarm5": 5, "xarm6": 6, "xarm7": 7, "lite6": 6}


def image_space(height: int, width: int) -> gym.spaces.Box:
    """One RGB camera image, uint8 [H, W, 3]."""
    return gym.spaces.Box(0, 255, (height, width, 3), np.uint8)


def depth_space(height: int, width: int) -> gym.spaces.Box:
    """Depth aligned to a camera image, uint16 millimetres [H, W] (0 = no reading)."""
    return gym.spaces.Box(0, np.iinfo(np.uint16).max, (height, width), np.uint16)


def proprio_space() -> gym.spaces.Box:
    """End-effector position (3, m), orientation wxyz (4, unit quaternion) and gripper width
    (1, m) as float32: the layout of `robolearn.sim.PandaSim.proprio` and of the driver
    state the actor reads."""
    low = np.array([-POSITION_BOUND_M] * 3 + [-1.0] * 4 + [GRIPPER_WIDTH_MIN_M], np.float32)
    high = np.array([POSITION_BOUND_M] * 3 + [1.0] * 4 + [GRIPPER_WIDTH_MAX_M], np.float32)
    return gym.spaces.Box(low, high, (PROPRIO_DIM,), np.float32)


def state_space(object_dim: int, extra_unit_dim: int = 0) -> gym.spaces.Box:
    """The sim's privileged state, float32: object positions (3 each, m) followed by
    `extra_unit_dim` values in [0, 1] (the reset-free direction one-hot)."""
    low = np.concatenate([np.full(object_dim, -POSITION_BOUND_M), np.zeros(extra_unit_dim)])
    high = np.concatenate([np.full(object_dim, POSITION_BOUND_M), np.ones(extra_unit_dim)])
    return gym.spaces.Box(low.astype(np.float32), high.astype(np.float32),
                          (object_dim + extra_unit_dim,), np.float32)


def joint_space(num_joints: int) -> gym.spaces.Box:
    """Measured joint positions, float32 radians."""
    return gym.spaces.Box(-JOINT_BOUND_RAD, JOINT_BOUND_RAD, (num_joints,), np.float32)


def arm_joint_count(kind: str, model: str | None = None) -> int:
    """Number of joints of a configured arm (`robot.kind`, and `robot.model` for an xArm).

    Raises:
        ValueError: an arm kind (or xArm model) this table does not know; add it here.
    """
    if kind in ("sim", "franka"):
        return 7
    if kind == "ur":
        return 6
    if kind == "xarm" and model in _XARM_JOINTS:
        return _XARM_JOINTS[model]
    raise ValueError(f"arm kind {kind!r} (model {model!r}): joint count unknown; add it to "
                     "robolearn.envs.spaces.arm_joint_count")
