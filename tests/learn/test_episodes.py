"""EpisodeAssembler: actor episodes rebuilt from wire-validated transition, episode_stored and
episode_rewards messages, and fed whole into real replay buffers."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from robolearn.learn.batch import ObsSpec
from robolearn.learn.episodes import EpisodeAssembler, PendingLimits, Source
from robolearn.learn.replay import DemoAndOnline, ReplayBuffer
from robolearn.protocol.codec import Message, decode, encode

SPEC = ObsSpec(cameras=("cam",), image_hw=(4, 4), frame_stack=1, low_dim=3)
DIM = 2
ACTOR: Source = ("actor", "actor")
ROOMY = PendingLimits(max_steps=1000, max_bytes=10**9, max_steps_total=4000)
_SEQ = itertools.count(1)


def _wire(type_: str, body: dict, arrays: dict | None = None,
          peer: str | None = "actor") -> Message:
    """A message as the learner receives it: encoded, validated and decoded."""
    return decode(encode(type_, "actor", next(_SEQ), body, arrays), peer=peer)


def _step(key: str, t: int, *, last: bool = False, terminated: bool = False,
          recorded: bool = False, intervention: bool = False) -> Message:
    arrays = {"action": np.full(DIM, t, np.float32),
              "next_low_dim": np.full(SPEC.low_dim, t + 1, np.float32),
              "next_rgb_cam": np.full((4, 4, 3), t + 1, np.uint8)}
    if t == 0:
        arrays |= {"low_dim": np.zeros(SPEC.low_dim, np.float32),
                   "rgb_cam": np.zeros((4, 4, 3), np.uint8)}
    return _wire("transition", {
        "episode": key, "step": t, "reward": float(t), "terminated": last and terminated,
        "truncated": last and not terminated, "intervention": intervention,
        "recorded": recorded, "task": "reach"}, arrays)


def _feed(assembler: EpisodeAssembler, key: str, steps: int, source: Source = ACTOR,
          **kwargs: bool) -> list:
    return [assembler.transition(_step(key, t, last=t == steps - 1, **kwargs), source)
            for t in range(steps)]


def test_an_unrecorded_episode_comes_out_whole_at_its_last_step() -> None:
    assembler = EpisodeAssembler(SPEC, DIM, ROOMY)
    out = _feed(assembler, "a", 4, terminated=True)
    assert out[:3] == [None, None, None]
    episode = out[3]
    assert episode.key == "a" and episode.num_steps == 4 and episode.success
    assert episode.episode_id is None and episode.episode_return == 0 + 1 + 2 + 3
    assert [t.step for t in episode.steps] == [0, 1, 2, 3]
    assert assembler.pending_steps == 0 and assembler.pending_episodes == 0


def test_a_recorded_episode_waits_for_its_store_id_or_for_the_wait_to_run_out() -> None:
    assembler = EpisodeAssembler(SPEC, DIM, ROOMY)
    assert _feed(assembler, "a", 3, recorded=True) == [None, None, None]
    assert assembler.pending_steps == 3
    # Another source's episode_stored for the same key is not taken.
    stored = _wire("episode_stored", {"episode": "a", "episode_id": 7})
    assert assembler.stored(stored, ("actor", "intruder")) is None
    episode = assembler.stored(stored, ACTOR)
    assert episode is not None and episode.episode_id == 7 and not episode.loaded_before

    _feed(assembler, "b", 2, recorded=True)
    assert assembler.flush() == []  # still within its wait
    (late,) = assembler.flush(now=1e12)
    assert late.key == "b" and late.episode_id is None
    assert assembler.pending_episodes == 0


def test_an_episode_the_learner_loaded_from_the_store_is_marked_not_dropped_silently() -> None:
    assembler = EpisodeAssembler(SPEC, DIM, ROOMY, loaded=lambda episode_id: episode_id == 5)
    _feed(assembler, "a", 2, recorded=True)
    episode = assembler.stored(_wire("episode_stored", {"episode": "a", "episode_id": 5}),
                               ACTOR)
    assert episode is not None and episode.loaded_before and episode.num_steps == 2
    assert assembler.pending_steps == 0


def test_late_rewards_are_waited_for_checked_and_else_zero_after_the_wait() -> None:
    assembler = EpisodeAssembler(SPEC, DIM, ROOMY, late_rewards=True, late_wait_s=30.0)
    assert _feed(assembler, "a", 3)[-1] is None  # held for its episode_rewards
    wrong = _wire("episode_rewards", {"episode": "a", "missing": 0},
                  {"reward_delta": np.ones(2, np.float32)})
    assert assembler.rewards(wrong, ACTOR) is None  # 2 values for 3 steps: ignored
    right = _wire("episode_rewards", {"episode": "a", "missing": 0},
                  {"reward_delta": np.array([0.5, 0.0, 1.0], np.float32)})
    assert assembler.rewards(right, ("actor", "other")) is None  # not its sender
    episode = assembler.rewards(right, ACTOR)
    assert episode is not None and episode.episode_return == pytest.approx(3 + 1.5)

    _feed(assembler, "b", 2)
    assert assembler.flush(now=None) == []
    (late,) = assembler.flush(now=1e12)
    np.testing.assert_array_equal(late.reward_delta, [0.0, 0.0])


def test_foreign_malformed_and_out_of_order_steps_are_refused() -> None:
    assembler = EpisodeAssembler(SPEC, DIM, ROOMY)
    assembler.transition(_step("a", 0), ACTOR)
    # Another source may neither extend nor restart someone's episode.
    assert assembler.transition(_step("a", 1), ("actor", "forger")) is None
    assert assembler.transition(_step("a", 0), ("actor", "forger")) is None
    assert assembler.pending_steps == 1
    # A step in the wrong observation layout drops the episode.
    bad = _wire("transition", {**_step("a", 1).body},
                {"action": np.zeros(DIM, np.float32),
                 "next_low_dim": np.zeros(SPEC.low_dim + 1, np.float32),
                 "next_rgb_cam": np.zeros((4, 4, 3), np.uint8)})
    assert assembler.transition(bad, ACTOR) is None
    assert assembler.pending_episodes == 0
    # A missing step (joined mid-episode) drops it too.
    assembler.transition(_step("b", 0), ACTOR)
    assert assembler.transition(_step("b", 2), ACTOR) is None
    assert assembler.pending_episodes == 0


def test_pending_steps_stay_within_the_limits_oldest_dropped_first(
        caplog: pytest.LogCaptureFixture) -> None:
    assembler = EpisodeAssembler(SPEC, DIM, PendingLimits(max_steps=5, max_bytes=10**9,
                                                          max_steps_total=8))
    for t in range(4):  # an episode that never ends
        assembler.transition(_step("old", t), ACTOR)
    for t in range(2):
        assembler.transition(_step("new", t), ACTOR)
    assert assembler.pending_steps == 2  # "old" went over the per-source limit with "new"
    assert "dropped pending episode old" in caplog.text
    other: Source = ("actor", "second")
    for t in range(5):
        assembler.transition(_step("theirs", t), other)
    for t in range(2, 4):
        assembler.transition(_step("new", t), ACTOR)
    # Over the total of all sources: the oldest pending episode ("new") went (its warning
    # is throttled behind the first one).
    assert assembler.pending_steps == 5 and assembler.pending_episodes == 1


def test_an_assembled_episode_streams_into_the_replay_as_sent() -> None:
    online = ReplayBuffer(SPEC, DIM, 50, seed=0)
    demos = ReplayBuffer(SPEC, DIM, 50, seed=1, is_demo=True)
    replay = DemoAndOnline(online, demos, 8, 8)
    assembler = EpisodeAssembler(SPEC, DIM, ROOMY, late_rewards=True, late_wait_s=1.0)
    _feed(assembler, "a", 3, terminated=True)
    episode = assembler.rewards(_wire("episode_rewards", {"episode": "a", "missing": 0},
                                      {"reward_delta": np.full(3, 0.25, np.float32)}), ACTOR)
    episode.stream_into(replay, SPEC.cameras)
    (key,) = online.episode_keys
    stored = online.episode(key)
    np.testing.assert_allclose(stored.reward, [0.25, 1.25, 2.25])  # inline + delta
    np.testing.assert_array_equal(stored.action[:, 0], [0, 1, 2])
    np.testing.assert_array_equal(stored.low_dim[:, 0], [0, 1, 2, 3])
    np.testing.assert_array_equal(stored.frames[:, 0, 0, 0, 0], [0, 1, 2, 3])
    assert stored.terminated and demos.num_episodes == 1  # a success: relabelled as a demo
