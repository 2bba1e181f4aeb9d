"""camera_frame's optional aligned depth (`depth_mm`, uint16 millimetres, H x W of the image):
round trips with and without it, and malformed depth refused on both ends with its reason."""

from __future__ import annotations

from typing import Any

import msgpack
import numpy as np
import pytest
import zmq

from robolearn.errors import ConfigError, ProtocolError
from robolearn.protocol import ArraySpec, MessageSpec, Publisher, Subscriber, decode, encode
from tests.protocol.util import wait_until

BODY = {"camera": "front_cam", "stamp_ns": 5, "frame_index": 2}
RNG = np.random.default_rng(3)


def image(h: int = 24, w: int = 32) -> np.ndarray:
    return RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)


def depth(h: int = 24, w: int = 32) -> np.ndarray:
    return RNG.integers(0, 4000, (h, w), dtype=np.uint16)


def test_round_trip_with_and_without_depth() -> None:
    img, dep = image(), depth()
    with_depth = decode(encode("camera_frame", "cam", 1, BODY, {"image": img, "depth_mm": dep}))
    assert with_depth.arrays["depth_mm"].dtype == np.uint16
    np.testing.assert_array_equal(with_depth.arrays["depth_mm"], dep)
    np.testing.assert_array_equal(with_depth.arrays["image"], img)
    # A frame without depth (every camera but a depth-enabled RealSense) is still valid.
    plain = decode(encode("camera_frame", "cam", 2, BODY, {"image": img}))
    assert set(plain.arrays) == {"image"}


def test_depth_travels_over_real_sockets(ctx: zmq.Context) -> None:
    pub = Publisher(ctx, "inproc://depth", "cam")
    sub = Subscriber(ctx, "inproc://depth", types=("camera_frame",))
    dep = depth()
    try:
        assert wait_until(lambda: (pub.publish("camera_frame", BODY,
                                               {"image": image(), "depth_mm": dep}),
                                   sub.latest("camera_frame", key="front_cam"))[-1]
                          is not None)
        msg = sub.latest("camera_frame", key="front_cam")
        assert msg is not None
        np.testing.assert_array_equal(msg.arrays["depth_mm"], dep)
    finally:
        sub.close()
        pub.close()


@pytest.mark.parametrize(("depth_array", "reason", "match"), [
    (depth().astype(np.float32), "bad_dtype", "'depth_mm' has dtype float32, expected uint16"),
    (depth()[..., None], "bad_shape", r"shape \(24, 32, 1\)"),
    (depth(24, 31), "bad_shape", r"shape \(24, 31\), expected the leading dims of 'image'"),
    (depth(12, 16), "bad_shape", "leading dims of 'image'"),
])
def test_sender_refuses_malformed_depth(depth_array: np.ndarray, reason: str,
                                        match: str) -> None:
    with pytest.raises(ProtocolError, match=match) as info:
        encode("camera_frame", "cam", 1, BODY, {"image": image(), "depth_mm": depth_array})
    assert info.value.reason == reason


def _crafted(edit: Any) -> list[bytes]:
    """A valid frame with depth whose header is then edited as a broken peer would send it."""
    frames = [bytes(memoryview(f)) for f in
              encode("camera_frame", "cam", 1, BODY, {"image": image(), "depth_mm": depth()})]
    header = msgpack.unpackb(frames[0])
    edit(header["arrays"][1], frames)
    return [msgpack.packb(header), *frames[1:]]


def _as_float32(entry: list, frames: list[bytes]) -> None:
    entry[1] = "float32"
    frames[2] = np.zeros((24, 32), np.float32).tobytes()


def _other_size(entry: list, frames: list[bytes]) -> None:
    entry[2] = [24, 31]
    frames[2] = np.zeros((24, 31), np.uint16).tobytes()


def _three_dims(entry: list, frames: list[bytes]) -> None:
    entry[2] = [24, 32, 1]


def _short_buffer(entry: list, frames: list[bytes]) -> None:
    frames[2] = frames[2][:-2]


@pytest.mark.parametrize(("edit", "reason", "match"), [
    (_as_float32, "bad_dtype", "'depth_mm' dtype 'float32', expected uint16"),
    (_other_size, "bad_shape", "leading dims of 'image'"),
    (_three_dims, "bad_shape", "'depth_mm' shape"),
    (_short_buffer, "size_mismatch", "'depth_mm'"),
])
def test_receiver_rejects_malformed_depth(edit: Any, reason: str, match: str) -> None:
    with pytest.raises(ProtocolError, match=match) as info:
        decode(_crafted(edit))
    assert info.value.reason == reason


def test_leading_dims_of_must_name_another_array() -> None:
    with pytest.raises(ConfigError, match="not another array"):
        MessageSpec("t", arrays={"d": ArraySpec("uint16", (None,), leading_dims_of="img")})
    with pytest.raises(ConfigError, match="more dims"):
        MessageSpec("t", arrays={"img": ArraySpec("uint8", (None,)),
                                 "d": ArraySpec("uint16", (None, None), leading_dims_of="img")})
