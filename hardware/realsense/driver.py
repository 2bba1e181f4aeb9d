"""An Intel RealSense camera through pyrealsense2: colour, optional depth aligned to colour,
selection by serial number.

The capture thread (`hardware.threaded_camera`) waits for each frameset and keeps only the
newest.
Each frame carries its capture time on this host's monotonic clock: the camera stamps frames
in milliseconds of the host's wall clock (global time domain), which is converted by
subtracting how long ago that was, so the actor sees the true age of what it acts on, not
the time the frame happened to reach this process.

Every pyrealsense2 call of the project is in this class.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np

from robolearn.config.hardware import RealsenseCameraConfig
from robolearn.errors import ConfigError, DeviceNotConnected
from robolearn.hardware.base import CameraSpec
from robolearn.hardware.registry import driver
from robolearn.hardware.threaded_camera import Grabbed, ThreadedCamera
from robolearn.hardware.vendor import import_sdk

log = logging.getLogger(__name__)

_WAIT_MS = 1000  # one wait_for_frames; a camera that sends nothing for this long is reported


@driver("realsense")
class RealsenseCamera(ThreadedCamera):
    """Args:
        cfg: stream size, rate, serial, output size, depth.
        sdk: the pyrealsense2 module or a fake with the same attributes; None imports it.
        wall_clock_ms: the host wall clock in ms (the camera's global time domain).
    """

    def __init__(
        self,
        cfg: RealsenseCameraConfig,
        *,
        sdk: Any | None = None,
        wall_clock_ms: Callable[[], float] = lambda: time.time() * 1000.0,
    ) -> None:
        self.cfg = cfg
        self._sdk = sdk
        self._wall_ms = wall_clock_ms
        self._pipeline: Any = None
        self._align: Any = None
        super().__init__(cfg.name, self.where)

    @property
    def where(self) -> str:
        return f"{self.cfg.name} (realsense {self.cfg.serial or 'any'})"

    @property
    def spec(self) -> CameraSpec:
        return CameraSpec(name=self.cfg.name, kind="realsense", width=self.cfg.output_width,
                          height=self.cfg.output_height, fps=float(self.cfg.fps),
                          intrinsics=self.cfg.intrinsics)

    def sdk(self) -> Any:
        if self._sdk is None:
            self._sdk = import_sdk("pyrealsense2", "realsense", self.where)
        return self._sdk

    def _open(self) -> None:
        rs = self.sdk()
        serials = [d.get_info(rs.camera_info.serial_number)
                   for d in rs.context().query_devices()]
        if self.cfg.serial is None and len(serials) != 1:
            raise ConfigError(f"{self.where}: {len(serials)} RealSense cameras connected "
                              f"({serials}); set `serial` to pick one")
        if self.cfg.serial is not None and self.cfg.serial not in serials:
            raise DeviceNotConnected(f"{self.where}: no camera with serial {self.cfg.serial}; "
                                     f"connected: {serials}")
        config = rs.config()
        config.enable_device(self.cfg.serial or serials[0])
        config.enable_stream(rs.stream.color, 0, self.cfg.width, self.cfg.height,
                             rs.format.rgb8, self.cfg.fps)
        if self.cfg.depth:
            config.enable_stream(rs.stream.depth, 0, self.cfg.width, self.cfg.height,
                                 rs.format.z16, self.cfg.fps)
            self._align = rs.align(rs.stream.color)
        pipeline = rs.pipeline()
        pipeline.start(config)
        self._pipeline = pipeline

    def _release(self) -> None:
        self._pipeline.stop()
        self._pipeline = None

    def _capture_stamp_ns(self, frame: Any) -> int:
        now_ns = time.monotonic_ns()
        rs = self.sdk()
        if frame.get_frame_timestamp_domain() == rs.timestamp_domain.hardware_clock:
            return now_ns  # a device clock unrelated to the host's: arrival is the best bound
        age_ms = max(0.0, self._wall_ms() - float(frame.get_timestamp()))
        return now_ns - int(age_ms * 1e6)

    def _grab(self) -> Grabbed | None:
        ok, frames = self._pipeline.try_wait_for_frames(_WAIT_MS)
        if not ok:
            self.error = f"no frames for {_WAIT_MS} ms"
            log.warning("%s: %s", self.where, self.error)
            return None
        if self._align is not None:
            frames = self._align.process(frames)
        color = frames.get_color_frame()
        if not color:
            return None
        stamp = self._capture_stamp_ns(color)
        rgb = np.asanyarray(color.get_data()).reshape(self.cfg.height, self.cfg.width, 3)
        out = (self.cfg.output_width, self.cfg.output_height)
        if (self.cfg.width, self.cfg.height) != out:
            rgb = cv2.resize(rgb, out, interpolation=cv2.INTER_AREA)
        depth = None
        if self._align is not None:
            d = frames.get_depth_frame()
            if not d:
                # With depth on, every frame carries it: a consumer of depth must never
                # get a colour image without the depth taken with it.
                self.error = "frameset without a depth frame; dropped"
                log.debug("%s: %s", self.where, self.error)
                return None
            depth = np.asanyarray(d.get_data()).reshape(self.cfg.height, self.cfg.width)
            if (self.cfg.width, self.cfg.height) != out:
                # Nearest, not area: averaging across an edge invents depths in between.
                depth = cv2.resize(depth, out, interpolation=cv2.INTER_NEAREST)
            depth = np.ascontiguousarray(depth, dtype=np.uint16)
        return Grabbed(image=np.ascontiguousarray(rgb), stamp_ns=stamp, depth_mm=depth)
