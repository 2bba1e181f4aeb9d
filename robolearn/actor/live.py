"""Live camera frames for operators: JPEG-encoded observations on the telemetry address.

The frames are the observation images the policy acted on, so an operator sees what the
robot sees. Each camera is capped at `actor.live_fps`; encoding happens after the step's
command was sent (the loop's idle time).
"""

from __future__ import annotations

import logging

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

    Args:
        publisher: the actor's telemetry publisher (owned by the loop thread).
        cameras: camera names in the observation.
        fps: per-camera cap; 0 disables live frames.
        quality: JPEG quality.
    """

    def __init__(self, publisher: Publisher, cameras: tuple[str, ...], fps: float,
                 quality: int) -> None:
        self._pub = publisher
        self._cameras = cameras
        self._period_ns = int(1e9 / fps) if fps > 0 else None
        self._quality = quality
        self._last_ns: dict[str, int] = {}
        self.sent = 0

    def publish(self, obs: dict[str, np.ndarray], episode: int, step: int,
                stamp_ns: int) -> int:
        """Publish the cameras that are due. Returns how many frames went out."""
        if self._period_ns is None:
            return 0
        n = 0
        for cam in self._cameras:
            last = self._last_ns.get(cam)
            # A 1 ms slack keeps a 10 fps cap from skipping every other frame of a 10 Hz loop
            # whose ticks land a hair early.
            if last is not None and stamp_ns - last < self._period_ns - 1_000_000:
                continue
            image = obs[cam]
            jpeg = encode_jpeg(image, self._quality)
            h, w = image.shape[:2]
            if self._pub.publish("live_frame", {
                "camera": cam, "width": int(w), "height": int(h), "episode": episode,
                "step": step, "stamp_ns": stamp_ns, "jpeg_size": len(jpeg),
            }, {"jpeg": pack_jpeg(jpeg)}):
                n += 1
            self._last_ns[cam] = stamp_ns
        self.sent += n
        return n
