"""encode/decode round trips for every registered type, and outbound validation."""

from __future__ import annotations

import math

import msgpack
import numpy as np
import pytest

from robolearn.errors import ConfigError, ProtocolError
from robolearn.protocol import (
    PROTOCOL_VERSION,
    ArraySpec,
    FieldSpec,
    MessageSpec,
    decode,
    encode,
    get_spec,
    register,
    registered_types,
)
from tests.protocol.util import arm_state

RNG = np.random.default_rng(7)

SAMPLES = {
    "arm_state": arm_state(5),
    "arm_state_full": (
        "arm_state",
        {**arm_state()[1], "task": "stack the red cube", "task_success": True,
         "error": "reflex: joint 4 torque", "estop": True},
        {**arm_state()[2], "joint_pos_rad": RNG.standard_normal(6),
         "joint_vel_rad_s": RNG.standard_normal(6)},
    ),
    "camera_frame": (
        "camera_frame", {"camera": "wrist_cam", "stamp_ns": 123, "frame_index": 9},
        {"image": RNG.integers(0, 256, (84, 84, 3), dtype=np.uint8)},
    ),
    "arm_command": (
        "arm_command",
        {"command": "ee_delta", "delta_yaw_rad": -0.1, "gripper_close": 1.0, "seed": None,
         "reason": "policy"},
        {"delta_xyz_m": np.array([0.01, -0.02, 0.0])},
    ),
    "arm_command_reset": ("arm_command", {"command": "reset", "seed": 3}, {}),
    "arm_command_bare": ("arm_command", {"command": "home"}, {}),
    "reply": (
        "reply", {"ok": True, "reason": "", "request_seq": 4,
                  "data": {"n": 1, "names": ["a", "b"], "nested": {"x": [1.5, None]}}},
        {"jpeg": RNG.integers(0, 256, 1000, dtype=np.uint8),
         "mask": RNG.random((4, 5)) > 0.5, "counts": np.arange(6, dtype=np.int32)},
    ),
    "telemetry": (
        "telemetry",
        {"kind": "actor", "values": {"period_s": 0.1, "ticks": 10, "ok": True, "mode": "auto",
                                     "last_error": None}},
        {"q": RNG.standard_normal((2, 3)).astype(np.float32)},
    ),
    "transition_first": (
        "transition",
        {"episode": "run-1-0", "step": 0, "reward": 0.0, "terminated": False,
         "truncated": False, "intervention": False, "recorded": True, "task": "reach"},
        {"action": RNG.uniform(-1, 1, 4).astype(np.float32),
         "low_dim": RNG.standard_normal(11).astype(np.float32),
         "next_low_dim": RNG.standard_normal(11).astype(np.float32),
         "rgb_front": RNG.integers(0, 256, (84, 84, 3), dtype=np.uint8),
         "next_rgb_front": RNG.integers(0, 256, (84, 84, 3), dtype=np.uint8)},
    ),
    "episode_stored": ("episode_stored", {"episode": "run-1-0", "episode_id": 12}, {}),
    "weights": (
        "weights",
        {"session": "abc", "version": 2, "update_step": 100, "env_steps": 300,
         "layout": [["critic/w", "<f4", [2, 3], 0]]},
        {"blob": RNG.integers(0, 256, (2, 8192), dtype=np.uint8)},
    ),
}


def test_registered_types() -> None:
    assert set(registered_types()) >= {"arm_state", "camera_frame", "arm_command", "reply",
                                       "telemetry", "transition", "episode_stored", "weights"}


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_round_trip(name: str) -> None:
    mtype, body, arrays = SAMPLES[name]
    frames = encode(mtype, "tester", 17, body, arrays)
    assert len(frames) == 1 + len(arrays)
    msg = decode([bytes(memoryview(f)) for f in frames])
    assert (msg.type, msg.sender, msg.seq, msg.version) == (mtype, "tester", 17, PROTOCOL_VERSION)
    assert msg.sent_ns > 0
    assert set(msg.arrays) == set(arrays)
    for key, arr in arrays.items():
        got = msg.arrays[key]
        assert got.dtype == arr.dtype and got.shape == arr.shape
        assert got.tobytes() == arr.tobytes()  # bit-identical
    # msgpack arrays arrive as tuples (use_list=False); compare as lists
    assert _lists(msg.body) == _lists(body)


def _lists(x: object) -> object:
    if isinstance(x, dict):
        return {k: _lists(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_lists(v) for v in x]
    return x


def test_decode_accepts_memoryviews_and_decoded_arrays_are_readonly_views() -> None:
    mtype, body, arrays = SAMPLES["camera_frame"]
    frames = [bytes(memoryview(f)) for f in encode(mtype, "cam", 0, body, arrays)]
    msg = decode([memoryview(f) for f in frames])
    img = msg.arrays["image"]
    assert not img.flags.writeable
    assert np.array_equal(img, arrays["image"])


def test_contiguous_array_sent_without_copy_and_noncontiguous_made_contiguous() -> None:
    image = RNG.integers(0, 256, (84, 84, 3), dtype=np.uint8)
    frames = encode("camera_frame", "cam", 0, {"camera": "c", "stamp_ns": 0, "frame_index": 0},
                    {"image": image})
    assert frames[1] is image  # zero-copy: the caller's buffer goes out as is
    big = RNG.integers(0, 256, (100, 160, 3), dtype=np.uint8)
    views = {
        "strided": big[::2, ::2],
        "transposed": big.transpose(1, 0, 2)[:84],
        "fortran": np.asfortranarray(big),
    }
    for label, view in views.items():
        assert not view.flags.c_contiguous, label
        frames = encode("camera_frame", "cam", 0,
                        {"camera": "c", "stamp_ns": 0, "frame_index": 0}, {"image": view})
        msg = decode([bytes(memoryview(f)) for f in frames])
        assert np.array_equal(msg.arrays["image"], view), label


def test_numpy_scalars_in_body_are_converted() -> None:
    mtype, body, arrays = arm_state()
    body = {**body, "stamp_ns": np.int64(12), "gripper_width_m": np.float32(0.5),
            "stopped": np.bool_(True)}
    msg = decode([bytes(memoryview(f)) for f in encode(mtype, "arm", 0, body, arrays)])
    assert msg.body["stamp_ns"] == 12 and type(msg.body["stamp_ns"]) is int
    assert msg.body["stopped"] is True
    tel = encode("telemetry", "a", 0, {"kind": "k", "values": {"x": np.float64(2.5)}})
    assert decode(tel).body["values"] == {"x": 2.5}


def test_int_accepted_for_float_field() -> None:
    mtype, body, arrays = arm_state()
    msg = decode(encode(mtype, "arm", 0, {**body, "gripper_width_m": 0}, arrays))
    assert msg.body["gripper_width_m"] == 0


@pytest.mark.parametrize(
    ("mtype", "body", "arrays", "reason"),
    [
        ("nope", {}, None, "unknown_type"),
        ("arm_command", {"command": "fly"}, None, "bad_choice"),
        ("arm_command", {"command": "ee_delta", "gripper_close": math.nan}, None, "non_finite"),
        ("arm_command", {"command": "ee_delta", "delta_yaw_rad": math.inf}, None, "non_finite"),
        ("arm_command", {"command": "ee_delta"}, {"delta_xyz_m": np.array([0, np.nan, 0])},
         "non_finite"),
        ("arm_command", {"command": "ee_delta"},
         {"delta_xyz_m": np.zeros(3, dtype=np.float32)}, "bad_dtype"),
        ("arm_command", {"command": "ee_delta"}, {"delta_xyz_m": np.zeros(4)}, "bad_shape"),
        ("arm_command", {"command": "ee_delta"}, {"delta_xyz_m": [0.0, 0.0, 0.0]},
         "bad_field_type"),
        ("arm_command", {"command": "ee_delta"}, {"torque": np.zeros(3)}, "unknown_array"),
        ("arm_command", {"command": "home", "speed": 1.0}, None, "extra_field"),
        ("arm_command", {}, None, "missing_field"),
        ("arm_command", {"command": "home", "seed": 1.5}, None, "bad_field_type"),
        ("arm_state", arm_state()[1], {}, "missing_array"),
        ("camera_frame", {"camera": "c", "stamp_ns": True, "frame_index": 0},
         {"image": np.zeros((2, 2, 3), np.uint8)}, "bad_field_type"),
        ("camera_frame", {"camera": "c", "stamp_ns": 0, "frame_index": 0},
         {"image": np.zeros((9000, 1, 3), np.uint8)}, "oversized"),
        ("reply", {"ok": True, "reason": "", "request_seq": 0},
         {"x": np.zeros(2, np.float16)}, "bad_dtype"),
        ("telemetry", {"kind": "k", "values": {"x": [1, 2]}}, None, "bad_field_type"),
        ("reply", {"ok": True, "reason": "", "request_seq": 0, "data": {"x": object()}}, None,
         "bad_field_type"),
    ],
)
def test_encode_validates_outbound(mtype: str, body: dict, arrays: dict | None,
                                   reason: str) -> None:
    with pytest.raises(ProtocolError) as err:
        encode(mtype, "tester", 0, body, arrays)
    assert err.value.reason == reason


@pytest.mark.parametrize(("sender", "seq"), [("", 0), ("x" * 300, 0), ("a", -1), ("a", 1.0),
                                             (3, 0), ("a", True)])
def test_encode_rejects_bad_sender_or_seq(sender: object, seq: object) -> None:
    with pytest.raises(ProtocolError) as err:
        encode("arm_command", sender, seq, {"command": "home"})  # type: ignore[arg-type]
    assert err.value.reason == "bad_header"


def test_header_layout_is_the_documented_one() -> None:
    mtype, body, arrays = arm_state()
    header = msgpack.unpackb(encode(mtype, "arm", 3, body, arrays)[0])
    assert list(header) == ["v", "type", "sender", "seq", "sent_ns", "body", "arrays"]
    assert header["arrays"][0] == ["joint_pos_rad", "float64", [7]]


def test_registry_rejects_conflicting_spec_and_bad_specs() -> None:
    spec = MessageSpec("test_probe", fields={"x": FieldSpec(int)},
                       arrays={"a": ArraySpec("float32", (None, 2))})
    assert register(spec) is spec
    again = MessageSpec("test_probe", fields={"x": FieldSpec(int)},
                        arrays={"a": ArraySpec("float32", (None, 2))})
    assert register(again) is spec  # equal: a no-op
    with pytest.raises(ConfigError):
        register(MessageSpec("test_probe", fields={"y": FieldSpec(int)}))
    assert get_spec("test_probe") is spec
    with pytest.raises(ConfigError):
        ArraySpec("complex128", (2,))
    with pytest.raises(ConfigError):
        ArraySpec("uint8", (2,), finite=True)
    with pytest.raises(ConfigError):
        FieldSpec(set)
    with pytest.raises(ProtocolError) as err:
        get_spec("never_registered")
    assert err.value.reason == "unknown_type"


def test_cached_fast_path_stays_strict() -> None:
    """After a valid layout is cached, the same layout with bad values is still rejected."""
    ok = encode("arm_command", "a", 0, {"command": "ee_delta", "gripper_close": 1.0},
                {"delta_xyz_m": np.zeros(3)})
    decode(ok)
    decode(ok)
    for body, arrays, reason in [
        ({"command": "ee_delta", "gripper_close": math.nan}, {"delta_xyz_m": np.zeros(3)},
         "non_finite"),
        ({"command": "jump", "gripper_close": 1.0}, {"delta_xyz_m": np.zeros(3)}, "bad_choice"),
        ({"command": "ee_delta", "gripper_close": 1.0}, {"delta_xyz_m": np.full(3, np.inf)},
         "non_finite"),
    ]:
        with pytest.raises(ProtocolError) as err:
            encode("arm_command", "a", 1, body, arrays)
        assert err.value.reason == reason
        header = msgpack.unpackb(ok[0])
        header["body"] = body
        frames = [msgpack.packb(header), arrays["delta_xyz_m"].tobytes()]
        with pytest.raises(ProtocolError) as err:
            decode(frames)
        assert err.value.reason == reason


def test_fuzzed_frames_only_ever_raise_protocol_error() -> None:
    """Random byte flips, truncations and splices of valid messages: decode either returns a
    Message or raises ProtocolError, never anything else."""
    rng = np.random.default_rng(1234)
    seeds = [[bytes(memoryview(f)) for f in encode(t, "fuzz", 1, b, a)]
             for t, b, a in SAMPLES.values()]
    outcomes = {"ok": 0, "rejected": 0}
    for _ in range(3000):
        frames = [bytearray(f) for f in seeds[rng.integers(len(seeds))]]
        for _ in range(rng.integers(1, 4)):
            target = frames[rng.integers(len(frames))]
            op = rng.integers(3)
            if op == 0 and target:
                target[rng.integers(len(target))] = int(rng.integers(256))
            elif op == 1 and target:
                del target[rng.integers(len(target)):]
            else:
                frames.insert(int(rng.integers(len(frames) + 1)), bytearray(rng.bytes(5)))
        try:
            decode([bytes(f) for f in frames])
            outcomes["ok"] += 1
        except ProtocolError:
            outcomes["rejected"] += 1
    assert outcomes["rejected"] > 1000
