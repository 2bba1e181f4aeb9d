"""A UFACTORY xArm or Lite 6 through xarm-python-sdk: Cartesian velocity mode (mode 5) with a
controller-side duration, so the arm stops by itself if this process dies; position mode
only for `home`.

Every xarm-python-sdk call of the project is in this class. The SDK speaks mm and mm/s;
everything outside this class is SI.
"""

from __future__ import annotations

import logging
import math
from types import SimpleNamespace
from typing import Any

import numpy as np
from scipy.spatial.transform import Rotation

from robolearn.config.hardware import XArmRobotConfig
from robolearn.errors import DeviceError
from robolearn.hardware.registry import driver
from robolearn.hardware.vendor import ConnectionLost, RawState, VendorArm, import_sdk

log = logging.getLogger(__name__)

_MODE_POSITION = 0
_MODE_CART_VELOCITY = 5
_STATE_READY = 0
_JOINTS = {"xarm5": 5, "xarm6": 6, "xarm7": 7, "lite6": 6}
# Full opening of the UFACTORY gripper, m (its position unit is device-specific).
_GRIPPER_STROKE_M = 0.085


@driver("xarm")
class XArmArm(VendorArm):
    kind = "xarm"
    sdk_module = "xarm.wrapper"
    extra = "xarm"
    native_rate_hz = 250.0  # the SDK's report socket rate

    def __init__(self, cfg: XArmRobotConfig, **kwargs: Any) -> None:
        super().__init__(cfg, **kwargs)
        self.x_cfg = cfg
        self.num_joints = _JOINTS[cfg.model]
        self._arm: Any = None
        self._mode: int | None = None

    def sdk(self) -> Any:
        if self._sdk is None:
            wrapper = import_sdk("xarm.wrapper", "xarm", self.where)
            self._sdk = SimpleNamespace(XArmAPI=wrapper.XArmAPI)
        return self._sdk

    def _check(self, code: int, call: str) -> None:
        if code != 0:
            raise DeviceError(f"{self.where}: {call} returned code {code} (see the xArm "
                              "API code table); clear the error and retry")

    def _set_mode(self, mode: int) -> None:
        self._check(self._arm.set_mode(mode), f"set_mode({mode})")
        self._check(self._arm.set_state(_STATE_READY), "set_state(0)")
        self._mode = mode

    def _sdk_open(self) -> None:
        self._arm = self.sdk().XArmAPI(self.cfg.host, is_radian=True, do_not_open=True)
        self._arm.connect()
        if not self._arm.connected:
            raise ConnectionLost(f"no answer from {self.cfg.host}")
        self._arm.clean_warn()
        self._arm.clean_error()
        self._check(self._arm.motion_enable(enable=True), "motion_enable")
        self._set_mode(_MODE_CART_VELOCITY)
        if self.x_cfg.gripper:
            self._check(self._arm.set_gripper_mode(0), "set_gripper_mode")
            self._check(self._arm.set_gripper_enable(True), "set_gripper_enable")

    def _sdk_close(self) -> None:
        if self._arm is not None:
            self._arm.disconnect()
        self._arm = None
        self._mode = None

    def _sdk_read(self) -> RawState:
        arm = self._arm
        if arm is None or not arm.connected:
            raise ConnectionLost("xArm socket closed")
        # The properties are the SDK's cache of the controller's report stream (native rate):
        # reading them costs no round trip.
        pose = np.asarray(arm.position, dtype=np.float64)  # mm, rad (is_radian=True)
        quat_xyzw = Rotation.from_euler("xyz", pose[3:6]).as_quat()
        width = 0.0
        if self.x_cfg.gripper:
            code, pos = arm.get_gripper_position()
            if code == 0 and pos is not None:
                span = self.x_cfg.gripper_open_pos - self.x_cfg.gripper_closed_pos
                width = _GRIPPER_STROKE_M * (float(pos) - self.x_cfg.gripper_closed_pos) / span
        error = f"xarm error code {arm.error_code}" if arm.error_code else ""
        n = self.num_joints
        return RawState(
            joint_pos_rad=np.asarray(arm.angles, dtype=np.float64)[:n],
            joint_vel_rad_s=np.asarray(arm.realtime_joint_speeds, dtype=np.float64)[:n],
            ee_pos_m=pose[:3] / 1000.0,
            ee_quat_wxyz=np.roll(quat_xyzw, 1),
            gripper_width_m=width,
            error=error,
        )

    def _sdk_velocity(self, v_xyz_m_s: np.ndarray, yaw_rate_rad_s: float) -> None:
        if self._mode != _MODE_CART_VELOCITY:
            self._set_mode(_MODE_CART_VELOCITY)
        speeds = [float(v) * 1000.0 for v in v_xyz_m_s] + [0.0, 0.0, float(yaw_rate_rad_s)]
        # duration: the controller zeroes the speed by itself after one watchdog period.
        self._check(self._arm.vc_set_cartesian_velocity(
            speeds, is_radian=True, is_tool_coord=False, duration=self.cfg.watchdog_ms / 1000.0
        ), "vc_set_cartesian_velocity")

    def _sdk_stop(self) -> None:
        if self._mode == _MODE_CART_VELOCITY:
            self._arm.vc_set_cartesian_velocity([0.0] * 6, is_radian=True, is_tool_coord=False,
                                                duration=0)
        else:
            self._set_mode(_MODE_CART_VELOCITY)  # a mode change aborts a position move

    def _sdk_gripper(self, close: float) -> None:
        if not self.x_cfg.gripper:
            return
        c = self.x_cfg
        pos = c.gripper_open_pos + close * (c.gripper_closed_pos - c.gripper_open_pos)
        self._check(self._arm.set_gripper_position(pos, wait=False), "set_gripper_position")

    def _sdk_recover(self) -> None:
        self._arm.clean_warn()
        self._arm.clean_error()
        self._check(self._arm.motion_enable(enable=True), "motion_enable")
        self._set_mode(_MODE_CART_VELOCITY)

    def _sdk_home(self, xyz_m: np.ndarray) -> None:
        self._set_mode(_MODE_POSITION)
        x, y, z = (float(v) * 1000.0 for v in xyz_m)
        self._check(self._arm.set_position(
            x=x, y=y, z=z, roll=math.pi, pitch=0.0, yaw=0.0,
            speed=self.cfg.max_speed_m_s * 1000.0, is_radian=True, wait=False,
        ), "set_position")
