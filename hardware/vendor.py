"""What every real (vendor SDK) arm driver shares: connection with backoff, its own watchdog,
the workspace box and speed limits, error latching and recovery.

A vendor driver subclasses `VendorArm` and implements only the `_sdk_*` hooks, which are the
single place its SDK is called. The limits here are a second line behind the actor's safety
filter: even a command that skipped the actor (a test client, a bug) cannot leave the box or
exceed the rig's speed.
"""

from __future__ import annotations

import abc
import importlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from robolearn.config.hardware import RealArmConfig
from robolearn.errors import ConfigError, DeviceError, DeviceNotConnected
from robolearn.hardware.base import ArmDriver, ArmSpec, ArmState, EeDeltaCommand

log = logging.getLogger(__name__)

# A TCP this far outside the box while moving stops the arm (tracking overshoot of a real
# controller is a few mm; more means something pushed it out).
_BOX_TOLERANCE_M = 0.01
# Gripper commands below this change are not re-sent (vendor gripper calls are slow).
_GRIPPER_DEADBAND = 0.05


def import_sdk(module: str, extra: str, device: str) -> ModuleType:
    """Import a vendor SDK module or fail with the pip extra that provides it.

    Raises:
        ConfigError: the module is not installed.
    """
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ConfigError(
            f"{device}: the vendor SDK module {module!r} is not installed; install the extra "
            f"with `pip install -e .[{extra}]`"
        ) from e


class ConnectionLost(Exception):
    """Raised by an `_sdk_*` hook when the link to the controller is gone; `tick` turns it
    into a reconnect with backoff."""


@dataclass(frozen=True)
class RawState:
    """What a vendor hook reads, in SI units and the robot base frame."""

    joint_pos_rad: np.ndarray
    joint_vel_rad_s: np.ndarray
    ee_pos_m: np.ndarray
    ee_quat_wxyz: np.ndarray
    gripper_width_m: float
    error: str = ""  # non-empty: the controller reports a fault (protective stop, reflex)


class VendorArm(ArmDriver):
    """Base of the Franka, UR and xArm drivers.

    Args:
        cfg: the arm's config (limits, home, backoff).
        command_period_s: the actor's control period; one EE delta is spread over it.
        sdk: the vendor SDK module (or an object with the same attributes); None imports
            the real one. Tests inject a fake here.
        sleep: used only between connection attempts in connect().
    """

    kind = ""
    sdk_module = ""
    extra = ""
    num_joints = 7
    native_rate_hz = 500.0

    def __init__(
        self,
        cfg: RealArmConfig,
        *,
        command_period_s: float = 0.1,
        sdk: Any | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.cfg = cfg
        self._period_s = float(command_period_s)
        self._sdk = sdk
        self._sleep = sleep
        self._box_min = np.asarray(cfg.workspace_min_m, dtype=np.float64)
        self._box_max = np.asarray(cfg.workspace_max_m, dtype=np.float64)
        self._connected = False
        self._opened = False  # connect() succeeded once and close() not called
        self._state: RawState | None = None
        self._stamp_ns = 0
        self._error = ""
        self._moving = False
        self._last_cmd_ns = 0
        self._gripper_sent: float | None = None
        self._next_retry_ns = 0
        self._retries = 0
        self.reconnects = 0
        self.watchdog_trips = 0

    # -- identity ------------------------------------------------------------------------
    @property
    def where(self) -> str:
        return f"{self.cfg.name} ({self.kind} at {self.cfg.host})"

    @property
    def spec(self) -> ArmSpec:
        return ArmSpec(name=self.cfg.name, kind=self.kind, num_joints=self.num_joints,
                       workspace_min_m=self._box_min.copy(), workspace_max_m=self._box_max.copy(),
                       max_step_m=self.cfg.max_step_m, native_rate_hz=self.native_rate_hz)

    @property
    def connected(self) -> bool:
        return self._connected

    def sdk(self) -> Any:
        if self._sdk is None:
            self._sdk = import_sdk(self.sdk_module, self.extra, self.where)
        return self._sdk

    # -- vendor hooks --------------------------------------------------------------------
    @abc.abstractmethod
    def _sdk_open(self) -> None:
        """Open the connection and make the arm ready to take motion commands."""

    @abc.abstractmethod
    def _sdk_close(self) -> None: ...

    @abc.abstractmethod
    def _sdk_read(self) -> RawState:
        """Read the arm once. Raises ConnectionLost when the link is gone."""

    @abc.abstractmethod
    def _sdk_velocity(self, v_xyz_m_s: np.ndarray, yaw_rate_rad_s: float) -> None:
        """Move the TCP at this velocity until the next call or a stop."""

    @abc.abstractmethod
    def _sdk_stop(self) -> None:
        """Decelerate to rest now."""

    @abc.abstractmethod
    def _sdk_gripper(self, close: float) -> None:
        """Command the gripper: 0 open .. 1 closed."""

    @abc.abstractmethod
    def _sdk_recover(self) -> None:
        """Clear the controller's error and make it ready to move again."""

    @abc.abstractmethod
    def _sdk_home(self, xyz_m: np.ndarray) -> None:
        """Start a move of the TCP to xyz_m, gripper down (returns at once)."""

    def _sdk_tick(self) -> None:
        """Called every loop iteration while connected (e.g. to kick a controller watchdog)."""

    # -- connection ----------------------------------------------------------------------
    def _backoff_s(self, attempt: int) -> float:
        return min(self.cfg.backoff_s * 2.0 ** attempt, self.cfg.max_backoff_s)

    def connect(self) -> None:
        """Connect, retrying with exponential backoff.

        Raises:
            ConfigError: the vendor SDK is missing.
            DeviceNotConnected: every attempt failed.
        """
        self.sdk()
        last: Exception | None = None
        for attempt in range(self.cfg.connect_attempts):
            try:
                self._sdk_open()
                self._state = self._sdk_read()
            except Exception as e:  # vendor SDKs raise their own types; all mean "not yet"
                last = e
                log.warning("%s: connect attempt %d/%d failed: %s", self.where, attempt + 1,
                            self.cfg.connect_attempts, e)
                self._close_quietly()
                if attempt + 1 < self.cfg.connect_attempts:
                    self._sleep(self._backoff_s(attempt))
                continue
            self._connected = self._opened = True
            self._stamp_ns = time.monotonic_ns()
            self._retries = 0
            self._error = self._state.error
            log.info("%s: connected", self.where)
            return
        raise DeviceNotConnected(
            f"{self.where}: no connection after {self.cfg.connect_attempts} attempts "
            f"(last error: {last}); check the cable, the IP and that the controller is on"
        ) from last

    def _close_quietly(self) -> None:
        try:
            self._sdk_close()
        except Exception as e:  # closing a half-open link: report, carry on
            log.warning("%s: close after failure raised %s", self.where, e)

    def close(self) -> None:
        if self._connected:
            try:
                self._sdk_stop()
            except Exception as e:
                log.warning("%s: stop on close failed: %s", self.where, e)
        if self._opened or self._connected:
            self._sdk_close()
        self._connected = self._opened = False
        self._moving = False

    def _lost(self, reason: str, now_ns: int) -> None:
        self._connected = False
        self._moving = False
        self._error = f"disconnected: {reason}"
        self._retries = 0
        self._next_retry_ns = now_ns + int(self._backoff_s(0) * 1e9)
        log.error("%s: connection lost (%s); reconnecting with backoff", self.where, reason)
        self._close_quietly()

    def _try_reconnect(self, now_ns: int) -> None:
        # Never blocks the server loop: one attempt per due time, the delay doubling.
        if now_ns < self._next_retry_ns:
            return
        try:
            self._sdk_open()
            self._state = self._sdk_read()
        except Exception as e:
            self._retries += 1
            self._next_retry_ns = now_ns + int(self._backoff_s(self._retries) * 1e9)
            log.warning("%s: reconnect attempt %d failed: %s", self.where, self._retries, e)
            self._close_quietly()
            return
        self._connected = True
        self.reconnects += 1
        self._stamp_ns = now_ns
        # The arm stays stopped after a reconnect: motion resumes only with a new command.
        self._error = self._state.error
        self._gripper_sent = None
        log.info("%s: reconnected", self.where)

    # -- loop ----------------------------------------------------------------------------
    def tick(self, now_ns: int) -> None:
        if not self._opened:
            raise DeviceNotConnected(f"{self.where}: tick() before connect(); open the driver "
                                     "with `with` or call connect()")
        if not self._connected:
            self._try_reconnect(now_ns)
            return
        try:
            self._sdk_tick()
            state = self._sdk_read()
        except ConnectionLost as e:
            self._lost(str(e), now_ns)
            return
        self._state = state
        self._stamp_ns = now_ns
        if state.error and state.error != self._error:
            log.error("%s: controller error: %s; arm stopped until clear_error", self.where,
                      state.error)
            self._moving = False
        self._error = state.error or (self._error if self._error.startswith("driver:") else "")
        if self._moving and now_ns - self._last_cmd_ns > self.cfg.watchdog_ms * 1e6:
            self.watchdog_trips += 1
            log.warning("%s: driver watchdog: no command for %.0f ms; stopping", self.where,
                        (now_ns - self._last_cmd_ns) / 1e6)
            self.stop()
            return
        if self._moving and self._outside_box(state.ee_pos_m):
            self._error = f"driver: TCP {np.round(state.ee_pos_m, 3).tolist()} left the box"
            log.error("%s: %s; stopping", self.where, self._error)
            self.stop()

    def _outside_box(self, pos: np.ndarray) -> bool:
        return bool(np.any(pos < self._box_min - _BOX_TOLERANCE_M)
                    or np.any(pos > self._box_max + _BOX_TOLERANCE_M))

    def _require(self, what: str) -> RawState:
        if not self._opened:
            raise DeviceNotConnected(f"{self.where}: {what} before connect(); open the driver "
                                     "with `with` or call connect()")
        if not self._connected or self._state is None:
            raise DeviceNotConnected(f"{self.where}: {what} while disconnected; the driver is "
                                     "reconnecting")
        return self._state

    def read(self) -> ArmState:
        if not self._opened or self._state is None:
            raise DeviceNotConnected(f"{self.where}: read() before connect()")
        s = self._state
        return ArmState(joint_pos_rad=s.joint_pos_rad.copy(),
                        joint_vel_rad_s=s.joint_vel_rad_s.copy(), ee_pos_m=s.ee_pos_m.copy(),
                        ee_quat_wxyz=s.ee_quat_wxyz.copy(), gripper_width_m=s.gripper_width_m,
                        stamp_ns=self._stamp_ns, stopped=not self._moving, error=self._error)

    # -- commands ------------------------------------------------------------------------
    def limit(self, state: RawState, cmd: EeDeltaCommand) -> EeDeltaCommand:
        """Clip a delta to the per-step limit, the box and the speed limit (pure)."""
        delta = np.asarray(cmd.delta_xyz_m, dtype=np.float64).reshape(3)
        if not np.all(np.isfinite(delta)) or not np.isfinite(cmd.delta_yaw_rad):
            delta = np.zeros(3)  # non-finite: the safest applied command is none
            yaw = 0.0
        else:
            yaw = float(cmd.delta_yaw_rad)
        delta = np.clip(delta, -self.cfg.max_step_m, self.cfg.max_step_m)
        max_move = self.cfg.max_speed_m_s * self._period_s
        delta = np.clip(delta, -max_move, max_move)
        target = np.clip(state.ee_pos_m + delta, self._box_min, self._box_max)
        # Already outside (overshoot): allow only motion back towards the box.
        applied = target - state.ee_pos_m
        max_yaw = self.cfg.max_yaw_rate_rad_s * self._period_s
        yaw = float(np.clip(yaw, -max_yaw, max_yaw))
        grip = float(np.clip(cmd.gripper_close, 0.0, 1.0)) if np.isfinite(cmd.gripper_close) \
            else (self._gripper_sent or 0.0)
        return EeDeltaCommand(delta_xyz_m=applied, delta_yaw_rad=yaw, gripper_close=grip)

    def command(self, cmd: EeDeltaCommand) -> EeDeltaCommand:
        state = self._require("command()")
        if self._error:
            raise DeviceError(f"{self.where}: refusing to move while the controller "
                                     f"reports {self._error!r}; call clear_error first")
        applied = self.limit(state, cmd)
        self._sdk_velocity(applied.delta_xyz_m / self._period_s,
                           applied.delta_yaw_rad / self._period_s)
        self._moving = True
        self._last_cmd_ns = time.monotonic_ns()
        if self._gripper_sent is None or abs(applied.gripper_close - self._gripper_sent) \
                > _GRIPPER_DEADBAND:
            self._sdk_gripper(applied.gripper_close)
            self._gripper_sent = applied.gripper_close
        return applied

    def stop(self) -> None:
        if not self._connected:
            self._moving = False
            return
        self._sdk_stop()
        self._moving = False

    def home(self) -> None:
        self._require("home()")
        if self._error:
            raise DeviceError(f"{self.where}: cannot home while the controller reports "
                                     f"{self._error!r}; call clear_error first")
        self._sdk_home(np.asarray(self.cfg.home_xyz_m, dtype=np.float64))

    def clear_error(self) -> None:
        self._require("clear_error()")
        self._sdk_recover()
        self._state = self._sdk_read()
        self._error = self._state.error
        if self._error:
            log.error("%s: error persists after recovery: %s", self.where, self._error)
        else:
            log.info("%s: error cleared", self.where)

    @property
    def description(self) -> str:
        return f"{self.kind} arm {self.cfg.name} at {self.cfg.host}"
