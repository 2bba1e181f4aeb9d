"""The policy action space shared by the sim, the real rigs and the actor.

A policy action is a float32 vector in [-1, 1]: end-effector delta x, y, z, an optional yaw
delta, and the gripper (-1 fully open, +1 fully closed). `ActionScale` turns it into physical
units; the same scale is used by the scripted experts, the actor and the drivers, so a
dataset recorded on the sim replays on a real arm unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ActionScale:
    """Physical size of a full-scale (|a| = 1) action for one control step.

    Attributes:
        xyz_m: end-effector translation per step for |a| = 1, metres.
        yaw_rad: end-effector yaw rotation per step for |a| = 1, radians.
        use_yaw: whether the action has a yaw component (action dim 5 instead of 4).
    """

    xyz_m: float = 0.05
    yaw_rad: float = 0.25
    use_yaw: bool = False

    @property
    def action_dim(self) -> int:
        return 5 if self.use_yaw else 4


@dataclass(frozen=True)
class EeCommand:
    """An end-effector delta command in physical units.

    Attributes:
        delta_xyz_m: translation of the end-effector target, metres, shape (3,).
        delta_yaw_rad: rotation of the target about the world z axis, radians.
        gripper_close: 0.0 fully open .. 1.0 fully closed.
    """

    delta_xyz_m: np.ndarray
    delta_yaw_rad: float
    gripper_close: float


def action_to_command(action: np.ndarray, scale: ActionScale) -> EeCommand:
    """Map a normalised policy action to a physical end-effector command.

    Values outside [-1, 1] are clipped; non-finite values are the safety filter's job and
    raise here so they can never be turned into motion silently.

    Raises:
        ValueError: wrong shape or a non-finite value.
    """
    a = np.asarray(action, dtype=np.float64)
    if a.shape != (scale.action_dim,):
        raise ValueError(f"action shape {a.shape}, expected ({scale.action_dim},)")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"non-finite action {a.tolist()}")
    a = np.clip(a, -1.0, 1.0)
    yaw = float(a[3]) * scale.yaw_rad if scale.use_yaw else 0.0
    return EeCommand(
        delta_xyz_m=a[:3] * scale.xyz_m,
        delta_yaw_rad=yaw,
        gripper_close=float((a[-1] + 1.0) / 2.0),
    )


def command_to_action(cmd: EeCommand, scale: ActionScale) -> np.ndarray:
    """Inverse of `action_to_command` (up to clipping): physical command -> policy action."""
    parts = [np.asarray(cmd.delta_xyz_m, dtype=np.float64) / scale.xyz_m]
    if scale.use_yaw:
        parts.append(np.array([cmd.delta_yaw_rad / scale.yaw_rad]))
    parts.append(np.array([cmd.gripper_close * 2.0 - 1.0]))
    return np.clip(np.concatenate(parts), -1.0, 1.0).astype(np.float32)
