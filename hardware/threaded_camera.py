"""The capture thread every streaming camera driver shares (OpenCV, RealSense).

A camera SDK hands out frames at the device's pace; the actor reads at its own. One thread
per camera takes each frame as it comes and keeps only the newest (latest-frame semantics:
a slow consumer never sees a growing backlog), numbering frames so a reader can tell a new
one from one it has had. A subclass holds only its SDK calls: open and release the device,
and grab one frame.
"""

from __future__ import annotations

import abc
import logging
import threading
from dataclasses import dataclass

import numpy as np

from robolearn.errors import DeviceNotConnected
from robolearn.hardware.base import CameraDriver, Frame, FrameBuffer

log = logging.getLogger(__name__)

_JOIN_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class Grabbed:
    """One frame as the SDK delivered it, converted to the published size.

    Attributes:
        image: uint8 [H, W, 3] RGB, C-contiguous.
        stamp_ns: capture time on this host's time.monotonic_ns() clock.
        depth_mm: uint16 [H, W] depth aligned to `image`, or None.
    """

    image: np.ndarray
    stamp_ns: int
    depth_mm: np.ndarray | None = None


class StreamEnded(Exception):
    """Raised by `_grab` when no frame will ever come (end of a file, a failed read); the
    message is the reason, reported as the camera's `error`."""


class ThreadedCamera(CameraDriver):
    """A camera read by a capture thread of its own.

    Subclasses implement `_open` (connect the device, raising DeviceNotConnected or
    ConfigError with what to do), `_grab` (one frame, or None for "nothing this time"), and
    `_release`; they may pace the thread with `_after_frame`. `error` says why frames are
    not coming (empty while they are).

    Args:
        name: the camera id frames carry.
        where: the camera as messages name it, e.g. "wrist_cam (realsense 123)".
    """

    def __init__(self, name: str, where: str) -> None:
        self._camera = name
        self._frames = FrameBuffer(where)
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._connected = False
        self._index = 0  # written by the capture thread only
        self.error = ""

    @abc.abstractmethod
    def _open(self) -> None:
        """Connect the device (SDK calls only; the thread is started by `connect`)."""

    @abc.abstractmethod
    def _grab(self) -> Grabbed | None:
        """Block until the device delivers the next frame (bounded by the SDK's timeout).

        Returns:
            The frame, or None when nothing usable came this time (the thread asks again).

        Raises:
            StreamEnded: the stream stopped for good.
        """

    @abc.abstractmethod
    def _release(self) -> None:
        """Release the device; called once by `close` after the thread has stopped."""

    def _after_frame(self) -> None:
        """Called on the capture thread after each published frame; a source that does not
        pace itself (a video file) waits here with `self._stop.wait(...)`."""

    @property
    def ended(self) -> bool:
        """The stream stopped (end of a non-looping file, or a failed read)."""
        return self._frames.ended

    def connect(self) -> None:
        self._open()
        self._connected = True
        self._stop.clear()
        self._thread = threading.Thread(target=self._capture, name=f"cam-{self._camera}",
                                        daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=_JOIN_TIMEOUT_S)
            self._thread = None
        if self._connected:
            self._connected = False
            self._release()

    def _capture(self) -> None:
        while not self._stop.is_set():
            try:
                grabbed = self._grab()
            except StreamEnded as exc:
                self.error = str(exc)
                log.warning("%s: capture stopped: %s", self._frames.where, self.error)
                self._frames.end()
                return
            if grabbed is None:
                continue
            self._index += 1
            self.error = ""
            self._frames.put(Frame(camera=self._camera, image=grabbed.image,
                                   stamp_ns=grabbed.stamp_ns, frame_index=self._index,
                                   depth_mm=grabbed.depth_mm))
            self._after_frame()

    def _require(self) -> None:
        if not self._connected:
            raise DeviceNotConnected(f"{self._frames.where}: used before connect(); open the "
                                     "camera with `with` or call connect()")

    def poll(self, now_ns: int) -> Frame | None:
        self._require()
        return self._frames.poll()

    def wait_frame(self, timeout_s: float) -> Frame | None:
        self._require()
        return self._frames.wait(timeout_s)

    def latest(self, max_age_ms: float) -> Frame:
        self._require()
        return self._frames.latest(max_age_ms)
