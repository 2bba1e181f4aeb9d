"""A process without the run's keys attacks a running rig (sim driver + actor processes on
loopback tcp, as `robolearn up` starts them): it cannot release the e-stop, move the arm,
take over, or stand in for the learner; the run's own operator still can."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import zmq
import zmq.auth

from robolearn.config import RunConfig, parse_config
from tests.actor.test_control import Rig
from tests.conftest import free_port, run_config_dict

# Runs in its own interpreter: raw pyzmq, the wire format by hand, no robolearn keys. With
# `keys: "own"` it brings a CURVE key pair of its own and the servers' public keys (which
# are not secret), so only the allow-list can stop it.
INTRUDER = textwrap.dedent('''
    import json, sys, time
    import msgpack, numpy as np, zmq
    plan = json.loads(sys.argv[1])
    ctx = zmq.Context()
    answered = {}

    def envelope(kind, body, seq, arrays=()):
        header = {"v": 1, "type": kind, "sender": "operator", "seq": seq,
                  "sent_ns": time.monotonic_ns(), "body": body,
                  "arrays": [[n, str(a.dtype), list(a.shape)] for n, a in arrays]}
        return [msgpack.packb(header)] + [a.tobytes() for _, a in arrays]

    def dealer(address, server_key):
        s = ctx.socket(zmq.DEALER)
        s.linger = 0
        if plan["keys"] == "own":
            public, secret = zmq.curve_keypair()
            s.curve_serverkey = server_key.encode()
            s.curve_publickey, s.curve_secretkey = public, secret
        s.connect(address)
        return s

    def send(s, frames):  # a DEALER with no admitted connection would block: don't wait
        try:
            s.send_multipart(frames, zmq.NOBLOCK)
        except zmq.Again:
            pass

    drv = dealer(plan["command"], plan["driver_key"])
    ctl = dealer(plan["control"], plan["actor_key"])
    down = np.array([0.0, 0.0, -0.05])
    for i in range(60):  # the replayed sequence number of the report, too
        send(drv, envelope("arm_command", {"command": "estop_release"}, 5))
        send(drv, envelope("arm_command", {"command": "ee_delta",
                                                    "gripper_close": 0.0}, 5 + i,
                                    [("delta_xyz_m", down)]))
        send(ctl, envelope("actor_command", {"command": "release_estop",
                                                      "operator": "admin"}, 100 + 3 * i))
        send(ctl, envelope("actor_command", {"command": "takeover", "active": True,
                                                      "operator": "admin"}, 101 + 3 * i))
        send(ctl, envelope("actor_command", {"command": "teleop"}, 102 + 3 * i,
                                    [("action", np.array([0, 0, -1, 0], np.float32))]))
        time.sleep(0.02)
    for name, s in (("driver", drv), ("actor", ctl)):
        answered[name] = 0
        while s.poll(300):
            s.recv_multipart()
            answered[name] += 1
    print(json.dumps(answered))
''')


@pytest.fixture
def rig(sock_dir: Path, tmp_path: Path):
    raw = run_config_dict(sock_dir, tmp_path / "data", actor={
        "policy": {"kind": "zero"}, "episode_steps": 10_000, "record": False,
        "live_fps": 0, "max_obs_age_ms": 1000.0,
        "control_address": f"tcp://127.0.0.1:{free_port()}",
        "telemetry_address": f"tcp://127.0.0.1:{free_port()}"})
    raw["robot"].update({"command_address": f"tcp://127.0.0.1:{free_port()}",
                         "state_address": f"tcp://127.0.0.1:{free_port()}"})
    r = Rig(parse_config(raw))
    try:
        r.status()  # waits for the actor to start
        yield r
    finally:
        r.close()


def _attack(cfg: RunConfig, keys: str) -> dict[str, int]:
    ring_dir = cfg.data_dir / "keys"
    plan = {"command": cfg.robot.command_address, "control": cfg.actor.control_address,
            "keys": keys,
            "driver_key": zmq.auth.load_certificate(ring_dir / "driver.key")[0].decode(),
            "actor_key": zmq.auth.load_certificate(ring_dir / "actor.key")[0].decode()}
    out = subprocess.run([sys.executable, "-c", INTRUDER, json.dumps(plan)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("keys", ["none", "own"])
def test_a_keyless_process_cannot_release_the_estop_or_move_the_arm(rig: Rig,
                                                                   keys: str) -> None:
    status = rig.client.estop(operator="alice", reason="test")
    assert status.estop_latched
    before = rig.driver_status()
    ee_before = rig.ee()

    answered = _attack(rig.cfg, keys)

    assert answered == {"driver": 0, "actor": 0}  # not even a refusal reaches it
    after = rig.driver_status()
    assert after["estop"] is True
    assert after["motions"] == before["motions"]
    status = rig.status()  # retries a reply slowed by a loaded machine (CI: once, 2 s)
    assert status.estop_latched and not status.takeover
    np.testing.assert_allclose(rig.ee(), ee_before, atol=2e-3)
    # The run's own operator can still release it.
    assert not rig.client.release_estop(operator="alice").estop_latched
    assert rig.driver_status()["estop"] is False


def test_a_direct_driver_command_is_clipped_to_the_safety_box(rig: Rig) -> None:
    """The run's own keys, straight to the driver past the actor's filter: the driver keeps
    the end effector inside safety.* (the sim's own box is wider)."""
    rig.client.pause(operator="test")  # the actor stops commanding
    box_min = np.array(rig.cfg.safety.workspace_min_m)
    lowest = rig.ee()[2]
    for _ in range(40):
        reply = rig.driver.request("arm_command", {"command": "ee_delta", "gripper_close": 0.0},
                                   {"delta_xyz_m": np.array([0.0, 0.0, -0.05])}, timeout_s=2.0)
        assert reply.body["ok"]
        assert reply.arrays["delta_xyz_m"][2] >= -rig.cfg.safety.max_step_m - 1e-9
        time.sleep(0.05)
        lowest = min(lowest, rig.ee()[2])
    assert lowest >= box_min[2] - 0.01  # the tracking controller may undershoot a little
    assert rig.driver_status()["motions"] >= 40
