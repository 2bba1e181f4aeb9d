"""The learner's side of worker-run shaping rewards: a finished episode waits for its
episode_rewards, gets inline + delta, and bad or missing deltas never corrupt the replay."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import zmq

from robolearn.config import load_config
from robolearn.learn.learner import Learner
from robolearn.protocol.codec import Message

STEPS = 3
LOW_DIM = 8 + 3 + 3  # proprio + reach's state + the target's offset from the hand


@pytest.fixture
def learner(write_config, sock_dir: Path) -> Iterator[Learner]:
    cfg = load_config(write_config(
        actor={"observe_state": True},
        rewards={"shaping": [{"source": "frame_mean", "weight": 0.5, "process": "worker"}],
                 "late_wait_s": 30.0},
        learner={"enabled": True, "observation": "state", "load_from_store": False,
                 "transitions_address": f"ipc://{sock_dir}/transitions",
                 "weights_address": f"ipc://{sock_dir}/weights",
                 "cqn": {"frame_stack": 1, "hidden_dim": 16, "feature_dim": 8, "atoms": 11}}))
    ctx = zmq.Context()
    lrn = Learner(cfg, ctx)
    try:
        yield lrn
    finally:
        lrn.close()
        ctx.term()


_SEQ = itertools.count(1)


def _msg(type_: str, body: dict, arrays: dict | None = None) -> Message:
    # As the actor's socket sends them: rising sequence numbers (the learner checks).
    return Message(type_, "actor", next(_SEQ), time.monotonic_ns(), body, arrays or {})


def _episode(lrn: Learner, key: str) -> None:
    for t in range(STEPS):
        arrays = {"action": np.zeros(4, np.float32),
                  "next_low_dim": np.full(LOW_DIM, t + 1, np.float32)}
        if t == 0:
            arrays["low_dim"] = np.zeros(LOW_DIM, np.float32)
        lrn._on_message(_msg("transition", {
            "episode": key, "step": t, "reward": float(t), "terminated": False,
            "truncated": t == STEPS - 1, "intervention": False, "recorded": False,
            "task": "reach"}, arrays))


def _rewards(lrn: Learner) -> np.ndarray:
    return lrn.online.episode(lrn.online.episode_keys[-1]).reward


def test_an_episode_waits_for_its_worker_rewards_and_gets_inline_plus_delta(learner) -> None:
    _episode(learner, "a")
    assert len(learner.online) == 0  # held for its episode_rewards
    learner._on_message(_msg("episode_rewards", {"episode": "a", "missing": 0},
                             {"reward_delta": np.array([0.5, 0.25, 0.0], np.float32)}))
    np.testing.assert_allclose(_rewards(learner), [0.5, 1.25, 2.0])


def test_a_wrong_length_or_unknown_delta_is_ignored_and_the_wait_ends(learner) -> None:
    learner._on_message(_msg("episode_rewards", {"episode": "nobody", "missing": 0},
                             {"reward_delta": np.zeros(STEPS, np.float32)}))
    _episode(learner, "b")
    learner._on_message(_msg("episode_rewards", {"episode": "b", "missing": 0},
                             {"reward_delta": np.ones(STEPS + 1, np.float32)}))
    assert len(learner.online) == 0  # the wrong-length delta was not applied
    learner.flush_waiting(now=time.monotonic() + 1.0)
    assert len(learner.online) == 0  # still within late_wait_s
    learner.flush_waiting(now=time.monotonic() + 31.0)
    np.testing.assert_allclose(_rewards(learner), [0.0, 1.0, 2.0])  # inline only
    # A delta arriving after the episode was added changes nothing.
    learner._on_message(_msg("episode_rewards", {"episode": "b", "missing": 0},
                             {"reward_delta": np.ones(STEPS, np.float32)}))
    np.testing.assert_allclose(_rewards(learner), [0.0, 1.0, 2.0])
    assert learner.counters.episodes == 1 and learner.counters.env_steps == STEPS
