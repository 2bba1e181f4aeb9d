"""Operator control of a real actor process driving the sim driver process: e-stop, pause,
refusals of bad commands, and the live telemetry stream."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

import cv2
import msgpack
import numpy as np
import pytest
import zmq

from robolearn.actor.control import ActorControlClient, ActorStatus
from robolearn.actor.live import jpeg_of
from robolearn.config import RunConfig, parse_config
from robolearn.errors import ControlRefused, PeerTimeout
from robolearn.processes import ProcessGroup
from robolearn.protocol import Requester, Subscriber, apply_security
from robolearn.protocol.messages import LiveFrame
from tests.conftest import run_config_dict


class Rig:
    """Driver and actor processes plus an operator's view: control client, the driver's own
    status (its count of executed motion commands) and the arm's state stream."""

    def __init__(self, cfg: RunConfig) -> None:
        self.cfg = cfg
        self.ctx = zmq.Context()
        self.group = ProcessGroup(cfg, log_level="warning")
        self.group.start_drivers()
        self.group.start_actor()
        self.client = ActorControlClient(cfg.actor.control_address,
                                         cfg.socket_security(cfg.actor.control_address,
                                                             "operator"), ctx=self.ctx,
                                         timeout_s=2.0)
        self.driver = Requester(self.ctx, cfg.robot.command_address, "test",
                                security=cfg.socket_security(cfg.robot.command_address,
                                                             "operator"))
        self.state = Subscriber(self.ctx, cfg.robot.state_address, types=("arm_state",),
                                security=cfg.socket_security(cfg.robot.state_address,
                                                             "operator"))

    def status(self) -> ActorStatus:
        deadline = time.monotonic() + 60.0  # the first call waits for process start-up
        while True:
            try:
                return self.client.status()
            except PeerTimeout:
                if time.monotonic() > deadline:
                    raise

    def driver_status(self) -> dict:
        reply = self.driver.request("arm_command", {"command": "status"}, timeout_s=5.0)
        assert reply.body["ok"]
        return dict(reply.body["data"])

    def ee(self) -> np.ndarray:
        """The end-effector position in a state published after this call (a subscriber's
        queue can hold older states)."""
        now = time.monotonic_ns()
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:
            msg = self.state.wait_new("arm_state", timeout_s=1.0)
            if msg is not None and msg.body["stamp_ns"] > now:
                return np.array(msg.arrays["ee_pos_m"])
        raise AssertionError("the driver stopped publishing state")

    def wait_steps(self, n: int, timeout_s: float = 60.0) -> ActorStatus:
        """Wait until the actor's (episode, step) changed n times."""
        last = self.status()
        seen = 0
        deadline = time.monotonic() + timeout_s
        while seen < n:
            assert time.monotonic() < deadline, f"the actor took fewer than {n} steps"
            time.sleep(0.02)
            now = self.status()
            if (now.episode, now.step) != (last.episode, last.step):
                seen += 1
                last = now
        return last

    def settle(self, timeout_s: float = 10.0) -> ActorStatus:
        """Wait until the actor's step count stops changing (it reached a step boundary)."""
        deadline = time.monotonic() + timeout_s
        last = self.status()
        while True:
            time.sleep(0.4)  # several control periods at 10 Hz
            now = self.status()
            if now == last:
                return now
            assert time.monotonic() < deadline, "the actor never held still"
            last = now

    def close(self) -> None:
        self.client.close()
        self.driver.close()
        self.state.close()
        self.group.stop()
        self.ctx.term()


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    sock = Path(tempfile.mkdtemp(prefix="rl-"))
    raw = run_config_dict(sock, tmp_path_factory.mktemp("data"), actor={
        "policy": {"kind": "random"}, "episode_steps": 400, "end_on_success": False,
        "record": False, "live_fps": 5.0,
    })
    r = Rig(parse_config(raw))
    try:
        r.wait_steps(3)
        yield r
    finally:
        r.close()
        shutil.rmtree(sock, ignore_errors=True)


def test_estop_latches_in_the_driver_and_nothing_moves_after_the_acknowledgement(rig: Rig) -> None:
    rig.wait_steps(2)  # the random policy is moving the arm
    status = rig.client.estop(operator="tester", reason="test")
    try:
        motions = rig.driver_status()["motions"]  # read after the acknowledgement
        assert status.estop_latched
        assert rig.driver_status()["estop"] is True
        time.sleep(0.3)  # let the arm come to rest on its hold target
        before = rig.ee()
        time.sleep(1.0)  # ten control periods in which the actor would have moved the arm
        assert rig.driver_status()["motions"] == motions
        assert np.abs(rig.ee() - before).max() < 2e-3
        assert rig.status().estop_latched
    finally:
        status = rig.client.release_estop(operator="tester")
    assert not status.estop_latched
    assert rig.driver_status()["estop"] is False
    after = rig.wait_steps(2)
    assert after.episode > status.episode  # the e-stopped episode was closed
    assert rig.driver_status()["motions"] > motions


def test_pause_holds_the_arm_until_resumed(rig: Rig) -> None:
    assert rig.client.pause().paused
    try:
        held = rig.settle()
        motions = rig.driver_status()["motions"]
        time.sleep(0.3)  # let the arm come to rest on its hold target
        before = rig.ee()
        time.sleep(1.0)
        assert rig.status() == held
        assert rig.driver_status()["motions"] == motions
        assert np.abs(rig.ee() - before).max() < 2e-3
    finally:
        assert not rig.client.resume().paused
    rig.wait_steps(2)
    assert rig.driver_status()["motions"] > motions


def _raw_request(rig: Rig, header: dict, seq: int) -> dict:
    """Send one hand-built envelope over a bare DEALER holding the operator's keys and
    return the reply's body."""
    sock = rig.ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, 5000)
    try:
        address = rig.cfg.actor.control_address
        apply_security(sock, rig.cfg.socket_security(address, "operator"), server=False)
        sock.connect(address)
        sock.send_multipart([msgpack.packb({"v": 1, "sender": "fuzz", "seq": seq,
                                            "sent_ns": 1, "arrays": [], **header})])
        frames = sock.recv_multipart()
    finally:
        sock.close()
    return msgpack.unpackb(frames[0])["body"]


def test_malformed_and_refused_commands_get_an_error_and_change_nothing(rig: Rig) -> None:
    before = rig.status()
    assert not (before.paused or before.takeover or before.estop_latched)

    reply = _raw_request(rig, {"type": "actor_command", "body": {"command": "explode"}}, 7)
    assert (reply["ok"], reply["reason"], reply["request_seq"]) == (False, "bad_choice", 7)
    reply = _raw_request(rig, {"type": "actor_command",
                               "body": {"command": "pause", "active": "yes"}}, 8)
    assert (reply["ok"], reply["reason"]) == (False, "bad_field_type")
    reply = _raw_request(rig, {"type": "arm_command", "body": {"command": "estop"}}, 9)
    assert (reply["ok"], reply["reason"]) == (False, "wrong_type")
    reply = _raw_request(rig, {"type": "actor_command", "body": {"command": "takeover"}}, 10)
    assert (reply["ok"], reply["reason"]) == (False, "missing_field")

    with pytest.raises(ControlRefused) as refused:
        rig.client.teleop([0.5, 0.0, 0.0, 1.0])
    assert refused.value.reason == "not_in_takeover"
    rig.client.takeover(True)
    try:
        for bad in ([0.5, 0.0, 1.0], [1.5, 0.0, 0.0, 1.0], [float("nan"), 0, 0, 0]):
            with pytest.raises(ControlRefused) as refused:
                rig.client.teleop(bad)
            assert refused.value.reason == "bad_action"
    finally:
        rig.client.takeover(False)

    after = rig.status()
    assert not (after.paused or after.takeover or after.estop_latched)
    assert rig.driver_status()["estop"] is False
    rig.wait_steps(2)  # still running


def test_a_takeover_whose_operator_goes_quiet_ends_by_itself(rig: Rig) -> None:
    """A browser closed mid-takeover sends nothing more: after actor.takeover_timeout_ms the
    takeover ends and the policy drives again."""
    assert rig.client.takeover(True).takeover
    try:
        for _ in range(5):  # an attentive operator: each teleop keeps the takeover alive
            assert rig.client.teleop([0.0, 0.0, 0.0, -1.0]).takeover
            time.sleep(0.2)
        # ... then the client is gone.
        quiet_s = rig.cfg.actor.takeover_timeout_ms / 1000.0
        deadline = time.monotonic() + quiet_s + 10.0
        while rig.status().takeover:
            assert time.monotonic() < deadline, "the silent takeover never ended"
            time.sleep(0.1)
        with pytest.raises(ControlRefused) as refused:
            rig.client.teleop([0.5, 0.0, 0.0, -1.0])
        assert refused.value.reason == "not_in_takeover"
        rig.wait_steps(2)  # the policy acts again
    finally:
        rig.client.takeover(False)


def test_live_frames_and_telemetry_reach_a_subscriber(rig: Rig) -> None:
    sub = Subscriber(rig.ctx, rig.cfg.actor.telemetry_address,
                     security=rig.cfg.socket_security(rig.cfg.actor.telemetry_address,
                                                      "operator"),
                     types=("telemetry", "live_frame"))
    try:
        frames: dict[str, list[LiveFrame]] = {"front": [], "wrist": []}
        telemetry = None
        deadline = time.monotonic() + 30.0
        while min(len(v) for v in frames.values()) < 4 or telemetry is None:
            assert time.monotonic() < deadline, "no live frames / telemetry"
            for cam, seen in frames.items():
                msg = sub.wait_new("live_frame", timeout_s=0.01, key=cam)
                if msg is not None:
                    seen.append(LiveFrame.from_message(msg))
            msg = sub.wait_new("telemetry", timeout_s=0.01)
            if msg is not None and "episode_step" in msg.body["values"]:
                telemetry = dict(msg.body["values"])
    finally:
        sub.close()
    for cam, seen in frames.items():
        image = cv2.imdecode(np.frombuffer(jpeg_of(seen[-1]), np.uint8), cv2.IMREAD_COLOR)
        assert image.shape == (64, 64, 3)
        assert (seen[-1].camera, seen[-1].width) == (cam, 64)
        # live_fps 5 at a 10 Hz loop: never two frames of one camera from adjacent steps
        steps = [(f.episode, f.step) for f in seen]
        for (e0, s0), (e1, s1) in pairwise(steps):
            assert e1 > e0 or s1 - s0 >= 2
    for key in ("reward", "success_prob", "q_value", "intervention", "estop", "paused",
                "weights_version", "weights_age_s", "episode", "period_ms"):
        assert key in telemetry
    assert telemetry["estop"] is False and telemetry["intervention"] is False


def test_telemetry_is_what_its_declared_type_says(rig: Rig) -> None:
    # The browser's telemetry type is generated from robolearn.actor.telemetry.Telemetry:
    # every key a real actor sends must be declared there, with a value of its type.
    from robolearn.actor.telemetry import Telemetry

    sub = Subscriber(rig.ctx, rig.cfg.actor.telemetry_address,
                     security=rig.cfg.socket_security(rig.cfg.actor.telemetry_address,
                                                      "operator"),
                     types=("telemetry",))
    seen: list[dict] = []
    try:
        deadline = time.monotonic() + 30.0
        while len(seen) < 5:
            assert time.monotonic() < deadline, f"{len(seen)} telemetry messages in 30 s"
            msg = sub.wait_new("telemetry", timeout_s=0.5)
            if msg is not None and "episode_step" in msg.body["values"]:
                seen.append(dict(msg.body["values"]))
    finally:
        sub.close()
    declared = set(Telemetry.model_fields)
    for values in seen:
        undeclared = {k for k in set(values) - declared if not k.startswith("reward_")}
        assert not undeclared, f"telemetry keys missing from Telemetry: {sorted(undeclared)}"
        parsed = Telemetry.model_validate(values)
        assert parsed.action_dim == 4 and parsed.state == "running"
    required = {name for name, f in Telemetry.model_fields.items() if f.is_required()}
    assert required <= set(seen[-1]), sorted(required - set(seen[-1]))
