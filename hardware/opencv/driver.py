"""USB/UVC cameras and video files through cv2.VideoCapture.

A capture thread reads as fast as the device delivers and keeps only the newest frame
(latest-frame semantics: a slow consumer never sees a growing backlog). A video file is
paced at the configured fps, so it behaves like a live camera, and loops if asked.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import cv2
import numpy as np

from hardware.base import CameraDriver, CameraSpec, Frame, FrameBuffer
from hardware.registry import driver
from robolearn.config.hardware import CameraIntrinsics
from robolearn.errors import DeviceNotConnected

log = logging.getLogger(__name__)


@driver("opencv")
class OpenCVCamera(CameraDriver):
    """Args:
        name: operator-facing camera id.
        source: device index, /dev/videoN path, or a video file path.
        width, height: output size after resize, px.
        fps: requested capture rate; for files, the playback rate.
        exposure: manual exposure in the backend's units, or None for auto.
        loop: for a file, restart at the end instead of ending the stream.
        intrinsics: calibrated intrinsics of the published frames, reported in `spec`.
    """

    def __init__(
        self,
        name: str,
        source: str | int,
        *,
        width: int = 84,
        height: int = 84,
        fps: float = 30.0,
        exposure: float | None = None,
        loop: bool = True,
        intrinsics: CameraIntrinsics | None = None,
    ) -> None:
        self._name = name
        self._intrinsics = intrinsics
        self._source = source
        self._size = (width, height)
        self._fps = fps
        self._exposure = exposure
        self._loop = loop
        self._is_file = isinstance(source, str) and Path(source).is_file()
        self._cap: cv2.VideoCapture | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._frames = FrameBuffer(f"{name} (opencv)")
        self._index = 0  # written by the capture thread only
        self.error = ""

    @property
    def ended(self) -> bool:
        """The stream stopped (end of a non-looping file, or a failed read)."""
        return self._frames.ended

    @property
    def spec(self) -> CameraSpec:
        return CameraSpec(name=self._name, kind="opencv", width=self._size[0],
                          height=self._size[1], fps=self._fps, intrinsics=self._intrinsics)

    def connect(self) -> None:
        src: str | int = self._source
        if isinstance(src, str) and src.isdigit():
            src = int(src)
        cap = cv2.VideoCapture(src)
        if not cap.isOpened():
            raise DeviceNotConnected(
                f"{self._name} (opencv {self._source!r}): cannot open; check the device index "
                "or path and that no other process holds the camera"
            )
        if not self._is_file:
            cap.set(cv2.CAP_PROP_FPS, self._fps)
            if self._exposure is not None:
                cap.set(cv2.CAP_PROP_AUTO_EXPOSURE, 1)  # V4L2: 1 = manual
                cap.set(cv2.CAP_PROP_EXPOSURE, self._exposure)
        self._cap = cap
        self._stop.clear()
        self._thread = threading.Thread(target=self._capture, name=f"cam-{self._name}",
                                        daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def _capture(self) -> None:
        assert self._cap is not None
        period_ns = int(1e9 / self._fps)
        next_ns = time.monotonic_ns()
        while not self._stop.is_set():
            ok, bgr = self._cap.read()
            stamp = time.monotonic_ns()
            if not ok:
                if self._is_file and self._loop:
                    self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                    ok, bgr = self._cap.read()
                if not ok:
                    self.error = "end of stream" if self._is_file else "read failed"
                    log.warning("%s: capture stopped: %s", self._name, self.error)
                    self._frames.end()
                    return
            if (bgr.shape[1], bgr.shape[0]) != self._size:
                bgr = cv2.resize(bgr, self._size, interpolation=cv2.INTER_AREA)
            rgb = np.ascontiguousarray(bgr[:, :, ::-1])
            self._index += 1
            self._frames.put(Frame(camera=self._name, image=rgb, stamp_ns=stamp,
                                   frame_index=self._index))
            if self._is_file:  # a live device paces itself; a file must be paced
                next_ns += period_ns
                delay = (next_ns - time.monotonic_ns()) / 1e9
                if delay > 0:
                    self._stop.wait(delay)
                else:
                    next_ns = time.monotonic_ns()

    def _require(self) -> None:
        if self._cap is None:
            raise DeviceNotConnected(f"{self._name} (opencv): used before connect()")

    def poll(self, now_ns: int) -> Frame | None:
        self._require()
        return self._frames.poll()

    def wait_frame(self, timeout_s: float) -> Frame | None:
        self._require()
        return self._frames.wait(timeout_s)

    def latest(self, max_age_ms: float) -> Frame:
        self._require()
        return self._frames.latest(max_age_ms)
