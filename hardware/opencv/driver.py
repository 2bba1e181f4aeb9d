"""USB/UVC cameras and video files through cv2.VideoCapture.

The capture thread (`hardware.threaded_camera`) reads as fast as the device delivers and
keeps only the newest frame. A video file is paced at the configured fps, so it behaves like
a live camera, and loops if asked.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import cv2
import numpy as np

from robolearn.config.hardware import CameraIntrinsics
from robolearn.errors import DeviceNotConnected
from robolearn.hardware.base import CameraSpec
from robolearn.hardware.registry import driver
from robolearn.hardware.threaded_camera import Grabbed, StreamEnded, ThreadedCamera

log = logging.getLogger(__name__)


@driver("opencv")
class OpenCVCamera(ThreadedCamera):
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
        super().__init__(name, f"{name} (opencv)")
        self._name = name
        self._intrinsics = intrinsics
        self._source = source
        self._size = (width, height)
        self._fps = fps
        self._exposure = exposure
        self._loop = loop
        self._is_file = isinstance(source, str) and Path(source).is_file()
        self._cap: cv2.VideoCapture | None = None
        self._period_ns = int(1e9 / fps)
        self._next_ns = 0  # a file's next frame time; the capture thread's only

    @property
    def spec(self) -> CameraSpec:
        return CameraSpec(name=self._name, kind="opencv", width=self._size[0],
                          height=self._size[1], fps=self._fps, intrinsics=self._intrinsics)

    def _open(self) -> None:
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
        self._next_ns = time.monotonic_ns()

    def _release(self) -> None:
        assert self._cap is not None
        self._cap.release()
        self._cap = None

    def _grab(self) -> Grabbed:
        assert self._cap is not None
        ok, bgr = self._cap.read()
        stamp = time.monotonic_ns()
        if not ok:
            if self._is_file and self._loop:
                self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                ok, bgr = self._cap.read()
            if not ok:
                raise StreamEnded("end of stream" if self._is_file else "read failed")
        if (bgr.shape[1], bgr.shape[0]) != self._size:
            bgr = cv2.resize(bgr, self._size, interpolation=cv2.INTER_AREA)
        return Grabbed(image=np.ascontiguousarray(bgr[:, :, ::-1]), stamp_ns=stamp)

    def _after_frame(self) -> None:
        if not self._is_file:  # a live device paces itself; a file must be paced
            return
        self._next_ns += self._period_ns
        delay = (self._next_ns - time.monotonic_ns()) / 1e9
        if delay > 0:
            self._stop.wait(delay)
        else:
            self._next_ns = time.monotonic_ns()
