"""Lossless MP4 video for dataset interchange (PyAV), and reading any MP4 back to frames.

Exported datasets carry H.264 in RGB with quantiser 0 (libx264rgb): every pixel decodes
back exactly, so an export -> import round trip is identical. The store's own browser videos
stay lossy yuv420p (`robolearn.store.video`); these files are for tools, not browsers.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from robolearn.errors import DatasetError

log = logging.getLogger(__name__)

LOSSLESS_CODEC = "libx264rgb"
LOSSLESS_OPTIONS = {"qp": "0", "preset": "veryfast"}


def encode_lossless(path: Path, frames: Sequence[np.ndarray], fps: float) -> None:
    """Write uint8 [H, W, 3] RGB frames (at least one, one size) to a lossless MP4."""
    if len(frames) == 0:
        raise DatasetError(f"{path}: no frames to encode")
    height, width = frames[0].shape[:2]
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream(LOSSLESS_CODEC, rate=rate)
        stream.width, stream.height = width, height
        stream.pix_fmt = "rgb24"
        stream.options = dict(LOSSLESS_OPTIONS)
        for index, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            frame.pts = index
            frame.time_base = 1 / rate
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def decode_frames(path: Path) -> np.ndarray:
    """Every frame of an MP4 as uint8 [N, H, W, 3] RGB.

    Raises:
        DatasetError: the file is missing, truncated or not a video.
    """
    try:
        with av.open(str(path)) as container:
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    except (av.error.FFmpegError, OSError, IndexError) as exc:
        raise DatasetError(f"video {path}: cannot be decoded ({exc}); the file is missing, "
                           "truncated or not an MP4") from exc
    if not frames:
        raise DatasetError(f"video {path}: no frames")
    return np.stack(frames)
