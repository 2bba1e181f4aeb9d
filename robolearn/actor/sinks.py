"""Episode sinks: where the actor's steps go, each with begin/step/end hooks.

The loop (robolearn.actor.loop) produces an `EpisodeStart`, then one `StepOutcome` per
control step, then an `EpisodeEnd`, and hands each to its sinks in order, as env wrappers
do in SERL and LeRobot:

- `EpisodeRecorder`: the episode's steps and files into the store;
- `TelemetrySink`: the Live page's numbers and camera frames;
- `TransitionPusher`: transitions to the learner (not those of evaluation episodes);
- `RewardEpisodes`: the reward service's per-episode bookkeeping (success streaks, values
  of reward workers that arrive after the episode).

The recorder comes first: its `end` returns the stored episode's id, which the sinks after
it refer to. An exception from a step or a sink fails the episode: the actor calls every
sink's `abort`, then re-raises.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from robolearn.actor.control_server import OperatorState
from robolearn.actor.live import LiveFrames
from robolearn.actor.policies import Policy, ReportsUncertainty
from robolearn.actor.rewards import StepRewards
from robolearn.actor.step import EpisodeEnd, EpisodeStart, StepOutcome
from robolearn.learn.batch import ObsSpec
from robolearn.learn.observation import low_dim_of
from robolearn.protocol import Publisher, Pusher
from robolearn.store import EpisodeWriter, Store

if TYPE_CHECKING:
    from robolearn.rewards.late_values import CompletedEpisode

log = logging.getLogger(__name__)


class EpisodeSink(Protocol):
    def begin(self, episode: EpisodeStart) -> None:
        """The episode is about to take its first step."""

    def step(self, outcome: StepOutcome) -> None:
        """A step was taken (its command is already on its way)."""

    def end(self, end: EpisodeEnd) -> int | None:
        """The episode ended (the arm is stopped). Returns the stored episode's id if this
        sink stored the episode, else None."""

    def abort(self, episode: EpisodeStart) -> None:
        """The actor failed mid-episode: drop what is half done."""


class EpisodeRecorder:
    """Writes each episode to the store (one step row per step, arrays in files).

    Args:
        store: where episodes go.
        cameras: the env's camera names, in order.
        is_demo: mark episodes as demonstrations (successful ones count).
        robot: the fleet robot recording (None: the run's one robot).
    """

    def __init__(self, store: Store, cameras: tuple[str, ...], *, is_demo: bool,
                 robot: str | None = None) -> None:
        self.store = store
        self.cameras = cameras
        self.is_demo = is_demo
        self.robot = robot
        self._writer: EpisodeWriter | None = None

    def begin(self, episode: EpisodeStart) -> None:
        if episode.run_id is None:
            raise ValueError(f"episode {episode.index}: no run to record into (the actor "
                             "creates or marks one running before its first episode)")
        self._writer = self.store.begin_episode(
            episode.run_id, episode.record_task, list(self.cameras), seed=episode.seed,
            policy=episode.policy, is_demo=self.is_demo, direction=episode.direction,
            robot=self.robot)

    def step(self, outcome: StepOutcome) -> None:
        assert self._writer is not None, "step() before begin()"
        obs = outcome.obs
        self._writer.add_step(
            {name: obs[name] for name in self.cameras}, obs["proprio"], outcome.action,
            outcome.reward, outcome.success, intervention=outcome.intervention,
            stamp_ns=outcome.timing.wake_ns, scalars=outcome.scalars(),
            state=obs.get("state"), joint_pos=obs.get("joint_pos"))

    def end(self, end: EpisodeEnd) -> int | None:
        writer, self._writer = self._writer, None
        if writer is None:
            return None
        if end.steps == 0:
            writer.abort(end.end_reason)  # nothing happened: no episode to keep
            return None
        # A success that an e-stop or a stop request cut short is still stored as one.
        outcome = "success" if end.success else end.outcome
        obs = end.last_obs
        return writer.finish({name: obs[name] for name in self.cameras}, obs["proprio"],
                             outcome, end.end_reason, final_state=obs.get("state"),
                             final_joint_pos=obs.get("joint_pos"))

    def abort(self, episode: EpisodeStart) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.abort("actor error")


class TransitionPusher:
    """Sends each step to the learner as a transition, and says when an episode is stored
    (the learner then knows its rows are in the store too). A push never blocks: with no
    learner keeping up, transitions are dropped.

    Args:
        pusher: the learner's transitions socket (owned by the caller).
        spec: the learner's observation layout (which cameras, the low-dim vector).
        recorded: episodes are recorded (the learner may load them from the store later).
    """

    def __init__(self, pusher: Pusher, spec: ObsSpec, *, recorded: bool) -> None:
        self.pusher = pusher
        self.spec = spec
        self.recorded = recorded
        self._episode: EpisodeStart | None = None

    def begin(self, episode: EpisodeStart) -> None:
        self._episode = episode

    def step(self, outcome: StepOutcome) -> None:
        episode = self._episode
        assert episode is not None, "step() before begin()"
        if episode.evaluation:  # evaluation episodes are measurements, not experience
            return
        spec, obs, next_obs = self.spec, outcome.obs, outcome.next_obs
        arrays: dict[str, np.ndarray] = {
            "action": np.asarray(outcome.action, dtype=np.float32),
            "next_low_dim": low_dim_of(spec, next_obs["proprio"], next_obs.get("state")),
        }
        for cam in spec.cameras:
            arrays[f"next_rgb_{cam}"] = next_obs[cam]
        if outcome.index == 0:  # later steps' observations are the previous next_*
            arrays["low_dim"] = low_dim_of(spec, obs["proprio"], obs.get("state"))
            for cam in spec.cameras:
                arrays[f"rgb_{cam}"] = obs[cam]
        sent = self.pusher.send("transition", {
            "episode": episode.key, "step": outcome.index, "reward": float(outcome.reward),
            "terminated": outcome.terminated, "truncated": outcome.truncated,
            "intervention": outcome.intervention, "recorded": self.recorded,
            "task": episode.task,
        }, arrays)
        if not sent:
            log.debug("learner not keeping up or not running: transition dropped")

    def end(self, end: EpisodeEnd) -> int | None:
        if end.episode_id is not None and not end.episode.evaluation:
            self.pusher.send("episode_stored", {"episode": end.episode.key,
                                                "episode_id": end.episode_id})
        self._episode = None
        return None

    def abort(self, episode: EpisodeStart) -> None:
        self._episode = None

    def send_late(self, episodes: Iterable[CompletedEpisode]) -> None:
        """Worker-run shaping values of finished episodes: the learner adds them to the
        rewards of those episodes' transitions (which carried the inline part only)."""
        for episode in episodes:
            if episode.to_learner:
                self.pusher.send("episode_rewards", {
                    "episode": episode.key, "missing": episode.missing,
                }, {"reward_delta": episode.reward_delta})


class RewardEpisodes:
    """The reward service's episode bookkeeping. Scoring a step is part of the step itself
    (its reward and success decide how the episode goes: `StepRewards.apply` in the loop);
    this sink starts each episode's success streak and worker bookkeeping, and at its end
    files the reward workers' late values into the store and sends them to the learner.

    Args:
        rewards: the run's reward sources.
        transitions: the learner's side, None when the run has no learner.
    """

    def __init__(self, rewards: StepRewards, transitions: TransitionPusher | None) -> None:
        self.rewards = rewards
        self.transitions = transitions

    def begin(self, episode: EpisodeStart) -> None:
        self.rewards.start_episode(episode.key)

    def step(self, outcome: StepOutcome) -> None:
        pass  # scored inside the step; the values ride on the outcome

    def end(self, end: EpisodeEnd) -> int | None:
        to_learner = (self.transitions is not None and not end.episode.evaluation
                      and end.steps > 0)
        self.rewards.end_episode(end.episode.key, end.steps, end.episode_id, to_learner)
        self._send_late(self.rewards.collect())
        return None

    def abort(self, episode: EpisodeStart) -> None:
        self.rewards.discard_episode(episode.key)

    def drain(self, timeout_s: float) -> None:
        """End of a run: wait up to `timeout_s` for the last episodes' worker values."""
        self._send_late(self.rewards.drain(timeout_s))

    def _send_late(self, episodes: list[CompletedEpisode]) -> None:
        if self.transitions is not None:
            self.transitions.send_late(episodes)


class TelemetrySink:
    """Publishes each step's numbers (robolearn.actor.telemetry.Telemetry declares them) and
    the live camera frames; between steps the actor publishes heartbeats through it.

    Args:
        publisher: the actor's telemetry socket (owned by the caller).
        live: the live camera frames, on the same socket.
        operator: what operators asked (pause, takeover), shown with every step.
        policy: its weights, Q-value and learner health are shown with every step.
        action_dim: the action length teleop must send.
    """

    def __init__(self, publisher: Publisher, live: LiveFrames, operator: OperatorState,
                 policy: Policy, action_dim: int) -> None:
        self.publisher = publisher
        self.live = live
        self.operator = operator
        self.policy = policy
        # A policy with a critic also says how unsure it is of each action.
        self._uncertain = policy if isinstance(policy, ReportsUncertainty) else None
        self.action_dim = action_dim
        self.steps = 0  # since the actor started
        self._episode: EpisodeStart | None = None

    def begin(self, episode: EpisodeStart) -> None:
        self._episode = episode

    def step(self, outcome: StepOutcome) -> None:
        episode = self._episode
        assert episode is not None, "step() before begin()"
        self.steps += 1
        op = self.operator
        self.publish({
            "step": self.steps, "episode": episode.index, "episode_step": outcome.index + 1,
            "reward": outcome.reward, "success": outcome.success,
            "success_prob": outcome.success_prob, "q_value": self.policy.last_q,
            "q_uncertainty": (self._uncertain.last_uncertainty
                              if self._uncertain is not None else None),
            "intervention": outcome.intervention, "estop": outcome.estop,
            "paused": op.paused, "takeover": op.takeover, "takeover_ended": op.takeover_ended,
            "state": "estop" if outcome.estop else (
                "policy_fault" if outcome.policy_fault else "running"),
            "policy_fault": outcome.policy_fault, "direction": episode.direction,
            "filtered": ",".join(outcome.filter_reasons),
            "action_dim": self.action_dim,  # what teleop must send (4: no yaw)
            "period_ms": outcome.timing.period_ns / 1e6, **outcome.scalars(),
            **self.weights(), **outcome.reward_telemetry,
        })
        self.live.publish(outcome.next_obs, episode.index, outcome.index + 1,
                          outcome.timing.wake_ns)

    def end(self, end: EpisodeEnd) -> int | None:
        self._episode = None
        return None

    def abort(self, episode: EpisodeStart) -> None:
        self._episode = None

    def close(self) -> None:
        """Stop the live-frame encoder (before the publisher closes)."""
        self.live.close()

    def heartbeat(self, state: str, policy_fault: str | None) -> None:
        """While no steps run (e-stop, pause, homing, waiting for weights), so operators
        see why."""
        status = self.operator.status()
        self.publish({"state": state, "estop": status.estop_latched, "paused": status.paused,
                      "takeover": status.takeover, "intervention": False,
                      "episode": status.episode, "episode_step": status.step,
                      "policy_fault": policy_fault, **self.weights()})

    def weights(self) -> dict[str, Any]:
        """The learner weights the policy acts with: version and seconds since they came."""
        policy = self.policy
        received = policy.weights_received_s
        return {"policy_version": policy.version, "weights_version": policy.version,
                "policy_updates": policy.updates,
                "weights_age_s": None if received is None else time.monotonic() - received,
                **policy.learner_health()}

    def publish(self, values: dict[str, Any]) -> None:
        self.publisher.publish("telemetry", {"kind": "actor", "values": values})
