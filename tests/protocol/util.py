"""Builders of valid protocol messages and a polling helper for the protocol tests."""

from __future__ import annotations

import time
from typing import Any

import numpy as np


def arm_state(i: int = 0) -> tuple[str, dict[str, Any], dict[str, np.ndarray]]:
    """A valid arm_state (type, body, arrays); `i` lands in stamp_ns."""
    return (
        "arm_state",
        {"stamp_ns": i, "gripper_width_m": 0.04, "stopped": False, "estop": False, "error": "",
         "watchdog_tripped": False},
        {"joint_pos_rad": np.linspace(-1, 1, 7), "joint_vel_rad_s": np.zeros(7),
         "ee_pos_m": np.array([0.4, 0.0, 0.3]), "ee_quat_wxyz": np.array([1.0, 0.0, 0.0, 0.0])},
    )


def wait_until(predicate: Any, timeout_s: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return bool(predicate())
