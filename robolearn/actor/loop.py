"""The actor: run episodes at a fixed rate, filter every action, record every step.

One episode: reset (the sim re-randomises; a real arm goes home), then observe -> policy ->
safety filter -> command -> wait for the next tick, until success, the step limit, an e-stop
or a stop request. `Actor._step` takes one such step and returns its `StepOutcome`;
`Actor._episode` hands every outcome to the episode sinks (robolearn.actor.sinks: the
recorder, telemetry with live frames, the transitions to the learner, the reward service's
bookkeeping). Each step's timing (period jitter and observation-to-command latency) is also
kept for the run summary.

Operators reach the actor through its control thread (`control_server`): an e-stop latches at
once; a pause holds the loop at the next step boundary with the arm stopped; during a
takeover the operator's newest teleop action replaces the policy's (still through the safety
filter) and those steps are recorded, and sent to the learner, as interventions.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import zmq

from robolearn.actor.ask_takeover import TakeoverAsker
from robolearn.actor.control_server import ControlServer, OperatorState
from robolearn.actor.env import RobotEnv, StepTiming
from robolearn.actor.live import LiveFrames
from robolearn.actor.policies import Policy, check_policy, make_policy
from robolearn.actor.reset_free_session import ResetFreeSession
from robolearn.actor.rewards import StepRewards
from robolearn.actor.sinks import (
    EpisodeRecorder,
    EpisodeSink,
    RewardEpisodes,
    TelemetrySink,
    TransitionPusher,
)
from robolearn.actor.step import ActedBy, EpisodeEnd, EpisodeResult, EpisodeStart, Obs, StepOutcome
from robolearn.config import RunConfig
from robolearn.config.sockets import ACTOR, identity
from robolearn.errors import ConfigError, PeerTimeout, PolicyFault, StaleFrame, StoreError
from robolearn.learn.observation import obs_spec_for
from robolearn.protocol import Publisher, Pusher
from robolearn.store import Store
from robolearn.store.runs import next_episode_seed

log = logging.getLogger(__name__)


__all__ = ["Actor", "ActorSummary", "EpisodeResult"]


@dataclass
class ActorSummary:
    episodes: list[EpisodeResult] = field(default_factory=list)
    jitter_ns: list[int] = field(default_factory=list)
    latency_ns: list[int] = field(default_factory=list)
    period_ns: list[int] = field(default_factory=list)
    filter_counts: dict[str, int] = field(default_factory=dict)

    def add_timing(self, timing: StepTiming) -> None:
        self.jitter_ns.append(timing.jitter_ns)
        self.latency_ns.append(timing.latency_ns)
        self.period_ns.append(timing.period_ns)

    @property
    def successes(self) -> int:
        return sum(e.success for e in self.episodes)

    @property
    def steps(self) -> int:
        return sum(e.steps for e in self.episodes)

    def timing_ms(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for name, values in (("jitter", self.jitter_ns), ("latency", self.latency_ns),
                             ("period", self.period_ns)):
            if values:
                arr = np.asarray(values, dtype=np.float64) / 1e6
                out[f"{name}_p50_ms"] = float(np.percentile(arr, 50))
                out[f"{name}_p99_ms"] = float(np.percentile(arr, 99))
                out[f"{name}_max_ms"] = float(arr.max())
        return out


def _check_run_exists(store: Store | None, run_id: int) -> None:
    """Raises:
        ConfigError: no store to record into.
        StoreError: no run has this id.
    """
    if store is None:
        raise ConfigError(f"actor: run id {run_id} given but the actor records nothing "
                          "(actor.record is false); enable recording or leave the run id out")
    try:
        store.get_run(run_id)
    except StoreError as exc:
        raise StoreError(f"actor: run {run_id} does not exist in this run's store; create it "
                         "first (POST /api/runs) or leave the run id out to start a new run"
                         ) from exc


def _judge(step: StepOutcome, succeeded: bool) -> tuple[bool, tuple[str, str] | None]:
    """Whether the episode has succeeded so far, and its (outcome, end reason) if `step`
    ends it."""
    if step.estop:  # a success seen on the e-stop's own step does not count
        return succeeded, ("aborted", "estop")
    succeeded = succeeded or step.success
    if step.terminated:
        return succeeded, ("success", "success")
    # Reset-free: a stuck robot ends the episode (and the scheduler escalates).
    if step.stuck is not None and not succeeded:
        return succeeded, ("failure", step.stuck)
    return succeeded, None


class Actor:
    """Args:
        cfg: the run config.
        ctx: the process's ZeroMQ context.
        store: where episodes go, or None to record nothing.
        policy: overrides cfg.actor.policy (e.g. a learner's policy); checked against the
            `Policy` protocol here (derive test doubles from `PolicyBase`).
        is_demo: mark recorded successful episodes as demonstrations.
        on_episode: called after every episode (progress bars, logs).
        run_id: record into this existing run (e.g. one the service registered) instead of
            creating a new one; needs `store`.
        sinks: more episode sinks, after the actor's own (see robolearn.actor.sinks).

    Raises:
        ConfigError: run_id without a store.
        StoreError: no run has this id (checked before any socket opens).
        TypeError: `policy` lacks a member of the `Policy` protocol.
    """

    def __init__(
        self,
        cfg: RunConfig,
        ctx: zmq.Context[Any],
        *,
        store: Store | None = None,
        policy: Policy | None = None,
        is_demo: bool = False,
        on_episode: Callable[[EpisodeResult], None] | None = None,
        run_id: int | None = None,
        sinks: Sequence[EpisodeSink] = (),
    ) -> None:
        self.cfg = cfg
        if run_id is not None:
            _check_run_exists(store, run_id)
        if policy is not None:
            check_policy(policy)
        # Reward models load first: a missing model is an error before any socket opens.
        # A known run prefers reward models trained for it.
        self.rewards = StepRewards.from_config(cfg, tuple(c.name for c in cfg.cameras), store,
                                               run_id=run_id, ctx=ctx)
        env: RobotEnv | None = None
        try:
            self.env = env = RobotEnv(cfg, ctx)
            self.policy = policy or make_policy(cfg, self.env, ctx)
        except BaseException:
            # Leave no socket open (the caller's context teardown would wait on it for ever
            # and the error, e.g. a checkpoint of another layout, would never show) and no
            # reward worker process behind.
            if env is not None:
                env.close()
            if self.rewards is not None:
                self.rewards.close()
            raise
        self.store = store
        self.on_episode = on_episode
        self.operator = OperatorState(self.env.scale.action_dim, self.env.local_estop)
        try:  # refused before the actor's own sockets open: a policy without a critic
            self.ask_takeover = (TakeoverAsker(cfg.actor.ask_takeover, self.policy, store,
                                               cfg.robot_name, self.operator,
                                               self._publish_state)
                                 if cfg.actor.ask_takeover.enabled else None)
        except ConfigError:
            self.policy.close()
            self.env.close()
            if self.rewards is not None:
                self.rewards.close()
            raise
        self.summary = ActorSummary()
        self._telemetry = Publisher(ctx, cfg.actor.telemetry_address, identity(cfg, ACTOR),
                                    security=cfg.socket_security(
                                        cfg.actor.telemetry_address, "actor"))
        self._given_run_id = run_id
        self._run_id: int | None = None
        self._first_seed = cfg.actor.seed
        # Transitions go to the learner, if the run has one; a push never blocks.
        self._transitions = (
            Pusher(ctx, cfg.learner.transitions_address, identity(cfg, ACTOR),
                   security=cfg.socket_security(cfg.learner.transitions_address, "actor"))
            if cfg.learner.enabled else None
        )
        self._policy_fault: str | None = None  # why the policy last could not act
        self._teleop_stale_ns = int(cfg.actor.teleop_stale_ms * 1e6)
        self._takeover_timeout_ns = int(cfg.actor.takeover_timeout_ms * 1e6)
        self._control = ControlServer(cfg, ctx, self.operator)
        self._sinks, self._reward_episodes, self._telemetry_sink = self._make_sinks(is_demo)
        self._sinks.extend(sinks)
        # Reset-free runs: episodes after the first start where the last one ended.
        self.reset_free = (ResetFreeSession(cfg, self.env, store, self._publish_state)
                           if cfg.reset_free.enabled else None)
        try:
            self._control.start()
        except BaseException:
            self._close_sockets()
            raise

    def _make_sinks(self, is_demo: bool
                    ) -> tuple[list[EpisodeSink], RewardEpisodes | None, TelemetrySink]:
        """The episode sinks in the order they see each step: the recorder first (the
        others refer to the episode it stored), then the operators' view, then the learner."""
        cfg = self.cfg
        sinks: list[EpisodeSink] = []
        recorder = (EpisodeRecorder(self.store, self.env.camera_names, is_demo=is_demo,
                                    robot=cfg.robot_name)
                    if self.store is not None and cfg.actor.record else None)
        if recorder is not None:
            sinks.append(recorder)
        live = LiveFrames(self._telemetry, self.env.camera_names, cfg.actor.live_fps,
                          cfg.actor.live_jpeg_quality)
        telemetry = TelemetrySink(self._telemetry, live, self.operator, self.policy,
                                  self.env.scale.action_dim)
        sinks.append(telemetry)
        transitions = (TransitionPusher(self._transitions, obs_spec_for(cfg),
                                        recorded=recorder is not None)
                       if self._transitions is not None else None)
        if transitions is not None:
            sinks.append(transitions)
        rewards = (RewardEpisodes(self.rewards, transitions) if self.rewards is not None
                   else None)
        if rewards is not None:
            sinks.append(rewards)
        return sinks, rewards, telemetry

    def run(self, stop: threading.Event, episodes: int | None = None) -> ActorSummary:
        """Run episodes until `stop` is set or `episodes` (default cfg.actor.episodes) ran."""
        limit = episodes if episodes is not None else self.cfg.actor.episodes
        if self.store is not None and self._given_run_id is not None:
            self._run_id = self.store.mark_running(self._given_run_id).id
            # A run continued (or started again) goes on to scenes it has not seen yet.
            self._first_seed = next_episode_seed(self.store, self._run_id, self.cfg.actor.seed,
                                                 self.cfg.robot_name)
        elif self.store is not None:
            self._run_id = self.store.create_run(
                self.cfg.name, self.cfg.model_dump(mode="json"), kind=self.cfg.robot.kind
            )
        if self.reset_free is not None:
            self.reset_free.run_id = self._run_id
        self.env.wait_ready(timeout_s=60.0)
        status = "stopped"
        try:
            self._wait_for_pretrained_policy(stop)
            k = 0
            while not stop.is_set() and (limit is None or k < limit):
                if self.env.estop_latched:
                    self._wait_estop_release(stop)
                    continue
                if self.operator.paused:
                    self._wait_while_paused(stop)
                    continue
                if self.rewards is not None:
                    self.rewards.restart_dead_workers()
                result = self._episode(k, stop)
                self.summary.episodes.append(result)
                if self.on_episode is not None:
                    self.on_episode(result)
                if self.reset_free is not None and not result.evaluation:
                    self.reset_free.end(result.success, result.end_reason, result.steps,
                                        result.intervention_steps, stop)
                k += 1
            if self._reward_episodes is not None:  # the last episodes' worker values, if any
                self._reward_episodes.drain(self.cfg.rewards.late_drain_s)
            status = "finished" if limit is not None and k >= limit else "stopped"
        except BaseException:
            status = "failed"
            raise
        finally:
            self.summary.filter_counts = dict(self.env.safety.counts)
            # A fleet's run is every robot's: the supervisor (`up`) ends it, not one actor.
            if (self.store is not None and self._run_id is not None
                    and self.cfg.robot_name is None):
                self.store.end_run(self._run_id, status)
        return self.summary

    def _wait_for_pretrained_policy(self, stop: threading.Event) -> None:
        """With learner.pretrain_updates, hold the robot still until the learner's first
        trained weights arrive rather than practise with an untrained policy."""
        if not self.policy.waiting_for_pretraining:
            return
        log.info("waiting for the learner's pretrained weights (learner.pretrain_updates %d)",
                 self.cfg.learner.pretrain_updates)
        t0 = last_log = time.monotonic()
        while not stop.is_set() and self.policy.waiting_for_pretraining:
            self.policy.between_steps()
            self.operator.set_driver_estop(self.env.driver_estop)
            self._publish_state("waiting_for_weights")
            if time.monotonic() - last_log > 30.0:
                log.info("still waiting for pretrained weights (%.0f s)", time.monotonic() - t0)
                last_log = time.monotonic()
            time.sleep(0.05)
        if not self.policy.waiting_for_pretraining:
            log.info("pretrained weights arrived after %.1f s", time.monotonic() - t0)

    def _wait_estop_release(self, stop: threading.Event) -> None:
        log.warning("e-stop latched: actor waiting for release")
        while not stop.is_set() and self.env.estop_latched:
            self.operator.set_driver_estop(self.env.driver_estop)
            self._publish_state("estop")
            time.sleep(0.05)
        self.operator.set_driver_estop(self.env.driver_estop)

    def _wait_while_paused(self, stop: threading.Event) -> None:
        """Hold until resumed, stopped or e-stopped; telemetry keeps flowing meanwhile."""
        while self.operator.paused and not stop.is_set() and not self.env.estop_latched:
            self.operator.set_driver_estop(self.env.driver_estop)
            self._publish_state("paused")
            time.sleep(0.05)

    def _hold_paused(self, stop: threading.Event) -> Obs:
        """Pause at a step boundary: stop the arm, wait, then restart the clock and return a
        fresh observation (the one from before the pause may be arbitrarily old).

        Raises:
            StaleFrame: no fresh state or frame after the pause.
        """
        self._stop_arm()
        log.info("paused at step boundary")
        self._wait_while_paused(stop)
        return self.env.start_from(time.monotonic_ns())

    def _hold_for_takeover(self, stop: threading.Event) -> Obs:
        """The critic was unsure (actor.ask_takeover): stop the arm, ask an operator and
        hold until answered or taken over, then restart the clock on a fresh observation.

        Raises:
            StaleFrame: no fresh state or frame after the hold.
        """
        assert self.ask_takeover is not None
        self._stop_arm()
        self.ask_takeover.hold(self._run_id, stop)
        return self.env.start_from(time.monotonic_ns())

    def _episode(self, k: int, stop: threading.Event) -> EpisodeResult:
        """Run episode `k`: its steps until an end, each step handed to every sink."""
        episode, obs = self._begin_episode(k)
        for sink in self._sinks:
            sink.begin(episode)
        steps, success, intervention_steps = 0, False, 0
        try:
            for index in range(self.cfg.actor.episode_steps):
                try:
                    if (not stop.is_set() and self.operator.paused
                            and not self.env.estop_latched):
                        obs = self._hold_paused(stop)
                    if self.ask_takeover is not None and self.ask_takeover.pending:
                        obs = self._hold_for_takeover(stop)
                    if stop.is_set():
                        ending = ("aborted", "shutdown")
                        break
                    step = self._step(episode, index, obs, stop)
                except StaleFrame as e:
                    log.error("episode %d: %s", k, e)
                    ending = ("aborted", "stale_observation")
                    break
                steps += 1
                intervention_steps += step.intervention
                self.summary.add_timing(step.timing)
                for sink in self._sinks:
                    sink.step(step)
                if self.ask_takeover is not None:
                    self.ask_takeover.after_step(step, episode.evaluation)
                self.policy.between_steps()
                obs = step.next_obs
                success, ends = _judge(step, success)
                if ends is not None:
                    ending = ends
                    break
            else:
                ending = ("success" if success else "timeout", "step_limit")
            self._stop_arm()
            end = EpisodeEnd(episode, steps, success, *ending, intervention_steps, obs)
            for sink in self._sinks:
                stored = sink.end(end)
                if stored is not None:  # the sinks after the recorder see the stored id
                    end = replace(end, episode_id=stored)
        except BaseException:
            for sink in self._sinks:
                sink.abort(episode)
            raise
        return end.result()

    def _begin_episode(self, k: int) -> tuple[EpisodeStart, Obs]:
        """Reset (or, reset-free, switch task), reset the policy and decide whether episode
        `k` is an evaluation. Returns the episode and its first observation."""
        seed = self._first_seed + k
        rf = self.reset_free
        obs = rf.begin(seed) if rf is not None else self.env.reset(seed=seed)[0]
        record_task = rf.task if rf is not None else (
            self.cfg.robot.task if self.cfg.robot.kind == "sim" else "")
        self.policy.reset()
        evaluation = self._is_evaluation(k)
        if self.policy.has_eval_mode:
            self.policy.eval_mode = evaluation or self.cfg.actor.policy.eval_mode
        self.operator.set_progress(k, 0)
        return EpisodeStart(
            index=k, seed=seed, key=f"{self.cfg.name}-{self._run_id}-{k}-{time.monotonic_ns()}",
            task=record_task or self.cfg.robot.task, record_task=record_task,
            evaluation=evaluation, policy=self.policy.name,
            direction=rf.direction if rf is not None else None, run_id=self._run_id,
        ), obs

    def _is_evaluation(self, k: int) -> bool:
        """Every actor.eval_every-th episode of a policy with a greedy mode is measured."""
        every = self.cfg.actor.eval_every
        return bool(every and (k + 1) % every == 0 and self.policy.has_eval_mode)

    def _step(self, episode: EpisodeStart, index: int, obs: Obs,
              stop: threading.Event) -> StepOutcome:
        """Take step `index` of `episode` from `obs`: ask the policy (an operator's takeover
        overrides it), send through the safety filter, wait for the next tick, observe, and
        judge the result (reward sources, reset-free stuck checks).

        Raises:
            StaleFrame: no fresh observation after the command.
        """
        # The policy acts even during a takeover: frame stacks and action ensembles stay in
        # step, and it can take over again seamlessly.
        action, acted_by = self._policy_action(obs)
        now_ns = time.monotonic_ns()
        if self.operator.end_takeover_if_silent(now_ns, self._takeover_timeout_ns):
            log.warning("episode %d step %d: %s", episode.index, index + 1,
                        self.operator.takeover_ended)
        if self.operator.takeover:
            # Only steps the operator steered count as interventions (and become demos); a
            # stale input holds the arm still.
            action, fresh = self.operator.teleop_action(now_ns, self._teleop_stale_ns,
                                                        self.env.safety.gripper_action)
            acted_by = "operator" if fresh else "held"
        next_obs, reward, terminated, _, info = self.env.step(action)
        if self.rewards is not None:
            reward = self.rewards.apply(next_obs, info, episode.task, step=index)
            terminated = info["success"] and self.cfg.actor.end_on_success
        self.operator.set_progress(episode.index, index + 1)
        self.operator.set_driver_estop(self.env.driver_estop)
        rf = self.reset_free
        stuck = rf.check_step(next_obs, info) if rf is not None else None
        estop = bool(info["estop"])
        timing = self.env.last_timing
        assert timing is not None  # env.step sets it
        last = (terminated or estop or stuck is not None
                or index + 1 == self.cfg.actor.episode_steps or stop.is_set())
        return StepOutcome(
            index=index, obs=obs, action=info["action"], acted_by=acted_by, next_obs=next_obs,
            reward=reward, success=bool(info["success"]),
            # A reward model's probability when one is configured; else the sparse signal.
            success_prob=float(info.get("success_prob", float(bool(info["success"])))),
            terminated=terminated, truncated=last and not terminated, estop=estop, stuck=stuck,
            filter_reasons=tuple(info["filter_reasons"]), policy_fault=self._policy_fault,
            timing=timing, reward_scalars=info.get("reward_scalars", {}),
            reward_telemetry=info.get("reward_telemetry", {}),
        )

    def _stop_arm(self) -> None:
        # Between episodes nobody commands the arm: stop it explicitly rather than leaving it
        # to the driver's watchdog, which is for failures.
        try:
            self.env.request("stop")
        except PeerTimeout:
            log.warning("driver did not acknowledge stop at episode end; its watchdog will")

    def _policy_action(self, obs: Obs) -> tuple[np.ndarray, ActedBy]:
        """The policy's action, or "hold" (zero motion, gripper kept) when the policy
        faults (NaN/inf Q-values): the fault shows in telemetry until an action comes again."""
        try:
            action = self.policy.act(obs)
        except PolicyFault as e:
            if self._policy_fault != e.reason:
                log.error("policy %s: %s; holding the arm until it acts again (new weights)",
                          self.policy.name, e)
            self._policy_fault = e.reason
            hold = np.zeros(self.env.scale.action_dim, dtype=np.float32)
            hold[-1] = self.env.safety.gripper_action  # hold what it holds
            return hold, "held"
        if self._policy_fault is not None:
            log.info("policy %s acts again after a fault (%s)", self.policy.name,
                     self._policy_fault)
            self._policy_fault = None
        return action, "policy"

    def _publish_state(self, state: str) -> None:
        """A heartbeat while no steps run (e-stop, pause), so operators see why."""
        self._telemetry_sink.heartbeat(state, self._policy_fault)

    def close(self) -> None:
        self._control.stop()
        self.policy.close()
        self._close_sockets()

    def _close_sockets(self) -> None:
        if self.rewards is not None:
            self.rewards.close()  # reward workers are processes: never leave them behind
        if self._transitions is not None:
            self._transitions.close()
        self._telemetry_sink.close()  # its live-frame encoder publishes on the socket
        self._telemetry.close()
        self.env.close()
