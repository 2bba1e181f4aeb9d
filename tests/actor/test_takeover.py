"""A takeover over real processes: an operator teleoperates the sim arm through the actor
process; those steps are stored as interventions and reach the learner's demo-side sampling
(HIL-SERL), while the policy's own steps do not."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import zmq

from robolearn.actor.control import ActorControlClient
from robolearn.config import load_config
from robolearn.errors import PeerTimeout
from robolearn.learn.learner import Learner
from robolearn.processes import ProcessGroup
from robolearn.store import Store

TINY_CQN = {"frame_stack": 1, "batch_size": 32, "demo_batch_size": 32, "hidden_dim": 16,
            "feature_dim": 16, "atoms": 5}
TELEOP = [0.2, 0.0, 0.0, 1.0]  # slowly along +x with the gripper closed


@pytest.fixture
def cfg_path(write_config, sock_dir: Path) -> Path:
    return write_config(
        actor={"observe_state": True, "episode_steps": 30, "end_on_success": False,
               "policy": {"kind": "zero"}, "episodes": 1, "live_fps": 0,
               # a loaded 2-core CI machine must not turn the operator's stream stale
               "teleop_stale_ms": 2000, "takeover_timeout_ms": 4000},
        learner={"enabled": True, "observation": "state", "load_from_store": False,
                 "transitions_address": f"ipc://{sock_dir}/transitions",
                 "weights_address": f"ipc://{sock_dir}/weights", "cqn": TINY_CQN},
    )


def test_takeover_steps_are_stored_as_interventions_and_sampled_as_demos(cfg_path: Path) -> None:
    cfg = load_config(cfg_path)
    ctx = zmq.Context()
    learner = Learner(cfg, ctx)  # binds the transitions socket before the actor pushes
    group = ProcessGroup(cfg, log_level="warning")
    client = ActorControlClient(cfg.actor.control_address,
                                cfg.socket_security(cfg.actor.control_address, "operator"),
                                ctx=ctx, timeout_s=2.0)
    try:
        group.start_drivers()
        group.start_actor()
        deadline = time.monotonic() + 60.0
        while True:  # until the actor process is up and a few steps into its episode
            learner.drain(0.0)
            try:
                if client.status().step >= 3:
                    break
            except PeerTimeout:
                pass
            assert time.monotonic() < deadline, "the actor never started stepping"
            time.sleep(0.02)
        assert client.takeover(True, operator="tester").takeover
        start = client.status().step
        while client.teleop(TELEOP).step < start + 6:
            learner.drain(0.0)
            time.sleep(0.03)
        assert not client.takeover(False).takeover
        assert group.wait_any() == [("actor", 0)]  # its one episode ran to the step limit
        deadline = time.monotonic() + 30.0
        while learner.counters.episodes < 1:
            assert time.monotonic() < deadline, "the episode never reached the learner"
            learner.drain(0.1)
    finally:
        client.close()
        group.stop()
        learner.close()
        ctx.term()

    with Store.open(cfg.data_dir) as store:
        (record,) = store.list_episodes()
        data = store.load_episode(record.id)
    flags = data.arrays["intervention"]
    actions = data.arrays["action"]
    assert record.has_intervention and 6 <= flags.sum() < len(flags)
    np.testing.assert_allclose(actions[flags], np.tile(TELEOP, (flags.sum(), 1)), atol=1e-6)
    np.testing.assert_allclose(actions[~flags], np.tile([0, 0, 0, -1], ((~flags).sum(), 1)))

    # The failed episode enters the demo buffer with only its intervention steps sampleable.
    assert len(learner.online) == len(flags) and len(learner.demos) == flags.sum()
    batch = learner.replay.sample()
    online, demo = slice(0, TINY_CQN["batch_size"]), slice(TINY_CQN["batch_size"], None)
    demo_actions = batch.action[demo].numpy()
    assert batch.is_demo[demo].all()
    np.testing.assert_allclose(demo_actions, np.tile(TELEOP, (len(demo_actions), 1)), atol=1e-6)
    # Online rows are demo-weighted exactly where the operator was in control.
    online_teleop = np.isclose(batch.action[online].numpy()[:, -1], 1.0)
    np.testing.assert_array_equal(batch.is_demo[online].numpy(), online_teleop)
