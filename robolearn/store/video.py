"""Browser-playable H.264 MP4 encoding of an episode's camera frames (PyAV / libx264)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

log = logging.getLogger(__name__)

# Visually lossless for small robot-camera frames; "veryfast" keeps finish() short.
X264_OPTIONS = {"crf": "20", "preset": "veryfast"}


def encode_mp4(path: Path, frames: Sequence[np.ndarray], fps: float) -> None:
    """Write `frames` (each uint8 [H, W, 3] RGB) to an H.264 MP4 at `path`.

    yuv420p (what every browser decodes) needs even sizes, so odd heights/widths are
    padded by one row/column repeating the edge. `+faststart` moves the index to the front
    so a browser can start playing before the whole file has arrived.

    Args:
        path: output file; the container format is forced to mp4 whatever the suffix.
        frames: at least one frame; all the same shape.
        fps: playback rate in frames per second.
    """
    if len(frames) == 0:
        raise ValueError(f"{path}: no frames to encode")
    height, width = frames[0].shape[:2]
    pad_h, pad_w = height % 2, width % 2
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(
        str(path), mode="w", format="mp4", container_options={"movflags": "+faststart"}
    ) as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width = width + pad_w
        stream.height = height + pad_h
        stream.pix_fmt = "yuv420p"
        stream.options = dict(X264_OPTIONS)
        for index, image in enumerate(frames):
            if pad_h or pad_w:
                image = np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            frame.pts = index
            frame.time_base = 1 / rate
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
