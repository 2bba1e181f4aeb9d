"""Malformed messages sent over real sockets to each receiver helper: every one is rejected
with its reason (counted and logged), and the receiver keeps serving the next valid message."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import msgpack
import numpy as np
import pytest
import zmq

from robolearn.protocol import Puller, Replier, Subscriber, decode, encode
from tests.protocol.util import arm_state, wait_until

MAX_BYTES = 1 << 20  # the receivers under test accept 1 MiB messages


def _valid(mtype: str = "arm_state", seq: int = 0, body: dict | None = None,
           arrays: dict | None = None) -> list[bytes]:
    if mtype == "arm_state":
        _, b, a = arm_state(seq)
        body = b if body is None else body
        arrays = a if arrays is None else arrays
    return [bytes(memoryview(f)) for f in encode(mtype, "bad_peer", seq, body or {}, arrays)]


def _tamper(edit: Callable[[dict], Any], frames: list[bytes] | None = None) -> list[bytes]:
    frames = frames or _valid()
    header = msgpack.unpackb(frames[0])
    edit(header)
    return [msgpack.packb(header), *frames[1:]]


def _set(key: str, value: Any) -> Callable[[dict], None]:
    return lambda h: h.__setitem__(key, value)


def _body(key: str, value: Any) -> Callable[[dict], None]:
    return lambda h: h["body"].__setitem__(key, value)


def _array_entry(index: int, position: int, value: Any) -> Callable[[dict], None]:
    return lambda h: h["arrays"][index].__setitem__(position, value)


def _drop_body(key: str) -> Callable[[dict], None]:
    return lambda h: h["body"].pop(key)


def _oversized() -> list[bytes]:
    # each frame below libzmq's per-frame MAXMSGSIZE, the total above max_bytes
    part = np.zeros((600, 1000), np.uint8)
    return _valid("reply", 0, {"ok": True, "reason": "", "request_seq": 0},
                  {"a": part, "b": part})


def _nan_array() -> list[bytes]:
    frames = _valid("arm_command", 0, {"command": "ee_delta"}, {"delta_xyz_m": np.zeros(3)})
    return [frames[0], np.array([0.0, np.nan, 0.0]).tobytes()]


def _too_large_dim() -> list[bytes]:
    frames = _valid("camera_frame", 0, {"camera": "c", "stamp_ns": 0, "frame_index": 0},
                    {"image": np.zeros((90, 100, 3), np.uint8)})
    return _tamper(_array_entry(0, 2, [9000, 1, 3]), frames)


def _missing_array() -> list[bytes]:
    frames = _valid()
    header = msgpack.unpackb(frames[0])
    del header["arrays"][2]
    return [msgpack.packb(header), frames[1], frames[2], frames[4]]


def _unknown_array() -> list[bytes]:
    frames = _valid()
    header = msgpack.unpackb(frames[0])
    header["arrays"].append(["torque", "float64", [7]])
    return [msgpack.packb(header), *frames[1:], np.zeros(7).tobytes()]


def _ext_in_body() -> list[bytes]:
    return _tamper(_body("error", msgpack.ExtType(5, b"x")))


CASES: dict[str, tuple[Callable[[], list[bytes]], str]] = {
    "wrong_version": (lambda: _tamper(_set("v", 2)), "bad_version"),
    "version_as_str": (lambda: _tamper(_set("v", "1")), "bad_version"),
    "unknown_type": (lambda: _tamper(_set("type", "teleport")), "unknown_type"),
    "garbage_header": (lambda: [b"\xc1\xff\x00garbage", *_valid()[1:]], "bad_header"),
    "header_not_a_map": (lambda: [msgpack.packb([1, 2, 3]), *_valid()[1:]], "bad_header"),
    "header_trailing_bytes": (lambda: [_valid()[0] + b"\x01", *_valid()[1:]], "bad_header"),
    "missing_header_key": (lambda: _tamper(lambda h: h.pop("sender")), "bad_header"),
    "extra_header_key": (lambda: _tamper(_set("priority", 1)), "bad_header"),
    "array_frame_missing": (lambda: _valid()[:-1], "frame_count"),
    "extra_frame": (lambda: [*_valid(), b"\x00" * 8], "frame_count"),
    "empty_multipart": (lambda: [b""], "frame_count"),
    "wrong_dtype": (lambda: _tamper(_array_entry(0, 1, "float32")), "bad_dtype"),
    "invalid_dtype_string": (lambda: _tamper(_array_entry(0, 1, "float128x")), "bad_dtype"),
    "wrong_shape": (lambda: _tamper(_array_entry(2, 2, [1, 3])), "bad_shape"),
    "negative_dim": (lambda: _tamper(_array_entry(0, 2, [-7])), "bad_shape"),
    "float_dim": (lambda: _tamper(_array_entry(0, 2, [7.5])), "bad_shape"),
    "size_mismatch": (lambda: [*_valid()[:1], _valid()[1][:-8], *_valid()[2:]],
                      "size_mismatch"),
    "oversized_payload": (_oversized, "oversized"),
    "too_large_dim": (_too_large_dim, "oversized"),
    "missing_field": (lambda: _tamper(_drop_body("estop")), "missing_field"),
    "wrong_field_type": (lambda: _tamper(_body("gripper_width_m", "wide")), "bad_field_type"),
    "bool_as_int": (lambda: _tamper(_body("stamp_ns", True)), "bad_field_type"),
    "int_as_bool": (lambda: _tamper(_body("stopped", 1)), "bad_field_type"),
    "extra_field": (lambda: _tamper(_body("colour", "red")), "extra_field"),
    "unknown_array": (_unknown_array, "unknown_array"),
    "missing_array": (_missing_array, "missing_array"),
    "nan_in_finite_array": (_nan_array, "non_finite"),
    "nan_in_finite_field": (lambda: _tamper(
        _body("gripper_close", float("nan")),
        _valid("arm_command", 0, {"command": "ee_delta", "gripper_close": 1.0})), "non_finite"),
    "bad_choice": (lambda: _tamper(_body("command", "self_destruct"),
                                   _valid("arm_command", 0, {"command": "home"})), "bad_choice"),
    "negative_seq": (lambda: _tamper(_set("seq", -1)), "bad_header"),
    "sender_not_str": (lambda: _tamper(_set("sender", b"raw")), "bad_header"),
    "body_not_a_map": (lambda: _tamper(_set("body", [1])), "bad_header"),
    "ext_type_in_body": (_ext_in_body, "bad_field_type"),
    "telemetry_value_list": (lambda: _valid_telemetry_with({"x": [1, 2]}), "bad_field_type"),
    "free_array_bad_dtype": (lambda: _tamper(
        _array_entry(0, 1, "complex64"),
        _valid("reply", 0, {"ok": True, "reason": "", "request_seq": 0},
               {"x": np.zeros(2, np.float64)})), "bad_dtype"),
}


def _valid_telemetry_with(values: dict) -> list[bytes]:
    frames = _valid("telemetry", 0, {"kind": "k", "values": {"x": 1}})
    return _tamper(_body("values", values), frames)


def test_at_least_twenty_kinds() -> None:
    assert len(CASES) >= 20
    assert len({reason for _, reason in CASES.values()}) >= 12


def _check(receiver: Any, caplog: pytest.LogCaptureFixture, reason: str,
           receive_valid: Callable[[], Any]) -> None:
    before = receiver.rejected.get(reason, 0)
    with caplog.at_level(logging.WARNING, logger="robolearn.protocol.sockets"):
        got = receive_valid()
    assert got is not None, "receiver stopped serving after a malformed message"
    assert receiver.rejected.get(reason, 0) == before + 1, receiver.rejected
    assert any(reason in r.getMessage() for r in caplog.records), caplog.text


# One receiver of each kind serves the whole parametrised run: it must survive them all.
@pytest.fixture(scope="module")
def mctx() -> Iterator[zmq.Context]:
    context = zmq.Context()
    yield context
    context.destroy(linger=0)


@pytest.fixture(scope="module")
def sub_pair(mctx: zmq.Context) -> Iterator[tuple[zmq.Socket, Subscriber]]:
    pub = mctx.socket(zmq.PUB)
    port = pub.bind_to_random_port("tcp://127.0.0.1")
    sub = Subscriber(mctx, f"tcp://127.0.0.1:{port}", max_bytes=MAX_BYTES, rcvhwm=100)
    seq = iter(range(10**6))
    assert wait_until(lambda: pub.send_multipart(_valid(seq=next(seq))) or
                      sub.wait_new("arm_state", 0.01) is not None)
    yield pub, sub
    sub.close()
    pub.close(0)


@pytest.fixture(scope="module")
def pull_pair(mctx: zmq.Context) -> Iterator[tuple[zmq.Socket, Puller]]:
    puller = Puller(mctx, "tcp://127.0.0.1:*", max_bytes=MAX_BYTES)
    push = mctx.socket(zmq.PUSH)
    push.connect(puller.address)
    yield push, puller
    push.close(0)
    puller.close()


@pytest.fixture(scope="module")
def router_pair(mctx: zmq.Context) -> Iterator[tuple[zmq.Socket, Replier]]:
    replier = Replier(mctx, "inproc://malformed-replier", "arm", max_bytes=MAX_BYTES)
    dealer = mctx.socket(zmq.DEALER)
    dealer.connect(replier.address)
    yield dealer, replier
    dealer.close(0)
    replier.close()


@pytest.mark.parametrize("case", sorted(CASES))
def test_subscriber_rejects(case: str, sub_pair: tuple[zmq.Socket, Subscriber],
                            caplog: pytest.LogCaptureFixture) -> None:
    pub, sub = sub_pair
    make, reason = CASES[case]
    sub.poll()
    seq = 1000 + sorted(CASES).index(case)
    pub.send_multipart(make())
    pub.send_multipart(_valid(seq=seq))

    def receive_valid() -> Any:
        msg = sub.wait_new("arm_state", 3.0)
        assert msg is not None and msg.seq == seq
        return msg

    _check(sub, caplog, reason, receive_valid)


@pytest.mark.parametrize("case", sorted(CASES))
def test_puller_rejects(case: str, pull_pair: tuple[zmq.Socket, Puller],
                        caplog: pytest.LogCaptureFixture) -> None:
    push, puller = pull_pair
    make, reason = CASES[case]
    push.send_multipart(make())
    push.send_multipart(_valid(seq=7))

    def receive_valid() -> Any:
        msg = puller.recv(3.0)
        assert msg is not None and msg.seq == 7 and msg.type == "arm_state"
        return msg

    _check(puller, caplog, reason, receive_valid)


@pytest.mark.parametrize("case", sorted(CASES))
def test_replier_rejects_and_answers(case: str, router_pair: tuple[zmq.Socket, Replier],
                                     caplog: pytest.LogCaptureFixture) -> None:
    dealer, replier = router_pair
    make, reason = CASES[case]
    dealer.send_multipart(make())
    dealer.send_multipart(_valid("arm_command", 41, {"command": "status"}))

    def receive_valid() -> Any:
        got = replier.poll(3.0)
        assert got is not None
        identity, msg = got
        assert msg.type == "arm_command" and msg.seq == 41
        assert replier.reply(identity, msg, ok=True, data={"echo": msg.body["command"]})
        return msg

    _check(replier, caplog, reason, receive_valid)
    # the malformed request got an immediate error reply, then the valid one its answer
    assert dealer.poll(3000)
    error = dealer.recv_multipart()
    if case == "empty_multipart":  # a lone empty frame reads as a REQ-style delimiter
        assert error[0] == b""
        error = error[1:]
    error_msg = decode(error)
    assert error_msg.type == "reply" and error_msg.body["ok"] is False
    assert error_msg.body["reason"] == reason
    assert dealer.poll(3000)
    answer = decode(dealer.recv_multipart())
    assert answer.body == {"ok": True, "reason": "", "request_seq": 41,
                           "data": {"echo": "status"}}
