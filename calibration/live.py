"""Arm poses and camera frames read live from running drivers over the wire protocol.

Calibration never talks to a vendor SDK: it subscribes to the arm driver's state stream and
a camera's frame stream like any other process, so the same code calibrates the sim and a
real rig. A capture refuses to pair a pose with an image if the arm moved between them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import zmq
from scipy.spatial.transform import Rotation

from robolearn.config import RunConfig
from robolearn.errors import CalibrationError, ConfigError, StaleFrame
from robolearn.protocol import Subscriber
from robolearn.protocol.messages import ArmState, CameraFrame

log = logging.getLogger(__name__)

# A pose pair further apart than this means the arm moved while the image was taken.
_STILL_MM = 1.0
_STILL_DEG = 0.2

# What `LiveRig._newer` waits for: a stamped stream message, read through its view.
_Stamped = TypeVar("_Stamped", ArmState, CameraFrame)


def pose_of(state: ArmState) -> np.ndarray:
    """base_from_tcp (4x4) from an arm state (ee_pos_m, ee_quat_wxyz)."""
    w, x, y, z = (float(v) for v in state.ee_quat_wxyz)
    t = np.eye(4)
    t[:3, :3] = Rotation.from_quat([x, y, z, w]).as_matrix()
    t[:3, 3] = np.asarray(state.ee_pos_m, dtype=np.float64)
    return t


def frames_address(cfg: RunConfig, camera: str) -> str:
    """Where `camera`'s frames are published: sim cameras share the sim driver's stream,
    every other camera has its own address.

    Raises:
        ConfigError: the camera is not in the config.
    """
    cams = {c.name: c for c in cfg.cameras}
    if camera not in cams:
        raise ConfigError(f"no camera {camera!r} in the config; cameras: {sorted(cams)}")
    cam = cams[camera]
    return cfg.robot.frames_address if cam.kind == "sim" else cam.address


@dataclass(frozen=True)
class View:
    """One capture: the arm's TCP pose and, when a camera is read, the image seen there."""

    base_from_tcp: np.ndarray
    image: np.ndarray | None


class LiveRig:
    """Subscribe to a run's arm state and (optionally) one camera's frames.

    Args:
        cfg: the run config (addresses, CURVE settings).
        ctx: ZeroMQ context.
        camera: the camera to read frames from, or None for poses only.
        timeout_s: how long to wait for a fresh state or frame before giving up.
        identity: whose keys to connect with ("operator" for the CLI, "service").

    Raises:
        ConfigError: the camera is not in the config.
    """

    def __init__(self, cfg: RunConfig, ctx: zmq.Context, *, camera: str | None = None,
                 timeout_s: float = 5.0, identity: str = "operator") -> None:
        self.cfg = cfg
        self.camera = camera
        self.timeout_s = timeout_s
        self._state = Subscriber(ctx, cfg.robot.state_address, types=("arm_state",),
                                 security=cfg.socket_security(cfg.robot.state_address, identity),
                                 name="calibration-state")
        self._frames: Subscriber | None = None
        if camera is not None:
            try:
                address = frames_address(cfg, camera)
            except ConfigError:
                self.close()
                raise
            self._frames = Subscriber(ctx, address, types=("camera_frame",),
                                      security=cfg.socket_security(address, identity),
                                      name="calibration-frames")

    def close(self) -> None:
        self._state.close()
        if self._frames is not None:
            self._frames.close()

    def __enter__(self) -> LiveRig:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _newer(self, sub: Subscriber, view: type[_Stamped], since_ns: int, what: str,
               address: str, key: str | None = None) -> _Stamped:
        deadline = time.monotonic() + self.timeout_s
        while True:
            msg = sub.wait_new(view.SPEC.type, timeout_s=max(0.0, deadline - time.monotonic()),
                               key=key)
            seen = None if msg is None else view.from_message(msg)
            if seen is not None and seen.stamp_ns > since_ns:
                return seen
            if time.monotonic() >= deadline:
                raise StaleFrame(f"calibration: no new {what} from {address} within "
                                 f"{self.timeout_s:.0f} s; is the driver running?")

    def state(self, since_ns: int | None = None) -> ArmState:
        """An arm state stamped after `since_ns` (default: now).

        Raises:
            StaleFrame: none arrived in time.
        """
        since = time.monotonic_ns() if since_ns is None else since_ns
        return self._newer(self._state, ArmState, since, "arm state",
                           self.cfg.robot.state_address)

    def pose(self) -> np.ndarray:
        """The TCP pose (base_from_tcp, 4x4) in a state published after this call.

        Raises:
            CalibrationError: the driver reports an error.
            StaleFrame: no state in time.
        """
        state = self.state()
        if state.error:
            raise CalibrationError(f"calibration: the arm reports an error "
                                   f"({state.error}); clear it and retry")
        return pose_of(state)

    def capture(self) -> View:
        """The TCP pose and, with a camera, an image taken after it while the arm held still.

        Raises:
            CalibrationError: the arm moved during the capture or reports an error.
            StaleFrame: state or frames stopped arriving.
        """
        first = self.state()
        if self._frames is None:
            return View(pose_of(first), None)
        frame = self._newer(self._frames, CameraFrame, first.stamp_ns,
                            f"frame of {self.camera}", str(self.camera), key=self.camera)
        last = self.state(frame.stamp_ns)
        a, b = pose_of(first), pose_of(last)
        moved_mm = float(np.linalg.norm(a[:3, 3] - b[:3, 3])) * 1000
        moved_deg = float(np.degrees(Rotation.from_matrix(a[:3, :3].T @ b[:3, :3]).magnitude()))
        if moved_mm > _STILL_MM or moved_deg > _STILL_DEG:
            raise CalibrationError(
                f"calibration: the arm moved {moved_mm:.1f} mm / {moved_deg:.2f} deg while the "
                f"image was taken; hold it still and capture again")
        return View(a, np.asarray(frame.image).copy())


def capture_views(rig: LiveRig, count: int, wait_for_operator: Callable[[int], None], *,
                  on_view: Callable[[int, View], bool] | None = None,
                  max_attempts: int | None = None) -> list[View]:
    """Collect `count` views, asking the operator to pose the arm before each.

    Args:
        rig: where poses and frames come from.
        count: views to keep.
        wait_for_operator: called with the view index before each capture; returns once
            the arm is in place (the CLI waits for Enter).
        on_view: judge a capture; False drops it (board not seen) and asks again.
        max_attempts: give up after this many captures (default 3 x count).

    Raises:
        CalibrationError: too many captures were dropped.
    """
    views: list[View] = []
    attempts = 0
    limit = max_attempts or 3 * count
    while len(views) < count:
        if attempts >= limit:
            raise CalibrationError(f"calibration: only {len(views)} of {count} usable views "
                                   f"in {attempts} captures; nothing stored")
        attempts += 1
        wait_for_operator(len(views))
        try:
            view = rig.capture()
        except CalibrationError as e:
            log.warning("%s", e)
            continue
        if on_view is None or on_view(len(views), view):
            views.append(view)
    return views
