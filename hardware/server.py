"""Expose drivers over the wire protocol: state and frames on PUB, commands on ROUTER.

One loop per process, single-threaded: tick the arm, enforce the watchdog, publish state and
frames when due, serve commands. The watchdog lives here, beside the device, so a dead or
frozen actor can never leave the arm moving: with no motion command for `watchdog_ms` the
arm is stopped.

The run's safety box and per-step limits (`safety.*`) are enforced here too, on every
motion command whoever sends it: the actor's filter is the first line, this is the one that
no client can skip. With an authenticating command socket, the e-stop latch, its release and
every refusal are attributed to the sending key's identity, never to a message field.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import zmq

from robolearn.config.models import SafetyConfig
from robolearn.hardware.base import ArmDriver, CameraDriver, EeDeltaCommand
from robolearn.protocol import Message, Publisher, Replier, RoutingId
from robolearn.protocol.messages import ArmCommand
from robolearn.protocol.security import SocketSecurity

SecurityFor = Callable[[str], SocketSecurity | None]
"""address -> the CURVE settings of the socket bound there."""

log = logging.getLogger(__name__)

# Longest the loop waits for a command before it checks the watchdog and due publications.
_MAX_POLL_S = 0.002


@dataclass
class ServerStats:
    commands: int = 0
    refused: int = 0
    motions: int = 0  # motion commands executed (e-stop tests check none run after a latch)
    clipped: int = 0  # motion commands the safety box or step limits cut short
    watchdog_trips: int = 0
    resets: int = 0  # task resets served (a reset-free run has one, before its first episode)
    task_switches: int = 0  # reset-free continue_task commands served
    states: int = 0
    frames: dict[str, int] = field(default_factory=dict)


class DriverServer:
    """Serve one optional arm and any number of cameras.

    Args:
        arm: the arm driver, or None for a camera-only process.
        cameras: camera drivers whose frames go out on `frames_address`.
        watchdog_ms: stop the arm after this long without a motion command.
        safety: the run's box and per-step limits, applied to every ee_delta command.
        security: one SocketSecurity for every socket, or a function of the address.
    """

    def __init__(
        self,
        ctx: zmq.Context,
        *,
        name: str,
        arm: ArmDriver | None = None,
        cameras: tuple[CameraDriver, ...] = (),
        state_address: str | None = None,
        command_address: str | None = None,
        frames_address: str | None = None,
        state_hz: float = 100.0,
        watchdog_ms: float = 120.0,
        safety: SafetyConfig | None = None,
        security: SocketSecurity | SecurityFor | None = None,
    ) -> None:
        if arm is not None and (state_address is None or command_address is None):
            raise ValueError(f"{name}: an arm needs state_address and command_address")
        if cameras and frames_address is None:
            raise ValueError(f"{name}: cameras need frames_address")
        self.name = name
        self.arm = arm
        self.cameras = cameras
        self.stats = ServerStats()
        self.safety = safety if safety is not None else SafetyConfig()
        self._box_min = np.asarray(self.safety.workspace_min_m, dtype=np.float64)
        self._box_max = np.asarray(self.safety.workspace_max_m, dtype=np.float64)
        self._estop_by = ""
        self._state_period_ns = int(1e9 / state_hz)
        self._watchdog_ns = int(watchdog_ms * 1e6)
        self._estop = False
        self._moving = False
        self._watchdog_tripped = False
        self._last_motion_ns = 0
        self._next_state_ns = 0
        def sec(address: str) -> SocketSecurity | None:
            return security(address) if callable(security) else security

        self._state_pub = self._cmd = self._frame_pub = None
        try:
            if arm is not None:
                assert state_address is not None and command_address is not None
                self._state_pub = Publisher(ctx, state_address, name,
                                            security=sec(state_address))
                self._cmd = Replier(ctx, command_address, name, security=sec(command_address))
            if cameras:
                assert frames_address is not None
                self._frame_pub = Publisher(ctx, frames_address, name,
                                            security=sec(frames_address))
        except BaseException:
            self.close()
            raise

    # -- loop ---------------------------------------------------------------------------
    def serve(self, stop: threading.Event) -> None:
        """Run until `stop` is set. Drivers must already be connected."""
        log.info("%s: serving (arm=%s, cameras=%s)", self.name,
                 self.arm.spec.name if self.arm else None, [c.spec.name for c in self.cameras])
        while not stop.is_set():
            self.step(time.monotonic_ns())
        if self.arm is not None:
            self.arm.stop()

    def step(self, now_ns: int) -> None:
        """One loop iteration (public so tests can drive the server deterministically)."""
        if self.arm is not None:
            self.arm.tick(now_ns)
            # Commands that queued up while the loop was busy (a render, a GC pause) count as
            # arrived: handle them before judging the watchdog, or a slow loop would stop an
            # arm whose actor is perfectly alive.
            self._serve_commands(0.0)
            self._check_watchdog(time.monotonic_ns())
            if now_ns >= self._next_state_ns:
                self._publish_state()
                self._next_state_ns = max(self._next_state_ns + self._state_period_ns, now_ns)
        for cam in self.cameras:
            frame = cam.poll(now_ns)
            if frame is not None and self._frame_pub is not None:
                arrays = {"image": frame.image}
                if frame.depth_mm is not None:
                    arrays["depth_mm"] = frame.depth_mm
                self._frame_pub.publish(
                    "camera_frame",
                    {"camera": frame.camera, "stamp_ns": frame.stamp_ns,
                     "frame_index": frame.frame_index},
                    arrays,
                )
                self.stats.frames[frame.camera] = self.stats.frames.get(frame.camera, 0) + 1
        if self._cmd is not None:
            wait = min(_MAX_POLL_S,
                       max(0.0, (self._next_state_ns - time.monotonic_ns()) / 1e9))
            self._serve_commands(wait)
        else:
            time.sleep(0.001)  # camera-only process: nothing to wait on but the next frame

    def _serve_commands(self, timeout_s: float) -> None:
        assert self._cmd is not None
        req = self._cmd.poll(timeout_s)
        while req is not None:
            self._handle(*req)
            req = self._cmd.poll(0.0)

    def _check_watchdog(self, now_ns: int) -> None:
        assert self.arm is not None
        if self._moving and now_ns - self._last_motion_ns > self._watchdog_ns:
            self.arm.stop()
            self._moving = False
            self._watchdog_tripped = True
            self.stats.watchdog_trips += 1
            log.warning("%s: watchdog: no motion command for %.0f ms; arm stopped",
                        self.name, (now_ns - self._last_motion_ns) / 1e6)

    def _publish_state(self) -> None:
        assert self.arm is not None and self._state_pub is not None
        s = self.arm.read()
        body: dict[str, Any] = {
            "stamp_ns": s.stamp_ns,
            "estop_by": self._estop_by,
            "gripper_width_m": float(s.gripper_width_m),
            "stopped": bool(s.stopped or not self._moving),
            "estop": self._estop,
            "error": s.error,
            "watchdog_tripped": self._watchdog_tripped,
        }
        if s.task:
            body["task"] = s.task
        if s.task_success is not None:
            body["task_success"] = bool(s.task_success)
        arrays = {"joint_pos_rad": s.joint_pos_rad, "joint_vel_rad_s": s.joint_vel_rad_s,
                  "ee_pos_m": s.ee_pos_m, "ee_quat_wxyz": s.ee_quat_wxyz}
        if s.object_state is not None:
            arrays["object_state"] = s.object_state
        self._state_pub.publish("arm_state", body, arrays)
        self.stats.states += 1

    # -- commands -----------------------------------------------------------------------
    def _handle(self, identity: RoutingId, msg: Message) -> None:
        assert self.arm is not None and self._cmd is not None
        if msg.type != "arm_command":
            self._refuse(identity, msg, "wrong_type", f"expected arm_command, got {msg.type}")
            return
        cmd = ArmCommand.from_message(msg)
        command = cmd.command
        self.stats.commands += 1
        try:
            ok, reason, data, arrays = self._dispatch(cmd, msg)
        except Exception as e:  # a driver fault must reach the caller, not kill the loop
            log.exception("%s: command %s failed", self.name, command)
            self._refuse(identity, msg, "driver_error", f"{type(e).__name__}: {e}")
            return
        if not ok:
            self.stats.refused += 1
        self._cmd.reply(identity, msg, ok, reason, data, arrays)

    def _refuse(self, identity: RoutingId, msg: Message, reason: str, detail: str) -> None:
        assert self._cmd is not None
        self.stats.refused += 1
        log.warning("%s: refused %s from %s: %s", self.name, msg.type, _who(msg), detail)
        self._cmd.reply(identity, msg, False, reason, {"detail": detail})

    def _dispatch(
        self, cmd: ArmCommand, msg: Message
    ) -> tuple[bool, str, dict[str, Any] | None, dict[str, np.ndarray] | None]:
        arm = self.arm
        assert arm is not None
        command = cmd.command
        now = time.monotonic_ns()
        if command == "estop":
            arm.stop()
            self._estop = True
            self._moving = False
            reason = cmd.reason or ""
            self._estop_by = _who(msg) + (f" for {reason}" if reason else "")
            log.warning("%s: E-STOP latched by %s", self.name, self._estop_by)
            return True, "", {"estop": True}, None
        if command == "estop_release":
            self._estop = False
            self._estop_by = ""
            reason = cmd.reason or ""
            log.warning("%s: e-stop released by %s%s", self.name, _who(msg),
                        f" for {reason}" if reason else "")
            return True, "", {"estop": False}, None
        if command == "stop":
            arm.stop()
            self._moving = False
            return True, "", None, None
        if command == "status":
            return True, "", {"estop": self._estop, "moving": self._moving,
                              "watchdog_tripped": self._watchdog_tripped,
                              "watchdog_trips": self.stats.watchdog_trips,
                              "motions": self.stats.motions,
                              "resets": self.stats.resets,
                              "task_switches": self.stats.task_switches,
                              "description": arm.description}, None
        if command == "expert_action":
            action = arm.expert_action()
            if action is None:
                return False, "unsupported", {"detail": "this arm has no scripted expert"}, None
            return True, "", None, {"action": np.asarray(action, dtype=np.float32)}
        if command == "continue_task":
            # Reset-free episode start: no motion, nothing reset; only the task changes.
            task = cmd.task
            if not task:
                return False, "missing_field", {"detail": "continue_task needs a task name"}, None
            arm.continue_task(task)
            self.stats.task_switches += 1
            return True, "", {"description": arm.description}, None
        if command == "clear_error":
            arm.clear_error()
            return True, "", None, None
        # Everything below moves the robot.
        if self._estop:
            return False, "estop_latched", {"detail": "release the e-stop first"}, None
        if command == "ee_delta":
            if cmd.delta_xyz_m is None or cmd.gripper_close is None:
                return False, "missing_field", {"detail": "ee_delta needs delta_xyz_m and "
                                                "gripper_close"}, None
            applied = arm.command(self._within_limits(EeDeltaCommand(
                delta_xyz_m=np.asarray(cmd.delta_xyz_m, dtype=np.float64),
                delta_yaw_rad=float(cmd.delta_yaw_rad or 0.0),
                gripper_close=float(cmd.gripper_close),
            )))
            self._moving = True
            self._watchdog_tripped = False
            self._last_motion_ns = now
            self.stats.motions += 1
            return True, "", {"delta_yaw_rad": applied.delta_yaw_rad,
                              "gripper_close": applied.gripper_close}, \
                {"delta_xyz_m": np.asarray(applied.delta_xyz_m, dtype=np.float64)}
        if command == "home":
            arm.home()
            # A driver-run motion, not a streamed one: the watchdog must not cut it short.
            self._moving = False
            self.stats.motions += 1
            return True, "", None, None
        if command == "reset":
            arm.reset_task(cmd.seed)
            self.stats.resets += 1
            self._moving = False
            self._watchdog_tripped = False
            return True, "", {"description": arm.description}, None
        # The spec's choices (ARM_COMMANDS) refused any other command on arrival, so only a
        # command added there without a branch here can land on this line.
        return False, "not_implemented", {"detail": f"command {command!r} is in ARM_COMMANDS "
                                          "but this driver server has no branch for it"}, None

    def _within_limits(self, cmd: EeDeltaCommand) -> EeDeltaCommand:
        """`cmd` cut to the run's per-step limits and to the box around the arm's position
        now (a target outside the box stops at its wall; an arm already outside may only
        move back toward it)."""
        assert self.arm is not None
        limits = self.safety
        step = np.clip(cmd.delta_xyz_m, -limits.max_step_m, limits.max_step_m)
        ee = np.asarray(self.arm.read().ee_pos_m, dtype=np.float64)
        lo = np.minimum(self._box_min, ee)  # outside the box: no further out
        hi = np.maximum(self._box_max, ee)
        delta = np.clip(ee + step, lo, hi) - ee
        yaw = float(np.clip(cmd.delta_yaw_rad, -limits.max_yaw_step_rad,
                            limits.max_yaw_step_rad))
        if not np.array_equal(delta, cmd.delta_xyz_m) or yaw != cmd.delta_yaw_rad:
            self.stats.clipped += 1
        return EeDeltaCommand(delta_xyz_m=delta, delta_yaw_rad=yaw,
                              gripper_close=float(np.clip(cmd.gripper_close, 0.0, 1.0)))

    def close(self) -> None:
        for sock in (self._state_pub, self._cmd, self._frame_pub):
            if sock is not None:
                sock.close()


def _who(msg: Message) -> str:
    """Who sent `msg`: the authenticated identity, with the sender's own name for detail."""
    if msg.peer is None:
        return f"{msg.sender} (unauthenticated)"
    return msg.peer if msg.peer == msg.sender else f"{msg.peer}/{msg.sender}"
