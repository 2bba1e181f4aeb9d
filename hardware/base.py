"""The driver interface every device implements.

A driver owns one device and knows nothing about ZeroMQ: `hardware.server.DriverServer`
exposes any set of drivers over the wire protocol. Drivers never print, never prompt and
never sleep to pace a loop; `command()` returns what was actually applied so the actor logs
the truth.
"""

from __future__ import annotations

import abc
import threading
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Self

import numpy as np

from robolearn.config.hardware import CameraIntrinsics
from robolearn.errors import StaleFrame


@dataclass(frozen=True)
class ArmSpec:
    """What an arm can do; available without hardware attached."""

    name: str
    kind: str
    num_joints: int
    workspace_min_m: np.ndarray
    workspace_max_m: np.ndarray
    max_step_m: float
    native_rate_hz: float


@dataclass(frozen=True)
class ArmState:
    joint_pos_rad: np.ndarray
    joint_vel_rad_s: np.ndarray
    ee_pos_m: np.ndarray
    ee_quat_wxyz: np.ndarray
    gripper_width_m: float
    stamp_ns: int
    stopped: bool = False
    error: str = ""
    task: str = ""
    task_success: bool | None = None
    object_state: np.ndarray | None = None  # privileged world state (sim only)


@dataclass(frozen=True)
class EeDeltaCommand:
    """End-effector delta in the base frame (metres, radians) plus gripper closure 0..1."""

    delta_xyz_m: np.ndarray
    delta_yaw_rad: float = 0.0
    gripper_close: float = 0.0


@dataclass(frozen=True)
class CameraSpec:
    name: str
    kind: str
    width: int
    height: int
    fps: float
    intrinsics: CameraIntrinsics | None = None  # calibrated, for the published frame size


@dataclass(frozen=True)
class Frame:
    camera: str
    image: np.ndarray  # [H, W, 3] uint8
    stamp_ns: int  # capture time, time.monotonic_ns()
    frame_index: int
    # [H, W] uint16 millimetres aligned to `image` (0 = no reading), from cameras that
    # measure depth and have it switched on; it travels as camera_frame's `depth_mm`.
    depth_mm: np.ndarray | None = None


def fresh(frame: Frame | None, max_age_ms: float, where: str) -> Frame:
    """`frame` if it is at most `max_age_ms` old (capture time on this host's monotonic clock).

    Raises:
        StaleFrame: no frame yet, or the newest one is too old.
    """
    if frame is None:
        raise StaleFrame(f"{where}: no frame captured yet")
    age_ms = (time.monotonic_ns() - frame.stamp_ns) / 1e6
    if age_ms > max_age_ms:
        raise StaleFrame(f"{where}: newest frame is {age_ms:.0f} ms old, limit "
                         f"{max_age_ms:.0f} ms")
    return frame


class FrameBuffer:
    """The newest frame of one capture thread, shared with readers (latest-frame semantics).

    One thread `put`s frames as the device delivers them and keeps nothing else, so a slow
    reader never sees a backlog; readers `poll` or `wait` for a frame they have not had yet,
    or take the newest one with `latest`. "Not had yet" is per buffer, not per reader: the
    driver has one consumer (its server loop).

    Args:
        where: the camera as error messages name it, e.g. "wrist_cam (opencv 0)".
    """

    def __init__(self, where: str) -> None:
        self.where = where
        self._cond = threading.Condition()
        self._last: Frame | None = None
        self._returned_index = 0
        self._ended = False

    @property
    def ended(self) -> bool:
        """True once the capture thread called `end()`: no new frame will come."""
        return self._ended

    def put(self, frame: Frame) -> None:
        """Make `frame` the newest and wake waiting readers.

        Raises:
            ValueError: its frame_index is not above the previous frame's (readers tell new
                frames from old by the index, so it must increase).
        """
        with self._cond:
            if self._last is not None and frame.frame_index <= self._last.frame_index:
                raise ValueError(f"{self.where}: frame_index {frame.frame_index} after "
                                 f"{self._last.frame_index}; indices must increase")
            self._last = frame
            self._ended = False
            self._cond.notify_all()

    def end(self) -> None:
        """The stream stopped (end of file, device gone): waiting readers return now."""
        with self._cond:
            self._ended = True
            self._cond.notify_all()

    def poll(self) -> Frame | None:
        """The newest frame if it was not returned before, else None; never blocks."""
        with self._cond:
            return self._take()

    def wait(self, timeout_s: float) -> Frame | None:
        """A frame not returned before, waiting up to `timeout_s`; None on timeout or once
        the stream has ended."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                frame = self._take()
                if frame is not None:
                    return frame
                left = deadline - time.monotonic()
                if left <= 0 or self._ended:
                    return None
                self._cond.wait(left)

    def latest(self, max_age_ms: float) -> Frame:
        """The newest frame whether returned before or not (see `fresh`).

        Raises:
            StaleFrame: no frame yet, or the newest is older than `max_age_ms`.
        """
        with self._cond:
            frame = self._last
        return fresh(frame, max_age_ms, self.where)

    def _take(self) -> Frame | None:
        frame = self._last
        if frame is None or frame.frame_index == self._returned_index:
            return None
        self._returned_index = frame.frame_index
        return frame


class _Device(abc.ABC):
    @abc.abstractmethod
    def connect(self) -> None: ...

    @abc.abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Self:
        self.connect()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class ArmDriver(_Device):
    """One arm. Motion commands are clipped to the driver's own limits (second line of defence
    behind the actor's safety filter)."""

    @property
    @abc.abstractmethod
    def spec(self) -> ArmSpec: ...

    @abc.abstractmethod
    def read(self) -> ArmState: ...

    @abc.abstractmethod
    def command(self, cmd: EeDeltaCommand) -> EeDeltaCommand:
        """Apply an end-effector delta; return the delta actually applied after clipping."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Stop all motion now (watchdog, e-stop). Must be safe to call repeatedly."""

    @abc.abstractmethod
    def home(self) -> None: ...

    def clear_error(self) -> None:
        """Clear a recoverable device error."""

    def reset_task(self, seed: int | None) -> None:
        """Start a new episode. Real arms go home; the sim also re-randomises its task."""
        self.home()

    def continue_task(self, task: str) -> None:
        """Start the next episode of a reset-free run on `task` without resetting anything:
        the world stays as the last episode left it. Real arms have nothing to do (the task
        lives in the actor's reward models); the sim switches its success test and expert."""

    def tick(self, now_ns: int) -> None:
        """Called by the server loop every iteration (the sim advances physics here)."""

    def expert_action(self) -> np.ndarray | None:
        """A scripted expert's next policy action, where the device has one (sim only)."""
        return None

    @property
    def description(self) -> str:
        return ""


class CameraDriver(_Device):
    @property
    @abc.abstractmethod
    def spec(self) -> CameraSpec: ...

    @abc.abstractmethod
    def poll(self, now_ns: int) -> Frame | None:
        """Return a frame not returned before, or None; never blocks."""

    @abc.abstractmethod
    def wait_frame(self, timeout_s: float) -> Frame | None:
        """Wait up to timeout_s for a new frame."""

    @abc.abstractmethod
    def latest(self, max_age_ms: float) -> Frame:
        """The newest frame.

        Raises:
            StaleFrame: the newest frame is older than max_age_ms (or there is none yet).
        """

