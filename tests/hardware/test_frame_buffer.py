"""hardware.base.FrameBuffer: the one latest-frame buffer the camera drivers share."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from robolearn.errors import StaleFrame
from robolearn.hardware.base import Frame, FrameBuffer


def frame(index: int, stamp_ns: int | None = None) -> Frame:
    return Frame(camera="cam", image=np.full((2, 2, 3), index, np.uint8),
                 stamp_ns=time.monotonic_ns() if stamp_ns is None else stamp_ns,
                 frame_index=index)


def test_poll_returns_each_newest_frame_once_and_skips_overwritten_ones() -> None:
    buf = FrameBuffer("cam (test)")
    assert buf.poll() is None
    buf.put(frame(1))
    got = buf.poll()
    assert got is not None and got.frame_index == 1
    assert buf.poll() is None  # already returned
    buf.put(frame(2))
    buf.put(frame(3))  # 2 was never read: latest-frame semantics drop it
    got = buf.poll()
    assert got is not None and got.frame_index == 3
    assert buf.poll() is None
    assert buf.latest(max_age_ms=60_000).frame_index == 3  # latest ignores "returned"


def test_wait_wakes_on_a_frame_from_another_thread() -> None:
    buf = FrameBuffer("cam (test)")
    buf.put(frame(1))
    assert buf.wait(0.0) is not None
    assert buf.wait(0.0) is None  # nothing new, zero timeout: no wait at all
    putter = threading.Thread(target=lambda: (time.sleep(0.05), buf.put(frame(2))))
    putter.start()
    got = buf.wait(30.0)
    putter.join()
    assert got is not None and got.frame_index == 2


def test_end_releases_waiters_and_a_new_frame_reopens() -> None:
    buf = FrameBuffer("cam (test)")
    ender = threading.Thread(target=lambda: (time.sleep(0.05), buf.end()))
    ender.start()
    assert buf.wait(30.0) is None  # returned at end(), not after 30 s (the test would hang)
    ender.join()
    assert buf.ended
    assert buf.wait(30.0) is None  # ended: no waiting at all
    buf.put(frame(1))  # a reconnected device streams again
    assert not buf.ended and buf.wait(0.0) is not None


def test_non_increasing_index_is_refused_and_changes_nothing() -> None:
    buf = FrameBuffer("front (test)")
    buf.put(frame(5))
    with pytest.raises(ValueError, match=r"front \(test\): frame_index 5 after 5"):
        buf.put(frame(5))
    with pytest.raises(ValueError, match="must increase"):
        buf.put(frame(4))
    assert buf.latest(60_000).frame_index == 5
    assert buf.poll() is not None and buf.poll() is None


def test_latest_refuses_missing_and_stale_frames() -> None:
    buf = FrameBuffer("wrist (test)")
    with pytest.raises(StaleFrame, match=r"wrist \(test\): no frame captured yet"):
        buf.latest(100.0)
    buf.put(frame(1, stamp_ns=time.monotonic_ns() - 10_000_000_000))  # captured 10 s ago
    with pytest.raises(StaleFrame, match="ms old"):
        buf.latest(100.0)
