"""Live camera frames for operators: JPEG-encoded observations on the telemetry address.

The frames are the observation images the policy acted on, so an operator sees what the
robot sees. Each camera is capped at `actor.live_fps`. The control loop only hands the due
frames over: a thread of their own encodes and publishes them, so JPEG encoding never sits
between reading an observation and sending the command it leads to.
"""

from __future__ import annotations

import logging
import threading
import time

import cv2
import numpy as np

from robolearn.errors import ProtocolError
from robolearn.protocol import Publisher
from robolearn.protocol.messages import LIVE_JPEG_ROW_BYTES, LiveFrame

log = logging.getLogger(__name__)


def encode_jpeg(image: np.ndarray, quality: int) -> bytes:
    """RGB uint8 [H, W, 3] -> JPEG bytes."""
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:  # pragma: no cover - cv2 fails only on invalid input, checked by the spec
        raise ValueError(f"JPEG encoding failed for an image of shape {image.shape}")
    return buf.tobytes()


def pack_jpeg(jpeg: bytes) -> np.ndarray:
    """JPEG bytes -> zero-padded uint8 [rows, LIVE_JPEG_ROW_BYTES] (the wire layout)."""
    rows = max(1, -(-len(jpeg) // LIVE_JPEG_ROW_BYTES))
    out = np.zeros(rows * LIVE_JPEG_ROW_BYTES, dtype=np.uint8)
    out[:len(jpeg)] = np.frombuffer(jpeg, dtype=np.uint8)
    return out.reshape(rows, LIVE_JPEG_ROW_BYTES)


def jpeg_of(frame: LiveFrame) -> bytes:
    """The JPEG bytes of a received live_frame (`LiveFrame.from_message(msg)`).

    Raises:
        ProtocolError: ("bad_size") jpeg_size does not fit the array.
    """
    flat = frame.jpeg.reshape(-1)
    size = frame.jpeg_size
    if not 0 < size <= flat.size:
        raise ProtocolError("bad_size", f"live_frame: jpeg_size {size} outside (0, {flat.size}]")
    return flat[:size].tobytes()


class LiveFrames:
    """Publish each camera's observation as a live_frame at most `fps` times a second.

    `publish` (the control loop) picks the cameras that are due and hands their images to an
    encoder thread, which JPEG-encodes and publishes them; a camera's newer frame replaces
    one not yet encoded, so a slow encoder drops frames rather than falling behind. The
    publisher must be thread-safe (robolearn.protocol.Publisher is).

    Args:
        publisher: the actor's telemetry publisher.
        cameras: camera names in the observation.
        fps: per-camera cap; 0 disables live frames (and starts no thread).
        quality: JPEG quality.
    """

    def __init__(self, publisher: Publisher, cameras: tuple[str, ...], fps: float,
                 quality: int) -> None:
        self._pub = publisher
        self._cameras = cameras
        self._period_ns = int(1e9 / fps) if fps > 0 else None
        self._quality = quality
        self._last_ns: dict[str, int] = {}
        self.sent = 0  # frames published (by the encoder thread)
        # camera -> (image, episode, step, stamp_ns), the newest not yet encoded
        self._due: dict[str, tuple[np.ndarray, int, int, int]] = {}
        self._busy = False
        self._wake = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None
        if self._period_ns is not None:
            self._thread = threading.Thread(target=self._encode_loop, name="live-frames",
                                            daemon=True)
            self._thread.start()

    def publish(self, obs: dict[str, np.ndarray], episode: int, step: int,
                stamp_ns: int) -> int:
        """Hand the cameras that are due to the encoder. Returns how many were handed over.

        The images are kept by reference until encoded: the caller must not write into them
        (observations are the caller's own copies)."""
        if self._period_ns is None:
            return 0
        due = []
        for cam in self._cameras:
            last = self._last_ns.get(cam)
            # A 1 ms slack keeps a 10 fps cap from skipping every other frame of a 10 Hz loop
            # whose ticks land a hair early.
            if last is not None and stamp_ns - last < self._period_ns - 1_000_000:
                continue
            due.append(cam)
            self._last_ns[cam] = stamp_ns
        if due:
            with self._wake:
                for cam in due:
                    self._due[cam] = (obs[cam], episode, step, stamp_ns)
                self._wake.notify()
        return len(due)

    def _encode_loop(self) -> None:
        while True:
            with self._wake:
                while not self._due and not self._closed:
                    self._wake.wait()
                if self._closed:
                    return
                batch, self._due = self._due, {}
                self._busy = True
            try:
                for cam, (image, episode, step, stamp_ns) in batch.items():
                    self._send(cam, image, episode, step, stamp_ns)
            except Exception:  # never kill the thread: operators lose frames, not the robot
                log.exception("live frames: encoding or publishing failed; frames dropped")
            finally:
                with self._wake:
                    self._busy = False
                    self._wake.notify_all()

    def _send(self, cam: str, image: np.ndarray, episode: int, step: int,
              stamp_ns: int) -> None:
        jpeg = encode_jpeg(image, self._quality)
        h, w = image.shape[:2]
        if self._pub.publish("live_frame", {
            "camera": cam, "width": int(w), "height": int(h), "episode": episode,
            "step": step, "stamp_ns": stamp_ns, "jpeg_size": len(jpeg),
        }, {"jpeg": pack_jpeg(jpeg)}):
            self.sent += 1

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Wait until every frame handed over is published; False on timeout."""
        deadline = time.monotonic() + timeout_s
        with self._wake:
            while self._due or self._busy:
                left = deadline - time.monotonic()
                if left <= 0 or self._thread is None:
                    return not (self._due or self._busy)
                self._wake.wait(left)
        return True

    def close(self) -> None:
        """Stop the encoder (frames not yet published are dropped); before the publisher
        closes."""
        with self._wake:
            self._closed = True
            self._wake.notify_all()
        if self._thread is not None:
            self._thread.join(5.0)
