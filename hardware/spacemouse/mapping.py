"""SpaceMouse axes to a policy action: deadzone, gain, the operator's frame, yaw, gripper.

Pure functions of one device reading, so the mapping is tested without a device or an actor.
pyspacemouse reports translations x (push right), y (push away from the operator), z (pull
up) and the twist `yaw`, each about [-1, 1] (it can read slightly beyond 1 at a hard push).
"""

from __future__ import annotations

import math
from typing import Protocol

import numpy as np

from robolearn.config.hardware import SpaceMouseConfig


class SpaceMouseReading(Protocol):
    """The attributes of pyspacemouse's SpaceMouseState that the mapping reads."""

    x: float
    y: float
    z: float
    yaw: float
    buttons: list[int]


def deadzone(value: float, width: float) -> float:
    """Zero inside +-width, then rising linearly from 0 to 1 at full scale, so motion starts
    smoothly at the deadzone's edge instead of jumping to `width`."""
    v = max(-1.0, min(1.0, float(value)))
    if abs(v) <= width:
        return 0.0
    return math.copysign((abs(v) - width) / (1.0 - width), v)


def to_action(reading: SpaceMouseReading, cfg: SpaceMouseConfig, *, use_yaw: bool,
              gripper_closed: bool) -> np.ndarray:
    """The policy action (x, y, z[, yaw], gripper) in [-1, 1] for one reading.

    Args:
        reading: one device state.
        cfg: deadzone, gain and the operator's frame.
        use_yaw: the run's action space has a yaw component (actor.action_scale.use_yaw).
        gripper_closed: the gripper's toggled state (+1 closed, -1 open in the action).

    Raises:
        ValueError: a non-finite axis value (a device fault: nothing may move on it).
    """
    axes = (reading.x, reading.y, reading.z, reading.yaw)
    if not all(math.isfinite(float(a)) for a in axes):
        raise ValueError(f"SpaceMouse reading has a non-finite axis: {axes}")
    right, forward, up, twist = (deadzone(a, cfg.deadzone) * cfg.gain for a in axes)
    # Forward points along frame_yaw in the base frame; right is forward turned -90 degrees.
    yaw = math.radians(cfg.frame_yaw_deg)
    fwd = np.array([math.cos(yaw), math.sin(yaw)])
    rgt = np.array([math.sin(yaw), -math.cos(yaw)])
    xy = forward * fwd + right * rgt
    parts = [xy[0], xy[1], up]
    if use_yaw:
        parts.append(-twist if cfg.invert_yaw else twist)
    parts.append(1.0 if gripper_closed else -1.0)
    return np.clip(np.asarray(parts, dtype=np.float32), -1.0, 1.0)
