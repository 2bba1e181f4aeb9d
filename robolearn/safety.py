"""The safety filter: the last check before any command leaves the actor.

Order matters: a non-finite or malformed action becomes "hold still" (zero translation,
gripper unchanged) before anything else looks at it; the per-step limit bounds how far one
command can move; the workspace box bounds where the target may be. With the e-stop latched
nothing is sent at all.

The actor's `RobotEnv` and the in-process sim envs (`robolearn.envs`) filter through the
same class, so it sits below both rather than inside the actor.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from robolearn.actionspace import ActionScale, EeCommand, command_to_action
from robolearn.config import SafetyConfig


@dataclass(frozen=True)
class FilterResult:
    """What the filter let through.

    Attributes:
        command: the command to send, or None when nothing may be sent (e-stop).
        action: the policy-space action equivalent of `command` (what gets recorded).
        reasons: why the action was changed ("non_finite", "bad_shape", "step_limit",
            "workspace", "estop"); empty when it passed untouched.
    """

    command: EeCommand | None
    action: np.ndarray
    reasons: tuple[str, ...]

    @property
    def modified(self) -> bool:
        return bool(self.reasons)


class SafetyFilter:
    def __init__(self, cfg: SafetyConfig, scale: ActionScale) -> None:
        self.cfg = cfg
        self.scale = scale
        self.box_min = np.asarray(cfg.workspace_min_m, dtype=np.float64)
        self.box_max = np.asarray(cfg.workspace_max_m, dtype=np.float64)
        self._gripper_close = 0.0
        self.counts: dict[str, int] = {}

    @property
    def gripper_action(self) -> float:
        """The gripper as last commanded, in policy space (-1 open .. +1 closed)."""
        return 2.0 * self._gripper_close - 1.0

    def filter(self, action: object, ee_pos_m: np.ndarray, *, estop: bool) -> FilterResult:
        """Turn a policy action into a safe command given the measured end-effector position.

        Args:
            action: the policy's output; anything (wrong shape, NaN, a string) is handled.
            ee_pos_m: measured end-effector position (base frame), m.
            estop: whether an e-stop is latched.
        """
        reasons: list[str] = []
        a = self._as_action(action, reasons)
        ee = np.asarray(ee_pos_m, dtype=np.float64)
        if estop:
            reasons.append("estop")
            hold = EeCommand(np.zeros(3), 0.0, self._gripper_close)
            return self._result(None, command_to_action(hold, self.scale), reasons)
        if a is None:
            cmd = EeCommand(np.zeros(3), 0.0, self._gripper_close)
            return self._result(cmd, command_to_action(cmd, self.scale), reasons)
        a = np.clip(a, -1.0, 1.0)
        delta = a[:3] * self.scale.xyz_m
        yaw = float(a[3]) * self.scale.yaw_rad if self.scale.use_yaw else 0.0
        grip = float((a[-1] + 1.0) / 2.0)

        limited = np.clip(delta, -self.cfg.max_step_m, self.cfg.max_step_m)
        if not np.array_equal(limited, delta):
            reasons.append("step_limit")
        target = np.clip(ee + limited, self.box_min, self.box_max)
        boxed = np.clip(target - ee, -self.cfg.max_step_m, self.cfg.max_step_m)
        if not np.allclose(boxed, limited, atol=1e-12):
            reasons.append("workspace")
        if abs(yaw) > self.cfg.max_yaw_step_rad:
            yaw = float(np.clip(yaw, -self.cfg.max_yaw_step_rad, self.cfg.max_yaw_step_rad))
            reasons.append("step_limit")
        self._gripper_close = grip
        cmd = EeCommand(delta_xyz_m=boxed, delta_yaw_rad=yaw, gripper_close=grip)
        return self._result(cmd, command_to_action(cmd, self.scale), reasons)

    def _as_action(self, action: object, reasons: list[str]) -> np.ndarray | None:
        try:
            a = np.asarray(action, dtype=np.float64)
        except (TypeError, ValueError):
            reasons.append("bad_shape")
            return None
        if a.shape != (self.scale.action_dim,):
            reasons.append("bad_shape")
            return None
        if not np.all(np.isfinite(a)):
            reasons.append("non_finite")
            return None
        return a

    def _result(
        self, cmd: EeCommand | None, action: np.ndarray, reasons: list[str]
    ) -> FilterResult:
        for r in reasons:
            self.counts[r] = self.counts.get(r, 0) + 1
        return FilterResult(command=cmd, action=action, reasons=tuple(dict.fromkeys(reasons)))
