"""Fake vendor SDKs for the driver tests: the only fakes in the suite, at the SDK boundary.

Each fake mirrors the real SDK's names and signatures (checked against pylibfranka 0.21.3,
ur_rtde 1.6.5, xarm-python-sdk 1.18.4, pyrealsense2 2.59) and records every call as
(name, args, kwargs) in `world.calls`, so tests assert the exact calls a driver makes. The
arm is a point that integrates the commanded TCP velocity over a fixed 10 ms per read: tests
check directions and limits, never timing.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import numpy as np

_DT_S = 0.01


@dataclass
class World:
    """The state behind one fake SDK: the arm, failure switches and the call log."""

    pos_m: np.ndarray = field(default_factory=lambda: np.array([0.45, 0.0, 0.30]))
    vel: np.ndarray = field(default_factory=lambda: np.zeros(4))
    calls: list[tuple[str, tuple, dict]] = field(default_factory=list)
    fail_connects: int = 0  # the next N connection attempts fail
    connected: bool = True
    fault: bool = False  # protective stop / reflex / error code
    estop: bool = False
    spacemouse: Any = None  # the fake SpaceMouse's current SpaceMouseState
    reads: int = 0  # SpaceMouse read() calls
    gripper_gate: threading.Event | None = None  # set: gripper moves block until it is set

    def log(self, name: str, *args: Any, **kwargs: Any) -> None:
        self.calls.append((name, args, kwargs))

    def names(self) -> list[str]:
        return [c[0] for c in self.calls]

    def last(self, name: str) -> tuple[tuple, dict]:
        for n, args, kwargs in reversed(self.calls):
            if n == name:
                return args, kwargs
        raise AssertionError(f"{name} was never called; calls: {self.names()}")

    def integrate(self) -> None:
        if not self.fault:
            self.pos_m = self.pos_m + self.vel[:3] * _DT_S

    def connect_attempt(self) -> bool:
        if self.fail_connects > 0:
            self.fail_connects -= 1
            return False
        self.connected = True
        return True


# ----------------------------------------------------------------------------- ur_rtde
class _URPart:
    kind = ""

    def __init__(self, world: World, *args: Any) -> None:
        self.w = world
        world.log(f"{self.kind}.__init__", *args)

    def isConnected(self) -> bool:  # noqa: N802 - the SDK's name
        return self.w.connected

    def disconnect(self) -> None:
        self.w.log(f"{self.kind}.disconnect")


def fake_ur_sdk(world: World) -> SimpleNamespace:
    """rtde_control / rtde_receive / rtde_io / dashboard_client as one namespace."""

    class RTDEReceiveInterface(_URPart):
        kind = "recv"

        def __init__(self, hostname: str, frequency: float = -1.0) -> None:
            super().__init__(world, hostname, frequency)
            if not world.connect_attempt():
                raise RuntimeError("RTDEReceiveInterface: connection refused")

        def getActualTCPPose(self) -> list[float]:  # noqa: N802
            world.integrate()
            return [*world.pos_m.tolist(), math.pi, 0.0, 0.0]

        def getActualQ(self) -> list[float]:  # noqa: N802
            return [0.0, -1.57, 1.57, -1.57, -1.57, 0.0]

        def getActualQd(self) -> list[float]:  # noqa: N802
            return [0.0] * 6

        def isProtectiveStopped(self) -> bool:  # noqa: N802
            return world.fault

        def isEmergencyStopped(self) -> bool:  # noqa: N802
            return world.estop

    class RTDEControlInterface(_URPart):
        kind = "ctrl"

        def __init__(self, hostname: str, frequency: float = -1.0) -> None:
            super().__init__(world, hostname, frequency)

        def setWatchdog(self, min_frequency: float = 10.0) -> bool:  # noqa: N802
            world.log("ctrl.setWatchdog", min_frequency)
            return True

        def kickWatchdog(self) -> bool:  # noqa: N802
            return True  # every tick: not logged, it would drown the log

        def speedL(self, xd: list[float], acceleration: float = 0.25,  # noqa: N802
                   time: float = 0.0) -> bool:
            world.log("ctrl.speedL", xd, acceleration, time)
            world.vel = np.array([xd[0], xd[1], xd[2], xd[5]])
            return True

        def speedStop(self, a: float = 10.0) -> bool:  # noqa: N802
            world.log("ctrl.speedStop", a)
            world.vel = np.zeros(4)
            return True

        def moveL(self, pose: list[float], speed: float = 0.25,  # noqa: N802
                  acceleration: float = 1.2, asynchronous: bool = False) -> bool:
            world.log("ctrl.moveL", pose, speed, acceleration, asynchronous)
            world.pos_m = np.array(pose[:3])
            return True

        def isProgramRunning(self) -> bool:  # noqa: N802
            world.log("ctrl.isProgramRunning")
            return False

        def reuploadScript(self) -> bool:  # noqa: N802
            world.log("ctrl.reuploadScript")
            return True

    class RTDEIOInterface(_URPart):
        kind = "io"

        def __init__(self, hostname: str) -> None:
            super().__init__(world, hostname)

        def setToolDigitalOut(self, output_id: int, signal_level: bool) -> bool:  # noqa: N802
            world.log("io.setToolDigitalOut", output_id, signal_level)
            return True

    class DashboardClient(_URPart):
        kind = "dash"

        def __init__(self, hostname: str) -> None:
            super().__init__(world, hostname)

        def connect(self) -> None:
            world.log("dash.connect")

        def closeSafetyPopup(self) -> None:  # noqa: N802
            world.log("dash.closeSafetyPopup")

        def unlockProtectiveStop(self) -> None:  # noqa: N802
            world.log("dash.unlockProtectiveStop")
            world.fault = False

    return SimpleNamespace(RTDEControlInterface=RTDEControlInterface,
                           RTDEReceiveInterface=RTDEReceiveInterface,
                           RTDEIOInterface=RTDEIOInterface, DashboardClient=DashboardClient)


# ----------------------------------------------------------------------------- xarm
def fake_xarm_sdk(world: World) -> SimpleNamespace:
    class XArmAPI:
        def __init__(self, port: str | None = None, is_radian: bool = False,
                     do_not_open: bool = False) -> None:
            world.log("XArmAPI", port, is_radian=is_radian, do_not_open=do_not_open)
            self._open = False

        def connect(self) -> None:
            world.log("connect")
            self._open = world.connect_attempt()

        def disconnect(self) -> None:
            world.log("disconnect")
            self._open = False

        @property
        def connected(self) -> bool:
            return self._open and world.connected

        @property
        def position(self) -> list[float]:
            world.integrate()
            return [*(world.pos_m * 1000).tolist(), math.pi, 0.0, 0.0]

        @property
        def angles(self) -> list[float]:
            return [0.0] * 7

        @property
        def realtime_joint_speeds(self) -> list[float]:
            return [0.0] * 7

        @property
        def error_code(self) -> int:
            return 31 if world.fault else 0

        def clean_warn(self) -> int:
            world.log("clean_warn")
            return 0

        def clean_error(self) -> int:
            world.log("clean_error")
            world.fault = False
            return 0

        def motion_enable(self, enable: bool = True, servo_id: int | None = None) -> int:
            world.log("motion_enable", enable=enable)
            return 0

        def set_mode(self, mode: int = 0, detection_param: int = 0) -> int:
            world.log("set_mode", mode)
            return 0

        def set_state(self, state: int = 0) -> int:
            world.log("set_state", state)
            return 0

        def set_gripper_mode(self, mode: int) -> int:
            world.log("set_gripper_mode", mode)
            return 0

        def set_gripper_enable(self, enable: bool) -> int:
            world.log("set_gripper_enable", enable)
            return 0

        def get_gripper_position(self) -> tuple[int, float]:
            return 0, 850.0

        def set_gripper_position(self, pos: float, wait: bool = False, speed: Any = None,
                                 auto_enable: bool = False, timeout: Any = None) -> int:
            world.log("set_gripper_position", pos, wait=wait)
            return 0

        def vc_set_cartesian_velocity(self, speeds: list[float], is_radian: bool | None = None,
                                      is_tool_coord: bool = False, duration: float = -1) -> int:
            world.log("vc_set_cartesian_velocity", speeds, is_radian=is_radian,
                      is_tool_coord=is_tool_coord, duration=duration)
            world.vel = np.array([speeds[0], speeds[1], speeds[2], speeds[5]]) / \
                np.array([1000, 1000, 1000, 1])
            return 0

        def set_position(self, **kwargs: Any) -> int:
            world.log("set_position", **kwargs)
            world.pos_m = np.array([kwargs["x"], kwargs["y"], kwargs["z"]]) / 1000
            return 0

    return SimpleNamespace(XArmAPI=XArmAPI)


# ----------------------------------------------------------------------------- pylibfranka
class _Errors:
    def __init__(self, active: bool) -> None:
        self.active = active

    def __bool__(self) -> bool:
        return self.active

    def __str__(self) -> str:
        return "[cartesian_reflex]" if self.active else "[]"


def fake_franka_sdk(world: World) -> SimpleNamespace:
    class NetworkException(Exception):
        pass

    class ControlException(Exception):
        pass

    class Duration:
        def to_sec(self) -> float:
            return 0.001

    def robot_state() -> SimpleNamespace:
        t = np.eye(4)
        t[:3, :3] = np.diag([1.0, -1.0, -1.0])  # gripper down
        t[:3, 3] = world.pos_m
        return SimpleNamespace(O_T_EE=t.T.ravel().tolist(), q=[0.0] * 7, dq=[0.0] * 7,
                               current_errors=_Errors(world.fault), time=Duration())

    class CartesianVelocities:
        def __init__(self, o_dp_ee: list[float]) -> None:
            self.O_dP_EE = list(o_dp_ee)
            self.motion_finished = False

    class ActiveControl:
        def readOnce(self) -> tuple[SimpleNamespace, Duration]:  # noqa: N802
            time.sleep(0.001)  # libfranka delivers a state every millisecond
            if not world.connected:
                raise NetworkException("libfranka: UDP receive: timeout")
            if world.fault:
                raise ControlException("libfranka: Move command aborted: cartesian_reflex")
            world.pos_m = world.pos_m + world.vel[:3] * 0.001
            return robot_state(), Duration()

        def writeOnce(self, cmd: CartesianVelocities) -> None:  # noqa: N802
            v = cmd.O_dP_EE
            world.vel = np.array([v[0], v[1], v[2], v[5]])
            world.writes.append((list(v), cmd.motion_finished))

    class Robot:
        def __init__(self, robot_ip_address: str, realtime_config: Any) -> None:
            world.log("Robot", robot_ip_address, realtime_config)
            if not world.connect_attempt():
                raise NetworkException("libfranka: Connection refused")

        def read_once(self) -> SimpleNamespace:
            if not world.connected:
                raise NetworkException("libfranka: UDP receive: timeout")
            return robot_state()

        def start_cartesian_velocity_control(self, mode: Any) -> ActiveControl:
            world.log("start_cartesian_velocity_control", mode)
            return ActiveControl()

        def automatic_error_recovery(self) -> None:
            world.log("automatic_error_recovery")
            world.fault = False

    class Gripper:
        def __init__(self, host: str) -> None:
            world.log("Gripper", host)
            self.width = 0.08

        def read_once(self) -> SimpleNamespace:
            return SimpleNamespace(width=self.width, max_width=0.08, is_grasped=False)

        def move(self, width: float, speed: float) -> bool:
            world.log("Gripper.move", width, speed)
            if world.gripper_gate is not None:
                world.gripper_gate.wait(5.0)
            self.width = width
            return True

        def grasp(self, width: float, speed: float, force: float, epsilon_inner: float = 0.005,
                  epsilon_outer: float = 0.005) -> bool:
            world.log("Gripper.grasp", width, speed, force, epsilon_inner, epsilon_outer)
            self.width = 0.03
            return True

    world.writes = []  # 1 kHz writes: kept apart from calls
    return SimpleNamespace(
        Robot=Robot, Gripper=Gripper, CartesianVelocities=CartesianVelocities,
        NetworkException=NetworkException, ControlException=ControlException,
        RealtimeConfig=SimpleNamespace(kEnforce="kEnforce", kIgnore="kIgnore"),
        ControllerMode=SimpleNamespace(JointImpedance="JointImpedance",
                                       CartesianImpedance="CartesianImpedance"),
    )


# ----------------------------------------------------------------------------- pyrealsense2
def fake_realsense_sdk(world: World, serials: tuple[str, ...] = ("123",),
                       stamp_age_ms: float = 30.0, now_ms: float = 1e6) -> SimpleNamespace:
    """Frames are stamped `stamp_age_ms` before the fake wall clock `now_ms`."""

    class Frame:
        def __init__(self, data: np.ndarray, number: int, kind: str = "color") -> None:
            self._data = data
            self._number = number
            self.kind = kind

        def __bool__(self) -> bool:
            return True

        def get_data(self) -> np.ndarray:
            if self.kind != "color":  # colour reads are every frame: not worth the log
                world.log(f"{self.kind}.get_data")
            return self._data

        def get_timestamp(self) -> float:
            return now_ms - stamp_age_ms

        def get_frame_timestamp_domain(self) -> str:
            return "global_time"

    class Frameset:
        """Depth as the sensor sees it is a ramp from 500 mm, 1 mm per column; aligned to
        colour (`align.process`) it is the same ramp shifted by one column, so a test can
        tell which one a driver published."""

        def __init__(self, n: int, w: int, h: int, depth: bool, aligned: bool = False) -> None:
            img = np.full((h, w, 3), n % 256, dtype=np.uint8)
            self.size = (n, w, h, depth)
            self._color = Frame(img, n)
            ramp = np.broadcast_to(500 + np.arange(w, dtype=np.uint16) + int(aligned), (h, w))
            kind = "aligned_depth" if aligned else "raw_depth"
            self._depth = Frame(np.array(ramp), n, kind) if depth else None

        def get_color_frame(self) -> Frame:
            return self._color

        def get_depth_frame(self) -> Frame | None:
            if self._depth is not None:
                world.log(f"{self._depth.kind}.get_depth_frame")
            return self._depth

    class config:  # noqa: N801 - the SDK's name
        def __init__(self) -> None:
            world.log("config")
            self.streams: list[tuple] = []

        def enable_device(self, serial: str) -> None:
            world.log("config.enable_device", serial)

        def enable_stream(self, *args: Any) -> None:
            world.log("config.enable_stream", *args)
            self.streams.append(args)

    class pipeline:  # noqa: N801
        def __init__(self) -> None:
            self.n = 0
            self.cfg: config | None = None

        def start(self, cfg: config) -> None:
            world.log("pipeline.start")
            self.cfg = cfg

        def stop(self) -> None:
            world.log("pipeline.stop")

        def try_wait_for_frames(self, timeout_ms: int = 5000) -> tuple[bool, Any]:
            time.sleep(0.01)
            assert self.cfg is not None
            _, _, w, h, _, _ = self.cfg.streams[0]
            self.n += 1
            return True, Frameset(self.n, w, h, depth=len(self.cfg.streams) > 1)

    class align:  # noqa: N801
        def __init__(self, align_to: str) -> None:
            world.log("align", align_to)

        def process(self, frames: Any) -> Any:
            world.log("align.process")
            n, w, h, depth = frames.size
            return Frameset(n, w, h, depth, aligned=True)

    class Device:
        def __init__(self, serial: str) -> None:
            self.serial = serial

        def get_info(self, info: str) -> str:
            return self.serial

    class context:  # noqa: N801
        def query_devices(self) -> list[Device]:
            return [Device(s) for s in serials]

    return SimpleNamespace(
        config=config, pipeline=pipeline, align=align, context=context,
        camera_info=SimpleNamespace(serial_number="serial_number"),
        stream=SimpleNamespace(color="color", depth="depth"),
        format=SimpleNamespace(rgb8="rgb8", z16="z16"),
        timestamp_domain=SimpleNamespace(hardware_clock="hardware_clock",
                                         global_time="global_time"),
    )


# ------------------------------------------------------------------------ pyspacemouse
@dataclass
class SpaceMouseState:
    """pyspacemouse.SpaceMouseState's fields (t, x, y, z, roll, pitch, yaw, buttons)."""

    t: float = -1.0
    x: float = 0.0
    y: float = 0.0
    z: float = 0.0
    roll: float = 0.0
    pitch: float = 0.0
    yaw: float = 0.0
    buttons: list[int] = field(default_factory=lambda: [0, 0])


def fake_pyspacemouse(world: World, *, present: bool = True) -> SimpleNamespace:
    """pyspacemouse 2.x: `open(..., nonblocking, device, device_index)` returns a device whose
    `read()` gives the current state and `close()` releases it. The test moves the cap by
    editing `world.spacemouse` (a SpaceMouseState); `world.reads` counts read() calls so a
    test knows a button press was seen."""
    world.spacemouse = SpaceMouseState()
    world.reads = 0

    class SpaceMouseDevice:
        def read(self) -> SpaceMouseState:
            world.log("device.read")
            world.reads += 1
            s = world.spacemouse
            return SpaceMouseState(s.t, s.x, s.y, s.z, s.roll, s.pitch, s.yaw, list(s.buttons))

        def close(self) -> None:
            world.log("device.close")

    def open(callback: Any = None, dof_callback: Any = None, dof_callbacks: Any = None,
             button_callback: Any = None, button_callbacks: Any = None,
             nonblocking: bool = True, device: str | None = None,
             device_index: int = 0, device_spec: Any = None) -> SpaceMouseDevice:
        world.log("open", nonblocking=nonblocking, device=device, device_index=device_index)
        if not present:
            raise RuntimeError("No connected or supported devices found.")
        return SpaceMouseDevice()

    return SimpleNamespace(open=open)
