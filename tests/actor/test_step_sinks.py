"""The actor's step outcome and its episode sinks.

End to end: the actor in this process against the sim driver in its own process, with a
sink of the test's own collecting what the actor hands its sinks, the real store and a real
learner socket. Each built-in sink's hooks: the real store, real ZeroMQ sockets (inproc)."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zmq

from robolearn.actor.control_server import OperatorState
from robolearn.actor.env import StepTiming
from robolearn.actor.live import LiveFrames
from robolearn.actor.loop import Actor
from robolearn.actor.policies import (
    ExpertPolicy,
    Policy,
    PolicyBase,
    RandomPolicy,
    ZeroPolicy,
    check_policy,
)
from robolearn.actor.rewards import StepRewards
from robolearn.actor.sinks import EpisodeRecorder, RewardEpisodes, TelemetrySink, TransitionPusher
from robolearn.actor.step import ActedBy, EpisodeEnd, EpisodeStart, Obs, StepOutcome
from robolearn.actor.telemetry import Telemetry
from robolearn.config import load_config, parse_config
from robolearn.learn.batch import ObsSpec
from robolearn.protocol import Message, Publisher, Puller, Pusher, Subscriber
from robolearn.store import Store

CAMERAS = ("front", "wrist")


class Collector:
    """An episode sink of the test's own: keeps every hook call, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []

    def begin(self, episode: EpisodeStart) -> None:
        self.calls.append(("begin", episode))

    def step(self, outcome: StepOutcome) -> None:
        self.calls.append(("step", outcome))

    def end(self, end: EpisodeEnd) -> int | None:
        self.calls.append(("end", end))
        return None

    def abort(self, episode: EpisodeStart) -> None:
        self.calls.append(("abort", episode))

    def episodes(self) -> list[tuple[EpisodeStart, list[StepOutcome], EpisodeEnd]]:
        out: list[tuple[EpisodeStart, list[StepOutcome], EpisodeEnd]] = []
        steps: list[StepOutcome] = []
        start: EpisodeStart | None = None
        for hook, arg in self.calls:
            if hook == "begin":
                assert isinstance(arg, EpisodeStart)
                start, steps = arg, []
            elif hook == "step":
                assert isinstance(arg, StepOutcome)
                steps.append(arg)
            elif hook == "end":
                assert isinstance(arg, EpisodeEnd) and start is not None
                out.append((start, steps, arg))
        return out


class GreedyWhenEvaluated(PolicyBase):
    """A scripted policy with a greedy mode: it moves only while evaluated."""

    has_eval_mode = True

    def __init__(self) -> None:
        self.modes: list[bool] = []

    @property
    def name(self) -> str:
        return "scripted-eval" if self.eval_mode else "scripted"

    def act(self, obs: Obs) -> np.ndarray:
        self.modes.append(self.eval_mode)
        return np.array([0.3 if self.eval_mode else 0.0, 0.0, 0.0, -1.0], np.float32)


def test_step_outcomes_reach_every_sink_as_stored_and_as_sent_to_the_learner(
        driver, sock_dir: Path) -> None:
    _, path = driver(actor={"observe_state": True, "episode_steps": 4, "eval_every": 2,
                            "end_on_success": False},
                     learner={"enabled": True, "observation": "state",
                              "transitions_address": f"ipc://{sock_dir}/transitions",
                              "weights_address": f"ipc://{sock_dir}/weights"})
    cfg = load_config(path)
    collector, policy = Collector(), GreedyWhenEvaluated()
    ctx = zmq.Context()
    learner = Puller(ctx, cfg.learner.transitions_address,
                     security=cfg.socket_security(cfg.learner.transitions_address, "learner"))
    try:
        with Store.open(cfg.data_dir) as store:
            actor = Actor(cfg, ctx, store=store, policy=policy, sinks=[collector])
            try:
                summary = actor.run(threading.Event(), episodes=2)
            finally:
                actor.close()
            stored = [store.load_episode(e.episode_id) for e in summary.episodes]
        sent: list[Message] = []
        while (msg := learner.recv(timeout_s=1.0)) is not None:
            sent.append(msg)
    finally:
        learner.close()
        ctx.term()

    (start0, steps0, end0), (start1, steps1, end1) = collector.episodes()
    # The second episode is the greedy evaluation: the policy was told before it acted.
    assert [start0.evaluation, start1.evaluation] == [False, True]
    assert policy.modes == [False] * 4 + [True] * 4
    assert [start0.policy, start1.policy] == ["scripted", "scripted-eval"]
    assert [d.record.policy for d in stored] == ["scripted", "scripted-eval"]
    assert start0.task == start0.record_task == "reach" and start0.key != start1.key
    for start, steps, end, data in ((start0, steps0, end0, stored[0]),
                                    (start1, steps1, end1, stored[1])):
        assert [s.index for s in steps] == [0, 1, 2, 3]
        # Each step starts from the observation the previous one led to.
        for prev, cur in itertools.pairwise(steps):
            assert cur.obs is prev.next_obs
        assert end.last_obs is steps[-1].next_obs and end.steps == 4
        # A sink after the recorder sees the stored episode's id.
        assert end.episode_id == data.record.id
        assert end.result() == summary.episodes[start.index]
        np.testing.assert_array_equal(data.arrays["action"], [s.action for s in steps])
        np.testing.assert_array_equal(data.arrays["reward"], [s.reward for s in steps])
        np.testing.assert_array_equal(data.arrays["success"], [s.success for s in steps])
        np.testing.assert_array_equal(data.arrays["images_front"][1:],
                                      [s.next_obs["front"] for s in steps])
        np.testing.assert_array_equal(data.arrays["stamp_ns"], [s.timing.wake_ns for s in steps])
        assert all(s.acted_by == "policy" and not s.intervention for s in steps)
        assert [s.truncated for s in steps] == [False, False, False, True]
        assert not any(s.terminated or s.estop or s.stuck for s in steps)
    # The greedy episode moved the hand along +x; the other held still.
    assert steps1[-1].next_obs["proprio"][0] > steps1[0].obs["proprio"][0] + 0.01
    # Only the practice episode reached the learner: its four transitions, then its id.
    assert [m.type for m in sent] == ["transition"] * 4 + ["episode_stored"]
    assert {m.body["episode"] for m in sent} == {start0.key}
    assert [m.body["step"] for m in sent[:4]] == [0, 1, 2, 3]
    assert [m.body["truncated"] for m in sent[:4]] == [s.truncated for s in steps0]
    assert sent[4].body["episode_id"] == end0.episode_id
    np.testing.assert_array_equal([m.arrays["action"] for m in sent[:4]],
                                  [s.action for s in steps0])


# -- each sink's hooks -----------------------------------------------------------------------

def _obs(value: int, *, state: bool = True) -> Obs:
    obs: Obs = {cam: np.full((8, 8, 3), value, np.uint8) for cam in CAMERAS}
    obs["proprio"] = np.full(8, value / 10, np.float32)
    if state:
        obs["state"] = np.full(3, value, np.float32)
    return obs


def _start(*, evaluation: bool = False, run_id: int | None = None, index: int = 0,
           ) -> EpisodeStart:
    return EpisodeStart(index=index, seed=7, key=f"ep-{index}-{evaluation}", task="reach",
                        record_task="reach", evaluation=evaluation, policy="scripted",
                        direction="forward", run_id=run_id)


def _steps(n: int, *, success_at: int | None = None,
           by: tuple[ActedBy, ...] = ()) -> list[StepOutcome]:
    out = []
    for i in range(n):
        acted_by: ActedBy = by[i] if i < len(by) else "policy"
        out.append(StepOutcome(
            index=i, obs=_obs(i), action=np.array([0.1 * i, 0.0, 0.0, -1.0], np.float32),
            acted_by=acted_by, next_obs=_obs(i + 1), reward=float(i == success_at),
            success=i == success_at, success_prob=0.25 * i, terminated=i == success_at,
            truncated=i == n - 1 and i != success_at, estop=False, stuck=None,
            filter_reasons=("step_limit",) if i == 1 else (), policy_fault=None,
            timing=StepTiming(wake_ns=1_000 + i * 100_000_000, jitter_ns=10_000,
                              period_ns=100_000_000, latency_ns=500_000,
                              max_frame_age_ns=2_000_000),
            reward_scalars={"sim_success": float(i == success_at)}, reward_telemetry={}))
    return out


def _end(start: EpisodeStart, steps: list[StepOutcome], outcome: str, reason: str,
         episode_id: int | None = None) -> EpisodeEnd:
    return EpisodeEnd(start, len(steps), any(s.success for s in steps), outcome, reason,
                      sum(s.intervention for s in steps),
                      steps[-1].next_obs if steps else _obs(0), episode_id)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path / "data") as opened:
        yield opened


def test_recorder_stores_each_step_and_the_final_observation(store: Store) -> None:
    run = store.create_run("r", {})
    recorder = EpisodeRecorder(store, CAMERAS, is_demo=False)
    start = _start(run_id=run)
    steps = _steps(3, by=("policy", "operator", "held"))
    recorder.begin(start)
    for s in steps:
        recorder.step(s)
    episode_id = recorder.end(_end(start, steps, "timeout", "step_limit"))
    assert episode_id is not None
    data = store.load_episode(episode_id)
    assert (data.record.outcome, data.record.end_reason) == ("timeout", "step_limit")
    assert (data.record.task, data.record.direction, data.record.policy, data.record.seed) == (
        "reach", "forward", "scripted", 7)
    np.testing.assert_array_equal(data.arrays["images_front"][:, 0, 0, 0], [0, 1, 2, 3])
    np.testing.assert_array_equal(data.arrays["state"][:, 0], [0, 1, 2, 3])
    np.testing.assert_array_equal(data.arrays["action"], [s.action for s in steps])
    # Only the step an operator steered is an intervention; a held step is not.
    np.testing.assert_array_equal(data.arrays["intervention"], [False, True, False])
    assert data.record.has_intervention
    np.testing.assert_array_equal(data.arrays["stamp_ns"], [s.timing.wake_ns for s in steps])


def test_recorder_keeps_a_success_cut_short_and_drops_empty_or_failed_episodes(
        store: Store) -> None:
    run = store.create_run("r", {})
    recorder = EpisodeRecorder(store, CAMERAS, is_demo=True)
    start = _start(run_id=run)
    steps = _steps(2, success_at=0)
    recorder.begin(start)
    for s in steps:
        recorder.step(s)
    # An e-stop after the success: the episode result says aborted, the store a success.
    ok = recorder.end(_end(start, steps, "aborted", "estop"))
    assert ok is not None and store.get_episode(ok).outcome == "success"
    assert store.get_episode(ok).is_demo

    recorder.begin(_start(run_id=run, index=1))
    assert recorder.end(_end(_start(run_id=run, index=1), [], "aborted", "shutdown")) is None
    recorder.begin(_start(run_id=run, index=2))
    recorder.step(_steps(1)[0])
    recorder.abort(_start(run_id=run, index=2))
    recorder.abort(_start(run_id=run, index=2))  # nothing half done any more: a no-op
    rows = store.list_episodes(run_id=run, status=None)
    assert sorted((r.status, r.end_reason) for r in rows) == [
        ("aborted", "actor error"), ("aborted", "shutdown"), ("complete", "estop")]

    with pytest.raises(ValueError, match="no run to record into"):
        recorder.begin(_start(run_id=None))


def _pair(ctx: zmq.Context[Any], name: str) -> tuple[Pusher, Puller]:
    puller = Puller(ctx, f"inproc://{name}")
    return Pusher(ctx, f"inproc://{name}", "actor"), puller


def _drain(puller: Puller) -> list[Message]:
    out = []
    while (msg := puller.recv(timeout_s=0.3)) is not None:
        out.append(msg)
    return out


def test_transition_pusher_sends_practice_steps_and_stored_ids_only() -> None:
    ctx = zmq.Context()
    pusher, puller = _pair(ctx, "transitions")
    spec = ObsSpec(cameras=("front",), image_hw=(8, 8), frame_stack=1, low_dim=8)
    sink = TransitionPusher(pusher, spec, recorded=True)
    try:
        practice, steps = _start(), _steps(3, success_at=2)
        sink.begin(practice)
        for s in steps:
            sink.step(s)
        assert sink.end(_end(practice, steps, "success", "success", episode_id=12)) is None
        evaluation = _start(evaluation=True, index=1)
        sink.begin(evaluation)
        for s in steps:
            sink.step(s)
        sink.end(_end(evaluation, steps, "success", "success", episode_id=13))
        sent = _drain(puller)
    finally:
        pusher.close()
        puller.close()
        ctx.term()
    assert [m.type for m in sent] == ["transition"] * 3 + ["episode_stored"]
    first, second, last, stored = sent
    assert {m.body["episode"] for m in sent} == {practice.key}
    # The observation before the first action travels once; later ones are the previous
    # transition's next_*.
    assert {"low_dim", "rgb_front"} <= set(first.arrays)
    assert not {"low_dim", "rgb_front"} & set(second.arrays)
    np.testing.assert_array_equal(second.arrays["next_rgb_front"], steps[1].next_obs["front"])
    assert "next_rgb_wrist" not in second.arrays  # the learner's cameras only
    assert [(m.body["terminated"], m.body["truncated"]) for m in (first, second, last)] == [
        (False, False), (False, False), (True, False)]
    assert all(m.body["recorded"] and m.body["task"] == "reach" for m in (first, second, last))
    assert stored.body == {"episode": practice.key, "episode_id": 12}


def test_reward_episodes_start_a_fresh_success_streak_every_episode(tmp_path: Path) -> None:
    cfg = parse_config({"name": "streak", "data_dir": str(tmp_path),
                        "rewards": {"success_frames": 2}})
    rewards = StepRewards.from_config(cfg, ("front",), None, run_id=None)
    assert rewards is not None
    sink = RewardEpisodes(rewards, None)

    def judge() -> bool:
        info = {"success": True, "action": np.zeros(4, np.float32)}
        rewards.apply(_obs(1, state=False), info, "reach")
        return bool(info["success"])

    try:
        sink.begin(_start(index=0))
        assert not judge()  # one positive frame is not yet a success
        sink.end(_end(_start(index=0), _steps(1), "timeout", "step_limit"))
        sink.begin(_start(index=1))
        assert [judge(), judge()] == [False, True]  # the streak did not carry over
        sink.abort(_start(index=1))
        sink.drain(0.0)
    finally:
        rewards.close()


def test_telemetry_sink_publishes_each_step_its_frames_and_heartbeats() -> None:
    ctx = zmq.Context()
    pub = Publisher(ctx, "inproc://telemetry", "actor")
    sub = Subscriber(ctx, "inproc://telemetry", types=("telemetry", "live_frame"),
                     rcvhwm=1000)
    operator = OperatorState(4, threading.Event())

    class Learned(RandomPolicy):
        version, updates, last_q, last_uncertainty = 3, 120, 0.5, 0.75
        weights_received_s = time.monotonic() - 2.0

        def learner_health(self) -> dict[str, bool | float | str | None]:
            return {"learner_alive": True}

    sink = TelemetrySink(pub, LiveFrames(pub, CAMERAS, fps=100.0, quality=80), operator,
                         Learned(4), action_dim=4)
    try:
        deadline = time.monotonic() + 10.0
        while sub.wait_new("telemetry", timeout_s=0.05) is None:  # until subscribed
            assert time.monotonic() < deadline
            sink.heartbeat("paused", "nan_q")
        beat = sub.latest("telemetry")
        assert beat is not None
        assert beat.body["values"]["state"] == "paused"
        assert beat.body["values"]["policy_fault"] == "nan_q"
        start, steps = _start(index=5), _steps(2, by=("policy", "operator"))
        sink.begin(start)
        for s in steps:
            sink.step(s)
        sink.end(_end(start, steps, "timeout", "step_limit"))
        msg = sub.wait_new("telemetry", timeout_s=2.0)
        assert sink.live.flush(5.0)  # the encoder thread published what it was handed
        frame = sub.wait_new("live_frame", timeout_s=2.0, key="wrist")
    finally:
        sink.close()
        sub.close()
        pub.close()
        ctx.term()
    assert msg is not None and frame is not None
    values = Telemetry.model_validate(msg.body["values"])
    assert (values.step, values.episode, values.episode_step) == (2, 5, 2)
    assert values.intervention and values.state == "running" and values.direction == "forward"
    assert values.policy_version == 3 and values.policy_updates == 120
    assert values.q_value == 0.5 and values.learner_alive is True
    assert values.q_uncertainty == 0.75  # a policy with a critic says how unsure it is
    assert values.weights_age_s is not None and values.weights_age_s >= 2.0
    assert values.latency_ms == 0.5 and values.filtered == "step_limit"
    assert msg.body["values"]["sim_success"] == 0.0  # reward scalars ride along
    assert (frame.body["episode"], frame.body["step"]) == (5, 2)


# -- the Policy protocol ---------------------------------------------------------------------

def test_every_policy_declares_what_the_loop_asks_and_an_incomplete_one_is_refused(
        tmp_path: Path) -> None:
    from robolearn.learn.policy import CQNPolicy

    cfg = parse_config({"name": "p", "data_dir": str(tmp_path),
                        "actor": {"observe_state": True, "policy": {"kind": "cqn"}},
                        "learner": {"observation": "state",
                                    "cqn": {"frame_stack": 1, "hidden_dim": 16, "atoms": 5}}})
    cqn = CQNPolicy(cfg)
    expert = ExpertPolicy(None)  # type: ignore[arg-type]  # its env is never asked here
    policies: list[Policy] = [ZeroPolicy(4), RandomPolicy(4), cqn, expert]
    for policy in policies:
        assert check_policy(policy) is policy
    assert cqn.has_eval_mode and not ZeroPolicy(4).has_eval_mode
    assert cqn.learner_health()["learner_alive"] is None  # no weights socket
    assert ZeroPolicy(4).learner_health() == {}

    class ActsOnly:
        name = "bare"

        def act(self, obs: Obs) -> np.ndarray:
            return np.zeros(4, np.float32)

        def reset(self) -> None:
            pass

    missing = r"lacks between_steps, close, eval_mode, has_eval_mode, .*PolicyBase"
    with pytest.raises(TypeError, match=missing):
        check_policy(ActsOnly())
    # The actor refuses it before it opens a socket (no context is even given).
    with pytest.raises(TypeError, match="ActsOnly"):
        Actor(cfg, None, policy=ActsOnly())  # type: ignore[arg-type]
