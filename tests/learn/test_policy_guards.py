"""Guarded policies between real processes: a driver and an actor (`robolearn driver`,
`robolearn actor`) with this test standing in as the learner on the real weights socket.
Non-finite weights are refused; weights whose critic gives NaN/inf Q-values hold the arm and
say so in telemetry; a learner that falls silent is reported dead."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import zmq

from robolearn.config import RunConfig, load_config
from robolearn.learn.cqn import CQNAgent
from robolearn.learn.observation import obs_spec_for
from robolearn.learn.weights import pack_policy
from robolearn.protocol import Publisher, Subscriber
from robolearn.store import Store
from tests.learn.test_learner_process import LOADED_MACHINE, TINY_CQN, spawn, stop


class Rig:
    """The test's side of the run: the learner's weights PUB, the actor's telemetry and
    the driver's arm state, each over the run's real (authenticated) sockets."""

    def __init__(self, cfg: RunConfig, *, learner: bool = True) -> None:
        self.cfg = cfg
        self.ctx = zmq.Context()
        addr = cfg.learner.weights_address
        self.weights = (Publisher(self.ctx, addr, "learner",
                                  security=cfg.socket_security(addr, "learner"))
                        if learner else None)
        tele = cfg.actor.telemetry_address
        self.telemetry = Subscriber(self.ctx, tele, types=("telemetry",),
                                    security=cfg.socket_security(tele, "service"))
        state = cfg.robot.state_address
        self.state = Subscriber(self.ctx, state, types=("arm_state",),
                                security=cfg.socket_security(state, "service"))
        self.version = 0

    def publish(self, parts: dict[str, dict[str, torch.Tensor]], *,
                new_version: bool = True) -> None:
        assert self.weights is not None
        self.version += new_version or not self.version
        layout, blob = pack_policy(parts)
        self.weights.publish("weights", {
            "session": "test-learner", "version": self.version, "update_step": self.version,
            "env_steps": 0, "pretraining": False, "layout": layout}, {"blob": blob})

    def ee_pos(self) -> np.ndarray:
        msg = self.state.wait_new("arm_state", timeout_s=10.0)
        assert msg is not None, "the driver stopped publishing its state"
        return np.array(msg.arrays["ee_pos_m"])

    def wait_for(self, predicate, timeout_s: float, what: str, *,
                 keep_publishing: dict | None = None) -> dict:
        deadline = time.monotonic() + timeout_s
        seen: dict = {}
        while time.monotonic() < deadline:
            if keep_publishing is not None:  # PUB/SUB: a late subscriber needs a re-send
                self.publish(keep_publishing, new_version=False)
            msg = self.telemetry.wait_new("telemetry", timeout_s=0.5)
            if msg is not None:
                seen = dict(msg.body["values"])
                if predicate(seen):
                    return seen
        raise AssertionError(f"timed out waiting for {what}; last telemetry {seen}")

    def close(self) -> None:
        for sock in (self.weights, self.telemetry, self.state):
            if sock is not None:
                sock.close()
        self.ctx.term()


def policy_parts(cfg: RunConfig, fill: float | None) -> dict[str, dict[str, torch.Tensor]]:
    """The actor's policy networks (as the learner ships them), every float tensor set to
    `fill` (None: as initialised)."""
    agent = CQNAgent(cfg.learner.cqn, obs_spec_for(cfg), cfg.actor.action_scale.action_dim)
    parts = agent.policy_state_dict()
    if fill is not None:
        for sd in parts.values():
            for tensor in sd.values():
                if tensor.is_floating_point():
                    tensor.fill_(fill)
    return parts


def rig_config(write_config, sock_dir: Path, **learner) -> Path:
    return write_config(
        actor={"observe_state": True, "episode_steps": 15, "end_on_success": False,
               "policy": {"kind": "cqn", "eval_mode": True}, **LOADED_MACHINE},
        learner={"enabled": True, "observation": "state", "heartbeat_timeout_s": 2.0,
                 "transitions_address": f"ipc://{sock_dir}/transitions",
                 "weights_address": f"ipc://{sock_dir}/weights", "cqn": TINY_CQN, **learner},
    )


def moved_m(positions: list[np.ndarray]) -> float:
    return float(max(np.linalg.norm(p - positions[0]) for p in positions))


def test_nan_weights_are_refused_and_the_waiting_arm_stays_still(write_config,
                                                                  sock_dir: Path) -> None:
    # The actor holds the arm until the learner's first trained weights: a version full of
    # NaN must not count as those (loaded, the NaN critic's greedy pass picks bin 0 at every
    # level and drives the arm into a corner of the workspace box).
    path = rig_config(write_config, sock_dir, pretrain_updates=10)
    cfg = load_config(path)
    driver = spawn("driver", str(path))
    actor = spawn("actor", str(path))
    rig = Rig(cfg)
    try:
        rig.wait_for(lambda v: v.get("state") == "waiting_for_weights", 120,
                     "the actor waiting for pretrained weights")
        nan = policy_parts(cfg, float("nan"))
        start = rig.ee_pos()
        positions = [start]
        deadline = time.monotonic() + 4.0
        while time.monotonic() < deadline:
            rig.publish(nan)
            values = rig.wait_for(lambda v: True, 5, "telemetry")
            assert values["state"] == "waiting_for_weights", values
            assert values["policy_version"] == 0  # the NaN versions were never loaded
            positions.append(rig.ee_pos())
        assert moved_m(positions) < 1e-3, positions
        # The same wiring with sane weights: the actor takes them and starts its episodes,
        # so the stillness above was the refusal, not a lost message.
        good = policy_parts(cfg, None)
        rig.publish(good)
        values = rig.wait_for(lambda v: "step" in v, 60, "the actor acting on good weights",
                              keep_publishing=good)
        assert values["policy_version"] >= 1 and values["policy_fault"] is None
        assert actor.poll() is None
    finally:
        rig.close()
        for proc in (actor, driver):
            stop(proc)


def test_weights_with_non_finite_q_values_hold_the_arm_and_a_silent_learner_is_reported(
        write_config, sock_dir: Path) -> None:
    # Finite weights so large that every Q-value overflows to NaN: they load, and only the
    # check of the Q-values themselves (not the grid action argmax makes of them) holds the
    # arm.
    path = rig_config(write_config, sock_dir)
    cfg = load_config(path)
    driver = spawn("driver", str(path))
    actor = spawn("actor", str(path))
    rig = Rig(cfg)
    try:
        huge = policy_parts(cfg, 1e30)
        rig.publish(huge)
        values = rig.wait_for(lambda v: v.get("state") == "policy_fault", 120,
                              "the actor holding on a policy fault", keep_publishing=huge)
        assert values["policy_fault"] == "non_finite_q"
        assert values["policy_version"] >= 1  # the weights were loaded: finite
        first = values["episode"]
        values = rig.wait_for(lambda v: "step" in v and v["episode"] >= first + 2, 120,
                              "two more episodes under the fault", keep_publishing=huge)
        assert values["state"] == "policy_fault" and values["learner_alive"] is True
        # What the actor commanded in a whole episode under the fault: zero motion, the
        # gripper where it was (the arm's measured position is the sim's to keep; a stalled
        # loop lets the sim sag by centimetres, which is no command of the policy's).
        with Store.open(cfg.data_dir) as store:
            held = [e for e in store.list_episodes() if e.num_steps][first + 1]
            action = store.load_episode(held.id).arrays["action"]
        assert action.shape == (cfg.actor.episode_steps, cfg.actor.action_scale.action_dim)
        np.testing.assert_array_equal(action[:, :3], 0.0)
        assert np.unique(action[:, -1]).size == 1
        # The learner goes quiet: within learner.heartbeat_timeout_s (2 s) the actor says so.
        values = rig.wait_for(lambda v: v.get("learner_alive") is False, 30,
                              "learner_alive false after the learner fell silent")
        assert values["learner_silent_s"] >= cfg.learner.heartbeat_timeout_s
        assert actor.poll() is None  # the actor never stops for it
    finally:
        rig.close()
        for proc in (actor, driver):
            stop(proc)


def test_a_killed_learner_is_reported_dead_by_the_actor(write_config, sock_dir: Path) -> None:
    path = rig_config(write_config, sock_dir, min_transitions=16, publish_every=3,
                      utd=None, checkpoint_every=10_000)
    cfg = load_config(path)
    driver = spawn("driver", str(path))
    learner = spawn("learner", str(path))
    actor = spawn("actor", str(path))
    rig = Rig(cfg, learner=False)  # the real learner publishes
    try:
        rig.wait_for(lambda v: v.get("learner_alive") is True and (v["policy_version"] or 0)
                     >= 1, 180, "the actor hearing the learner")
        learner.send_signal(signal.SIGKILL)
        learner.wait(10)
        values = rig.wait_for(lambda v: v.get("learner_alive") is False, 30,
                              "learner_alive false after the learner died")
        assert values["learner_silent_s"] >= cfg.learner.heartbeat_timeout_s
        assert actor.poll() is None
    finally:
        rig.close()
        for proc in (actor, learner, driver):
            stop(proc)


# A process that is not the run's: it knows the public wire format (robolearn's codec) and
# the weights address from the config, but none of the run's keys. It binds the learner's
# weights address, publishes well-formed weights and learner_status heartbeats for a while,
# and reports what its socket saw of connecting peers (a zmq socket monitor), so the test
# can tell "the actor connected and was refused" from "the actor never connected".
IMPOSTOR = r"""
import json, sys, time
from collections import Counter

import numpy as np
import zmq
from zmq.utils.monitor import recv_monitor_message

from robolearn.protocol import encode
from robolearn.protocol.codec import send_frames

address, mode, weights_file, seconds, version = sys.argv[1:6]
with np.load(weights_file) as f:
    blob, layout = f["blob"], json.loads(str(f["layout"]))
ctx = zmq.Context()
pub = ctx.socket(zmq.PUB)
pub.linger = 0
if mode == "curve":  # a CURVE server, but with its own key pair: not the learner's
    public, secret = zmq.curve_keypair()
    pub.curve_secretkey, pub.curve_publickey, pub.curve_server = secret, public, True
monitor = pub.get_monitor_socket()
pub.bind(address)
print("bound", pub.getsockopt(zmq.LAST_ENDPOINT).decode(), flush=True)
version = int(version)
seq = time.time_ns() // 1000
events, sent = Counter(), 0
deadline = time.monotonic() + float(seconds)
while time.monotonic() < deadline:
    weights = {"session": "impostor", "version": version, "update_step": version,
               "env_steps": 0, "pretraining": False, "layout": layout}
    status = {"session": "impostor", "state": "training", "version": version,
              "update_step": version, "env_steps": 0}
    for kind, body, arrays in (("weights", weights, {"blob": blob}),
                               ("learner_status", status, None)):
        send_frames(pub, encode(kind, "learner", seq, body, arrays), zmq.NOBLOCK)
        seq += 1
    sent += 1
    while monitor.poll(0):
        events[zmq.Event(recv_monitor_message(monitor)["event"]).name] += 1
    time.sleep(0.1)
print(json.dumps({"sent": sent, "events": events}), flush=True)
pub.disable_monitor()
monitor.close()
pub.close()
ctx.term()
"""


@pytest.mark.parametrize("impostor_curve", ["none", "curve"])
def test_a_foreign_process_cannot_replace_the_weights_of_a_dead_learner(
        write_config, sock_dir: Path, tmp_path: Path, impostor_curve: str) -> None:
    # The learner dies; a foreign process binds its weights address (the ipc file is
    # replaced: zmq's bind unlinks what the dead learner left) and offers weights with a far
    # higher version and heartbeats. The actor's subscriber is a CURVE client pinned to the
    # learner's public key: a plain-text server fails the handshake (mechanism mismatch) and
    # a CURVE server with another key cannot answer the client's HELLO, so nothing reaches
    # the policy. Then the run's own learner identity on the same address gets through.
    path = rig_config(write_config, sock_dir, min_transitions=16, publish_every=3,
                      utd=None, checkpoint_every=10_000)
    cfg = load_config(path)
    address = cfg.learner.weights_address
    sock_file = Path(address.removeprefix("ipc://"))
    weights_file = tmp_path / "impostor_weights.npz"
    layout, blob = pack_policy(policy_parts(cfg, None))  # finite, loadable, not the learner's
    np.savez(weights_file, blob=blob, layout=json.dumps(layout))
    impostor_version = 1_000_000
    driver = spawn("driver", str(path))
    learner = spawn("learner", str(path))
    actor = spawn("actor", str(path))
    rig = Rig(cfg, learner=False)  # the real learner publishes
    control: Rig | None = None  # the run's learner identity, bound after the impostor
    impostor: subprocess.Popen[str] | None = None
    try:
        rig.wait_for(lambda v: v.get("learner_alive") is True and (v["policy_version"] or 0)
                     >= 1, 180, "the actor hearing the learner")
        learner_file = (sock_file.stat().st_ino, sock_file.stat().st_mtime_ns)
        learner.send_signal(signal.SIGKILL)
        learner.wait(10)
        values = rig.wait_for(lambda v: v.get("learner_alive") is False, 30,
                              "learner_alive false after the learner died")
        version = values["policy_version"]
        assert version >= 1

        impostor = subprocess.Popen(
            [sys.executable, "-c", IMPOSTOR, address, impostor_curve, str(weights_file),
             "8", str(impostor_version)],
            stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        assert impostor.stdout is not None
        bound = impostor.stdout.readline().split()
        assert bound == ["bound", address], bound
        # The impostor owns the endpoint now: a new socket file (an inode can be reused).
        assert (sock_file.stat().st_ino, sock_file.stat().st_mtime_ns) != learner_file
        seen = 0
        while impostor.poll() is None:
            values = rig.wait_for(lambda v: True, 5, "telemetry while the impostor publishes")
            assert values["policy_version"] == version, values
            assert values["learner_alive"] is False, values
            assert values["learner_error"] is None, values
            seen += 1
        report = json.loads(impostor.stdout.read().strip().splitlines()[-1])
        assert impostor.returncode == 0
        assert report["sent"] >= 40 and seen >= 8, (report, seen)
        # The actor really reached the impostor's socket (transport accepted, repeatedly,
        # as it reconnects) and no handshake ever succeeded.
        events = report["events"]
        assert events.get("ACCEPTED", 0) >= 2, events
        assert events.get("HANDSHAKE_SUCCEEDED", 0) == 0, events
        assert sum(n for name, n in events.items()
                   if name.startswith("HANDSHAKE_FAILED")) >= 2, events
        values = rig.wait_for(lambda v: True, 5, "telemetry after the impostor left")
        assert values["policy_version"] == version and values["learner_alive"] is False
        assert actor.poll() is None

        # Control: the same address bound with the run's learner identity is heard, so the
        # refusal above was the authentication, not a lost message.
        control = Rig(cfg)
        control.version = version + 100
        good = policy_parts(cfg, None)
        control.publish(good)
        control.wait_for(lambda v: v.get("policy_version") == version + 101
                         and v.get("learner_alive") is True, 60,
                         "the actor taking weights from the run's learner identity",
                         keep_publishing=good)
        assert actor.poll() is None
    finally:
        if impostor is not None and impostor.poll() is None:
            impostor.kill()
            impostor.wait(10)
        for side in (control, rig):
            if side is not None:
                side.close()
        for proc in (actor, learner, driver):
            stop(proc)
