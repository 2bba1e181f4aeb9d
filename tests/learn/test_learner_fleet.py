"""One learner, several robots: every robot's actor feeds it over real CURVE sockets, each
message is credited to the robot whose key sent it, and a robot that floods the learner
cannot hold back another robot's episodes."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import pytest
import zmq

from robolearn.config import RunConfig, parse_config
from robolearn.config.fleet import robot_views
from robolearn.learn.learner import Learner
from robolearn.protocol import Pusher, Subscriber, decode, encode
from tests.conftest import run_config_dict
from tests.learn.test_learner_faults import transition
from tests.learn.test_learner_process import TINY_CQN

FLOOD = 6000


@pytest.fixture
def cfg(tmp_path: Path, sock_dir: Path) -> RunConfig:
    raw = run_config_dict(sock_dir, tmp_path / "data",
                          actor={"observe_state": True, "episode_steps": 8},
                          learner={"enabled": True, "observation": "state",
                                   "min_transitions": 10**9, "utd": None,
                                   "transitions_address": f"ipc://{sock_dir}/transitions",
                                   "weights_address": f"ipc://{sock_dir}/weights",
                                   "cqn": TINY_CQN})
    raw["fleet"] = {"robots": [{"name": "fast"}, {"name": "slow"}]}
    return parse_config(raw)


def test_a_flooding_robot_cannot_crowd_out_another(cfg: RunConfig) -> None:
    ctx = zmq.Context()
    learner = Learner(cfg, ctx)
    addr = cfg.learner.transitions_address
    fast, slow = robot_views(cfg)
    pushers = {v.robot_name: Pusher(ctx, addr, f"actor-{v.robot_name}", sndhwm=100_000,
                                    security=v.socket_security(addr, "actor"))
               for v in (fast, slow)}
    low, dim = learner.spec.low_dim, learner.action_dim
    try:
        time.sleep(0.3)  # both connected
        # The fast robot queues a flood of whole 8-step episodes first...
        for i in range(FLOOD):
            pushers["fast"].send("transition", *transition(f"f{i // 8}", i % 8, low, dim,
                                                           last=i % 8 == 7,
                                                           intervention=False))
        time.sleep(0.5)
        # ...then the slow robot sends three episodes, which the learner must take long
        # before it has worked through the flood.
        for e in range(3):
            for t in range(8):
                pushers["slow"].send("transition", *transition(f"s{e}", t, low, dim,
                                                               last=t == 7,
                                                               intervention=e == 0))
        handled = 0
        deadline = time.monotonic() + 60
        while learner.fleet.robots["slow"].episodes < 3 and time.monotonic() < deadline:
            handled += learner.drain(0.2, max_messages=10)
        assert learner.fleet.robots["slow"].episodes == 3
        assert handled < FLOOD / 10, f"the slow robot waited for {handled} messages"
        while handled < FLOOD + 24 and time.monotonic() < deadline:
            handled += learner.drain(0.2)
        report = learner.fleet.report()
        assert report["fast"]["transitions"] == FLOOD
        assert report["fast"]["episodes"] == FLOOD // 8
        assert report["slow"] == {**report["slow"], "transitions": 24, "episodes": 3,
                                  "successes": 3, "intervention_episodes": 1,
                                  "env_steps": 24}
        assert report["slow"]["transitions_per_s"] > 0
        assert learner.counters.episodes == FLOOD // 8 + 3
    finally:
        for p in pushers.values():
            p.close()
        learner.close()
        ctx.term()


def test_the_learner_publishes_per_robot_numbers_and_refuses_a_stranger(
        cfg: RunConfig) -> None:
    ctx = zmq.Context()
    learner = Learner(cfg, ctx)
    waddr, taddr = cfg.learner.weights_address, cfg.learner.transitions_address
    fast = robot_views(cfg)[0]
    sub = Subscriber(ctx, waddr, types=("learner_status",),
                     security=fast.socket_security(waddr, "actor"))
    push = Pusher(ctx, taddr, "actor-fast", security=fast.socket_security(taddr, "actor"))
    low, dim = learner.spec.low_dim, learner.action_dim
    try:
        time.sleep(0.3)
        learner.start()
        # A plain "actor" is no robot of this fleet: what it sends is refused.
        for t in range(8):
            frames = encode("transition", "actor", t, *transition("x", t, low, dim,
                                                                 last=t == 7))
            learner._on_message(dataclasses.replace(decode(frames), peer="actor"))
        assert learner.counters.episodes == 0 and learner.assembler.pending_episodes == 0
        for t in range(8):
            push.send("transition", *transition("e", t, low, dim, last=t == 7))
        deadline = time.monotonic() + 20
        while learner.counters.episodes < 1 and time.monotonic() < deadline:
            learner.drain(0.2)
        status = None
        while time.monotonic() < deadline:
            status = sub.wait_new("learner_status", 5.0)
            if status is not None and status.body["robots"]["fast"]["episodes"] == 1:
                break
        assert status is not None
        robots = status.body["robots"]
        assert set(robots) == {"fast", "slow"}
        assert robots["fast"]["transitions"] == 8 and robots["slow"]["transitions"] == 0
        assert robots["slow"]["last_seen_s"] is None
    finally:
        push.close()
        sub.close()
        learner.close()
        ctx.term()
