"""A UR e-series arm through ur-rtde: speedL for end-effector deltas, protective-stop
detection and recovery through the dashboard server, the RTDE watchdog kicked every tick.

Every ur-rtde call of the project is in this class.
"""

from __future__ import annotations

import logging
import math
from types import SimpleNamespace
from typing import Any

import numpy as np
from scipy.spatial.transform import Rotation

from robolearn.config.hardware import URRobotConfig
from robolearn.errors import DeviceError
from robolearn.hardware.registry import driver
from robolearn.hardware.vendor import ConnectionLost, RawState, VendorArm, import_sdk

log = logging.getLogger(__name__)

# Deceleration of speedStop, m/s^2: firm enough to stop within ~1 cm at the speed limit.
_STOP_DECEL_M_S2 = 2.0
# The controller stops the arm by itself when our process stops kicking for 1 / this, s.
_RTDE_WATCHDOG_MIN_HZ = 10.0
# Nominal opening of a digital-IO gripper (it has no width sensor): the commanded state is
# reported as this width or zero.
_OPEN_WIDTH_M = 0.085
# Gripper down: 180 degrees about the base x axis, as a rotation vector.
_DOWN_ROTVEC = (math.pi, 0.0, 0.0)


@driver("ur")
class URArm(VendorArm):
    kind = "ur"
    sdk_module = "rtde_control"
    extra = "ur"
    num_joints = 6
    native_rate_hz = 500.0

    def __init__(self, cfg: URRobotConfig, **kwargs: Any) -> None:
        super().__init__(cfg, **kwargs)
        self.ur_cfg = cfg
        self.native_rate_hz = cfg.rtde_frequency_hz
        self._ctrl: Any = None
        self._recv: Any = None
        self._io: Any = None
        self._dash: Any = None
        self._grip_closed = False

    def sdk(self) -> Any:
        # ur-rtde is four modules; the driver sees them as one namespace (a fake is one too).
        if self._sdk is None:
            mods = {m: import_sdk(m, "ur", self.where)
                    for m in ("rtde_control", "rtde_receive", "rtde_io", "dashboard_client")}
            self._sdk = SimpleNamespace(
                RTDEControlInterface=mods["rtde_control"].RTDEControlInterface,
                RTDEReceiveInterface=mods["rtde_receive"].RTDEReceiveInterface,
                RTDEIOInterface=mods["rtde_io"].RTDEIOInterface,
                DashboardClient=mods["dashboard_client"].DashboardClient,
            )
        return self._sdk

    def _sdk_open(self) -> None:
        sdk, host, hz = self.sdk(), self.cfg.host, self.ur_cfg.rtde_frequency_hz
        self._recv = sdk.RTDEReceiveInterface(host, hz)
        self._ctrl = sdk.RTDEControlInterface(host, hz)
        self._dash = sdk.DashboardClient(host)
        self._dash.connect()
        if self.ur_cfg.gripper_tool_output is not None:
            self._io = sdk.RTDEIOInterface(host)
        if not self._ctrl.setWatchdog(_RTDE_WATCHDOG_MIN_HZ):
            raise ConnectionLost("setWatchdog refused by the controller")

    def _sdk_close(self) -> None:
        for part in (self._ctrl, self._recv, self._io, self._dash):
            if part is not None:
                part.disconnect()
        self._ctrl = self._recv = self._io = self._dash = None

    def _sdk_tick(self) -> None:
        if self._ctrl is None or not self._ctrl.isConnected():
            raise ConnectionLost("RTDE control interface disconnected")
        self._ctrl.kickWatchdog()

    def _sdk_read(self) -> RawState:
        if self._recv is None or not self._recv.isConnected():
            raise ConnectionLost("RTDE receive interface disconnected")
        pose = np.asarray(self._recv.getActualTCPPose(), dtype=np.float64)
        quat_xyzw = Rotation.from_rotvec(pose[3:6]).as_quat()
        error = ""
        if self._recv.isEmergencyStopped():
            error = "emergency_stop"
        elif self._recv.isProtectiveStopped():
            error = "protective_stop"
        return RawState(
            joint_pos_rad=np.asarray(self._recv.getActualQ(), dtype=np.float64),
            joint_vel_rad_s=np.asarray(self._recv.getActualQd(), dtype=np.float64),
            ee_pos_m=pose[:3].copy(),
            ee_quat_wxyz=np.roll(quat_xyzw, 1),
            gripper_width_m=0.0 if self._grip_closed else _OPEN_WIDTH_M,
            error=error,
        )

    def _sdk_velocity(self, v_xyz_m_s: np.ndarray, yaw_rate_rad_s: float) -> None:
        xd = [float(v) for v in v_xyz_m_s] + [0.0, 0.0, float(yaw_rate_rad_s)]
        self._ctrl.speedL(xd, self.ur_cfg.acceleration_m_s2, 0.0)

    def _sdk_stop(self) -> None:
        self._ctrl.speedStop(_STOP_DECEL_M_S2)

    def _sdk_gripper(self, close: float) -> None:
        if self._io is None or self.ur_cfg.gripper_tool_output is None:
            return
        self._grip_closed = close >= 0.5
        self._io.setToolDigitalOut(self.ur_cfg.gripper_tool_output, self._grip_closed)

    def _sdk_recover(self) -> None:
        if self._recv.isEmergencyStopped():
            raise DeviceError(
                f"{self.where}: emergency stop pressed; release it on the pendant, then clear "
                "the error again"
            )
        if self._recv.isProtectiveStopped():
            # The controller refuses the unlock for 5 s after the stop; the caller may retry.
            self._dash.closeSafetyPopup()
            self._dash.unlockProtectiveStop()
        if not self._ctrl.isProgramRunning():
            self._ctrl.reuploadScript()

    def _sdk_home(self, xyz_m: np.ndarray) -> None:
        pose = [float(v) for v in xyz_m] + list(_DOWN_ROTVEC)
        self._ctrl.moveL(pose, self.cfg.max_speed_m_s, self.ur_cfg.acceleration_m_s2, True)
