"""LiveFrames: the control loop only hands frames over; a thread of their own encodes and
publishes them (JPEG encoding is off the path from an observation to its command), the
newest frame of a camera replaces one not yet encoded, and close() stops the thread."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import numpy as np
import pytest
import zmq

from robolearn.actor import live as live_module
from robolearn.actor.live import LiveFrames, jpeg_of
from robolearn.protocol import Publisher, Subscriber
from robolearn.protocol.messages import LiveFrame

CAMERAS = ("front", "wrist")


@pytest.fixture
def wire() -> Iterator[tuple[Publisher, Subscriber]]:
    ctx: zmq.Context = zmq.Context()
    pub = Publisher(ctx, "inproc://live-test", "actor")
    sub = Subscriber(ctx, "inproc://live-test", types=("live_frame",), rcvhwm=100)
    yield pub, sub
    sub.close()
    pub.close()
    ctx.term()


def _obs(value: int) -> dict[str, np.ndarray]:
    return {c: np.full((24, 32, 3), value, np.uint8) for c in CAMERAS}


def test_frames_are_encoded_on_another_thread_and_reach_a_subscriber(
    wire: tuple[Publisher, Subscriber], monkeypatch: pytest.MonkeyPatch
) -> None:
    pub, sub = wire
    encoded_on: list[int] = []
    real = live_module.encode_jpeg

    def encode(image: np.ndarray, quality: int) -> bytes:
        encoded_on.append(threading.get_ident())
        return real(image, quality)

    monkeypatch.setattr(live_module, "encode_jpeg", encode)
    frames = LiveFrames(pub, CAMERAS, fps=100.0, quality=80)
    try:
        sub.wait_new("live_frame", 0.1)  # subscribe before anything is sent
        assert frames.publish(_obs(200), episode=3, step=7, stamp_ns=1_000_000_000) == 2
        assert frames.flush(5.0)
        got = sub.wait_new("live_frame", 2.0, key="wrist")
    finally:
        frames.close()
    assert got is not None
    frame = LiveFrame.from_message(got)
    assert (frame.episode, frame.step, frame.width, frame.height) == (3, 7, 32, 24)
    assert jpeg_of(frame)[:2] == b"\xff\xd8"  # a JPEG
    assert len(encoded_on) == 2 and threading.get_ident() not in encoded_on
    assert frames.sent == 2


def test_a_newer_frame_replaces_one_not_yet_encoded(
    wire: tuple[Publisher, Subscriber], monkeypatch: pytest.MonkeyPatch
) -> None:
    pub, _ = wire
    release = threading.Event()
    steps_encoded: list[int] = []
    real = live_module.encode_jpeg

    def slow_encode(image: np.ndarray, quality: int) -> bytes:
        release.wait(5.0)  # the encoder is busy with the first frame
        steps_encoded.append(int(image[0, 0, 0]))
        return real(image, quality)

    monkeypatch.setattr(live_module, "encode_jpeg", slow_encode)
    frames = LiveFrames(pub, ("front",), fps=1000.0, quality=80)
    try:
        frames.publish(_obs(1), 0, 1, 1_000_000_000)
        # Steps 2 and 3 come while step 1 is being encoded: only step 3 is kept.
        for step in (2, 3):
            while not frames._busy:  # the encoder took step 1
                threading.Event().wait(0.001)
            frames.publish(_obs(step), 0, step, (1 + step) * 1_000_000_000)
        release.set()
        assert frames.flush(5.0)
    finally:
        frames.close()
    assert steps_encoded == [1, 3]


def test_close_stops_the_encoder_and_no_frames_means_no_thread(
    wire: tuple[Publisher, Subscriber],
) -> None:
    pub, _ = wire
    frames = LiveFrames(pub, CAMERAS, fps=10.0, quality=80)
    thread = frames._thread
    assert thread is not None and thread.is_alive()
    frames.close()
    assert not thread.is_alive()
    off = LiveFrames(pub, CAMERAS, fps=0.0, quality=80)
    assert off._thread is None and off.publish(_obs(1), 0, 1, 0) == 0
    off.close()
