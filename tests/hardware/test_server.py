"""The generic driver server over the sim arm and cameras, with real ZeroMQ sockets."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import msgpack
import numpy as np
import pytest
import zmq

from robolearn.hardware.server import DriverServer
from robolearn.hardware.sim import SimArm, SimCamera
from robolearn.protocol import ARM_COMMANDS, Message, Requester, Subscriber, decode, encode
from robolearn.sim import PandaSim


@dataclass
class Rig:
    server: DriverServer
    state: Subscriber
    frames: Subscriber
    cmd: Requester
    sim: PandaSim

    def request(self, command: str, body: dict | None = None, arrays: dict | None = None
                ) -> Message:
        return self.cmd.request("arm_command", {"command": command, **(body or {})}, arrays,
                                timeout_s=2.0)

    def state_now(self) -> Message:
        """A state sampled after this call began (not one already queued)."""
        t0 = time.monotonic_ns()
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            msg = self.state.wait_new("arm_state", timeout_s=0.5)
            if msg is not None and msg.body["stamp_ns"] > t0:
                return msg
        raise AssertionError("no fresh arm state within 2 s")


@pytest.fixture
def rig(sock_dir: Path) -> Iterator[Rig]:
    ctx = zmq.Context()
    sim = PandaSim("reach", image_size=(48, 48), cameras=("front", "wrist"))
    sim.reset(0)
    arm = SimArm(sim, max_step_m=0.05)
    cams = (SimCamera(sim, "front", fps=20), SimCamera(sim, "wrist", fps=20))
    addr = {k: f"ipc://{sock_dir}/{k}" for k in ("state", "cmd", "frames")}
    server = DriverServer(ctx, name="arm", arm=arm, cameras=cams, state_address=addr["state"],
                          command_address=addr["cmd"], frames_address=addr["frames"],
                          state_hz=100, watchdog_ms=120)
    stop = threading.Event()
    arm.connect()
    for c in cams:
        c.connect()
    thread = threading.Thread(target=server.serve, args=(stop,), daemon=True)
    thread.start()
    r = Rig(server, Subscriber(ctx, addr["state"], types=("arm_state",)),
            Subscriber(ctx, addr["frames"], types=("camera_frame",)),
            Requester(ctx, addr["cmd"], "test"), sim)
    try:
        yield r
    finally:
        stop.set()
        thread.join(5)
        for s in (r.state, r.frames, r.cmd):
            s.close()
        server.close()
        ctx.term()


def move(rig: Rig, delta: list[float], n: int = 1) -> Message:
    reply = None
    for _ in range(n):
        reply = rig.request("ee_delta", {"gripper_close": 0.0},
                            {"delta_xyz_m": np.array(delta, dtype=np.float64)})
        time.sleep(0.1)
    assert reply is not None
    return reply


def test_streams_state_and_every_camera(rig: Rig) -> None:
    st = rig.state_now()
    assert st.body["task"] == "reach"
    assert st.arrays["joint_pos_rad"].shape == (7,)
    seen = set()
    deadline = time.monotonic() + 5
    while seen != {"front", "wrist"} and time.monotonic() < deadline:
        rig.frames.poll()
        for cam in ("front", "wrist"):
            f = rig.frames.latest("camera_frame", key=cam)
            if f is not None:
                assert f.arrays["image"].shape == (48, 48, 3)
                assert f.arrays["image"].dtype == np.uint8
                seen.add(cam)
        time.sleep(0.01)
    assert seen == {"front", "wrist"}


def test_ee_delta_moves_the_arm_and_reports_what_was_applied(rig: Rig) -> None:
    start = rig.state_now().arrays["ee_pos_m"].copy()
    reply = move(rig, [0.0, 0.03, 0.0], n=5)
    assert reply.body["ok"], reply.body
    np.testing.assert_allclose(reply.arrays["delta_xyz_m"], [0.0, 0.03, 0.0], atol=1e-9)
    end = rig.state_now().arrays["ee_pos_m"]
    assert end[1] - start[1] > 0.035, (start, end)  # more than one step: it tracks


def test_driver_clips_oversized_steps(rig: Rig) -> None:
    reply = move(rig, [0.5, 0.0, 0.0])
    assert reply.body["ok"]
    assert reply.arrays["delta_xyz_m"][0] <= 0.05 + 1e-12


def test_watchdog_stops_the_arm_when_commands_stop(rig: Rig) -> None:
    move(rig, [0.0, 0.05, 0.0], n=3)
    time.sleep(0.4)
    st = rig.state_now()
    assert rig.server.stats.watchdog_trips >= 1
    assert st.body["watchdog_tripped"]
    assert np.abs(st.arrays["joint_vel_rad_s"]).max() < 0.02


def test_estop_latches_refuses_motion_and_releases(rig: Rig) -> None:
    assert rig.request("estop", {"reason": "test"}).body["ok"]
    before = rig.state_now()
    assert before.body["estop"]
    refused = move(rig, [0.0, 0.05, 0.0])
    assert not refused.body["ok"]
    assert refused.body["reason"] == "estop_latched"
    time.sleep(0.2)
    after = rig.state_now()
    assert np.linalg.norm(after.arrays["ee_pos_m"] - before.arrays["ee_pos_m"]) < 1e-3
    assert rig.request("estop_release").body["ok"]
    assert move(rig, [0.0, 0.02, 0.0]).body["ok"]


def test_incomplete_command_is_refused_and_server_keeps_serving(rig: Rig) -> None:
    reply = rig.request("ee_delta", {"gripper_close": 0.0})  # no delta array
    assert not reply.body["ok"]
    assert reply.body["reason"] == "missing_field"
    assert rig.request("status").body["ok"]


@pytest.mark.parametrize("command", ["ee_pose", "joint", "gripper"])
def test_removed_commands_are_refused_as_unknown(rig: Rig, command: str) -> None:
    """ee_pose, joint and gripper were listed but never served; a peer that still sends one
    (our encode refuses to, so the frames are written by hand) gets the protocol's error."""
    assert command not in ARM_COMMANDS
    frames = encode("arm_command", "test", 10**6, {"command": "home"})
    header = msgpack.unpackb(bytes(memoryview(frames[0])))
    header["body"]["command"] = command
    sock = rig.cmd.socket
    sock.send_multipart([msgpack.packb(header)])
    assert sock.poll(2000)
    reply = decode(sock.recv_multipart())
    assert reply.body["ok"] is False and reply.body["reason"] == "bad_choice"
    assert repr(command) in reply.body["data"]["detail"]
    assert rig.server.stats.commands == 0  # refused on arrival: the driver never saw it
    assert rig.request("status").body["ok"]


def test_reset_rerandomises_and_expert_answers(rig: Rig) -> None:
    reply = rig.request("reset", {"seed": 3})
    assert reply.body["ok"]
    assert reply.body["data"]["description"]
    expert = rig.request("expert_action")
    assert expert.body["ok"]
    assert expert.arrays["action"].shape == (4,)
