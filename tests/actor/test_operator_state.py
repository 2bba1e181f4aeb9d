"""Pure parts of operator control: teleop staleness, live-frame packing, the wire specs."""

from __future__ import annotations

import threading

import cv2
import numpy as np
import pytest

from robolearn.actor.control import ActorStatus
from robolearn.actor.control_server import OperatorState
from robolearn.actor.live import encode_jpeg, jpeg_of, pack_jpeg
from robolearn.errors import ControlRefused, ProtocolError
from robolearn.protocol import decode, encode
from robolearn.protocol.messages import LIVE_JPEG_ROW_BYTES, LiveFrame

MS = 1_000_000


def test_teleop_action_is_used_while_fresh_then_holds_still_keeping_the_gripper() -> None:
    state = OperatorState(4, threading.Event())
    stale_ns = 300 * MS
    # Nothing sent yet: zero motion, gripper where the arm has it, and nobody steered it.
    action, fresh = state.teleop_action(0, stale_ns, -1.0)
    np.testing.assert_array_equal(action, [0, 0, 0, -1])
    assert not fresh
    state.set_teleop(np.array([0.5, -0.5, 0.1, 0.8], np.float32), now_ns=1_000 * MS)
    action, fresh = state.teleop_action(1_300 * MS, stale_ns, -1.0)
    np.testing.assert_allclose(action, [0.5, -0.5, 0.1, 0.8])
    assert fresh
    action, fresh = state.teleop_action(1_301 * MS, stale_ns, -1.0)
    np.testing.assert_allclose(action, [0, 0, 0, 0.8])
    assert not fresh  # a held step is not an intervention


def test_deadman_ends_a_silent_takeover() -> None:
    state = OperatorState(4, threading.Event())
    state.set_takeover(True, now_ns=0)
    assert not state.end_takeover_if_silent(1_000 * MS, 1_500 * MS)
    state.set_teleop(np.zeros(4, np.float32), now_ns=1_000 * MS)  # the operator is there
    assert not state.end_takeover_if_silent(2_400 * MS, 1_500 * MS)
    assert state.takeover
    assert state.end_takeover_if_silent(2_501 * MS, 1_500 * MS)
    assert not state.takeover and "no operator input" in state.takeover_ended
    assert not state.end_takeover_if_silent(9_000 * MS, 1_500 * MS)  # ended once
    state.set_takeover(True)
    assert state.takeover_ended == ""


def test_actor_latch_follows_a_release_at_the_driver() -> None:
    latch = threading.Event()
    state = OperatorState(4, latch)
    latch.set()  # pressed here; the driver has not confirmed yet
    state.set_driver_estop(False)
    assert latch.is_set()  # no release seen: the actor's latch holds
    state.set_driver_estop(True)  # the driver's state shows the latch
    state.set_driver_estop(False)  # and then released there (the CLI, authenticated)
    assert not latch.is_set() and not state.status().estop_latched


def test_a_new_takeover_forgets_the_previous_operator_action() -> None:
    state = OperatorState(4, threading.Event())
    state.set_takeover(True)
    state.set_teleop(np.array([1, 1, 1, 1], np.float32), now_ns=0)
    state.set_takeover(False)
    state.set_takeover(True)
    np.testing.assert_array_equal(state.teleop_action(0, 300 * MS, -1.0)[0], [0, 0, 0, -1])


def test_status_reports_a_latch_from_either_the_actor_or_the_driver() -> None:
    latch = threading.Event()
    state = OperatorState(4, latch)
    assert not state.status().estop_latched
    state.set_driver_estop(True)  # e.g. `robolearn estop` straight to the driver
    assert state.status().estop_latched
    state.set_driver_estop(False)
    latch.set()
    assert state.status().estop_latched


def test_status_round_trips_and_rejects_a_malformed_reply() -> None:
    status = ActorStatus(estop_latched=True, paused=False, takeover=True, episode=3, step=7)
    assert ActorStatus.from_wire(status.to_wire()) == status
    with pytest.raises(ControlRefused, match="bad_reply"):
        ActorStatus.from_wire({**status.to_wire(), "step": "7"})
    with pytest.raises(ControlRefused, match="bad_reply"):
        ActorStatus.from_wire({"paused": False})


@pytest.mark.parametrize("size", [16, 200])
def test_live_frame_round_trip(size: int) -> None:
    rng = np.random.default_rng(size)
    image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)  # noise: a large JPEG
    jpeg = encode_jpeg(image, 75)
    packed = pack_jpeg(jpeg)
    assert packed.shape[1] == LIVE_JPEG_ROW_BYTES and packed.size - len(jpeg) < LIVE_JPEG_ROW_BYTES
    frames = encode("live_frame", "actor", 0, {
        "camera": "front", "width": size, "height": size, "episode": 0, "step": 1,
        "stamp_ns": 5, "jpeg_size": len(jpeg)}, {"jpeg": packed})
    frame = LiveFrame.from_message(decode([bytes(memoryview(f)) for f in frames]))
    assert jpeg_of(frame) == jpeg
    decoded = cv2.imdecode(np.frombuffer(jpeg_of(frame), np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape == (size, size, 3)


def test_live_frame_with_a_lying_size_is_refused() -> None:
    frames = encode("live_frame", "actor", 0, {
        "camera": "front", "width": 4, "height": 4, "episode": 0, "step": 1, "stamp_ns": 5,
        "jpeg_size": LIVE_JPEG_ROW_BYTES + 1}, {"jpeg": np.zeros((1, LIVE_JPEG_ROW_BYTES),
                                                                np.uint8)})
    with pytest.raises(ProtocolError, match="bad_size"):
        jpeg_of(LiveFrame.from_message(decode([bytes(memoryview(f)) for f in frames])))


def test_actor_command_spec_rejects_unknown_commands_and_non_finite_actions() -> None:
    with pytest.raises(ProtocolError, match="bad_choice"):
        encode("actor_command", "op", 0, {"command": "fly"})
    with pytest.raises(ProtocolError, match="non_finite"):
        encode("actor_command", "op", 0, {"command": "teleop"},
               {"action": np.array([np.nan, 0, 0, 0], np.float32)})
