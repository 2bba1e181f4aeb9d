"""MP4 video for dataset interchange (PyAV): a streaming encoder, and decoding one span of
frames, or checking a whole file, without holding the file's frames in memory.

Exports default to ordinary yuv420p H.264 with a keyframe every other frame, as LeRobot's
own writer encodes (`g=2`): any decoder reads it, and a random frame costs at most one
extra decoded frame. `LOSSLESS` keeps every pixel (H.264 in RGB at quantiser 0), for
round trips that must be bit-exact; it decodes with the same decoders, files are larger.
The store's own browser videos are separate (`robolearn.store.video`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
import numpy as np

from robolearn.errors import DatasetError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VideoCodec:
    """How an export encodes its camera frames.

    Attributes:
        encoder: the FFmpeg encoder PyAV opens.
        pix_fmt: the stored pixel format (also written to LeRobot's info.json).
        options: encoder options; `g` is the keyframe interval in frames.
    """

    encoder: str
    pix_fmt: str
    options: dict[str, str] = field(default_factory=dict)

    @property
    def even_sizes_only(self) -> bool:
        # 4:2:0 chroma subsampling halves both axes; x264 refuses odd sizes.
        return self.pix_fmt == "yuv420p"


DEFAULT_CODEC = VideoCodec("libx264", "yuv420p", {"crf": "18", "g": "2", "preset": "veryfast"})
LOSSLESS_CODEC = VideoCodec("libx264rgb", "rgb24", {"qp": "0", "g": "2", "preset": "veryfast"})


class VideoWriter:
    """Append uint8 [N, H, W, 3] RGB frames to one MP4, episode after episode."""

    def __init__(self, path: Path, fps: float, height: int, width: int,
                 codec: VideoCodec = DEFAULT_CODEC) -> None:
        if codec.even_sizes_only and (height % 2 or width % 2):
            raise DatasetError(f"video {path}: {width}x{height} frames; {codec.pix_fmt} needs "
                               "an even width and height (export losslessly instead)")
        self._rate = Fraction(fps).limit_denominator(1001)
        self._container = av.open(str(path), mode="w", format="mp4")
        self._stream = self._container.add_stream(codec.encoder, rate=self._rate,
                                                  options=dict(codec.options))
        self._stream.width, self._stream.height = width, height
        self._stream.pix_fmt = codec.pix_fmt
        self.frames_written = 0

    def write(self, frames: np.ndarray) -> None:
        for image in frames:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            frame.pts = self.frames_written
            frame.time_base = 1 / self._rate
            self._container.mux(self._stream.encode(frame))
            self.frames_written += 1

    def close(self) -> None:
        try:
            self._container.mux(self._stream.encode(None))
        finally:
            self._container.close()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def _open(path: Path) -> av.container.InputContainer:
    try:
        return av.open(str(path))
    except (av.error.FFmpegError, OSError) as exc:
        raise DatasetError(f"video {path}: cannot be opened ({exc}); the file is missing, "
                           "truncated or not an MP4") from exc


def count_frames(path: Path) -> tuple[int, tuple[int, int]]:
    """Decode a whole MP4, keeping nothing, to prove it is whole.

    Returns:
        (frames, (height, width)).

    Raises:
        DatasetError: the file is missing, truncated or not a video.
    """
    count, size = 0, (0, 0)
    with _open(path) as container:
        try:
            stream = container.streams.video[0]
            size = (stream.codec_context.height, stream.codec_context.width)
            for _ in container.decode(stream):
                count += 1
        except (av.error.FFmpegError, IndexError) as exc:
            raise DatasetError(f"video {path}: cannot be decoded after {count} frames ({exc}); "
                               "the file is truncated or not an MP4") from exc
    if count == 0:
        raise DatasetError(f"video {path}: no frames")
    return count, size


def decode_span(path: Path, start: int, length: int, fps: float) -> np.ndarray:
    """Frames start .. start+length-1 of an MP4 as uint8 [length, H, W, 3] RGB.

    A frame's number is its presentation time times fps, counted from the stream's start,
    as LeRobot's decoders number them. Only the span (from the keyframe before it) is
    decoded.

    Raises:
        DatasetError: the file cannot be decoded or lacks frames of the span.
    """
    frames: list[np.ndarray | None] = [None] * length
    with _open(path) as container:
        try:
            stream = container.streams.video[0]
            base = stream.time_base
            first_pts = stream.start_time or 0
            if start > 0 and base is not None:
                container.seek(first_pts + int(start / fps / base), stream=stream,
                               backward=True)
            for frame in container.decode(stream):
                if frame.pts is None:
                    continue
                index = round(float((frame.pts - first_pts) * frame.time_base) * fps) - start
                if index >= length:
                    break
                if index >= 0:
                    frames[index] = frame.to_ndarray(format="rgb24")
        except (av.error.FFmpegError, IndexError) as exc:
            raise DatasetError(f"video {path}: cannot be decoded ({exc}); the file is "
                               "truncated or not an MP4") from exc
    missing = [start + i for i, f in enumerate(frames) if f is None]
    if missing:
        raise DatasetError(f"video {path}: frames {missing[:5]}{'...' if len(missing) > 5 else ''}"
                           f" of {start}..{start + length - 1} are missing; the video is "
                           "truncated or its timestamps do not match the dataset's fps")
    return np.stack([f for f in frames if f is not None])
