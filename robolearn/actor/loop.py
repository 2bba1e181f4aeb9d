"""The actor: run episodes at a fixed rate, filter every action, record every step.

One episode: reset (the sim re-randomises; a real arm goes home), then observe -> policy ->
safety filter -> command -> wait for the next tick, until success, the step limit, an e-stop
or a stop request. Each step's timing (period jitter and observation-to-command latency) is
published as telemetry and kept for the run summary, with live JPEG frames for operators.

Operators reach the actor through its control thread (`control_server`): an e-stop latches at
once; a pause holds the loop at the next step boundary with the arm stopped; during a
takeover the operator's newest teleop action replaces the policy's (still through the safety
filter) and those steps are recorded, and sent to the learner, as interventions.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import zmq

from robolearn.actor.control_server import ControlServer, OperatorState
from robolearn.actor.env import RobotEnv
from robolearn.actor.live import LiveFrames
from robolearn.actor.policies import Policy, make_policy
from robolearn.actor.reset_free_session import ResetFreeSession
from robolearn.actor.rewards import StepRewards
from robolearn.config import RunConfig
from robolearn.errors import ConfigError, PeerTimeout, PolicyFault, StaleFrame, StoreError
from robolearn.learn.observation import low_dim_of, obs_spec_for
from robolearn.protocol import Publisher, Pusher
from robolearn.store import EpisodeWriter, Store
from robolearn.store.runs import next_episode_seed

log = logging.getLogger(__name__)


@dataclass
class EpisodeResult:
    index: int
    seed: int
    steps: int
    success: bool
    outcome: str
    end_reason: str
    episode_id: int | None
    evaluation: bool = False
    intervention_steps: int = 0
    direction: str | None = None  # reset-free runs: "forward" or "backward"


@dataclass
class ActorSummary:
    episodes: list[EpisodeResult] = field(default_factory=list)
    jitter_ns: list[int] = field(default_factory=list)
    latency_ns: list[int] = field(default_factory=list)
    period_ns: list[int] = field(default_factory=list)
    filter_counts: dict[str, int] = field(default_factory=dict)

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


class Actor:
    """Args:
        cfg: the run config.
        ctx: the process's ZeroMQ context.
        store: where episodes go, or None to record nothing.
        policy: overrides cfg.actor.policy (e.g. a learner's policy).
        is_demo: mark recorded successful episodes as demonstrations.
        on_episode: called after every episode (progress bars, logs).
        run_id: record into this existing run (e.g. one the service registered) instead of
            creating a new one; needs `store`.

    Raises:
        ConfigError: run_id without a store.
        StoreError: no run has this id (checked before any socket opens).
    """

    def __init__(
        self,
        cfg: RunConfig,
        ctx: zmq.Context,
        *,
        store: Store | None = None,
        policy: Policy | None = None,
        is_demo: bool = False,
        on_episode: Callable[[EpisodeResult], None] | None = None,
        run_id: int | None = None,
    ) -> None:
        self.cfg = cfg
        if run_id is not None:
            _check_run_exists(store, run_id)
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
        self.is_demo = is_demo
        self.on_episode = on_episode
        self.summary = ActorSummary()
        self._telemetry = Publisher(ctx, cfg.actor.telemetry_address, "actor",
                                    security=cfg.socket_security(
                                        cfg.actor.telemetry_address, "actor"))
        self._given_run_id = run_id
        self._run_id: int | None = None
        self._first_seed = cfg.actor.seed
        self._step_total = 0
        self._task = cfg.robot.task  # the current episode's task (reset-free: per direction)
        # Transitions go to the learner, if the run has one; a push never blocks.
        self._transitions = (
            Pusher(ctx, cfg.learner.transitions_address, "actor",
                   security=cfg.socket_security(cfg.learner.transitions_address, "actor"))
            if cfg.learner.enabled else None
        )
        self._spec = obs_spec_for(cfg) if cfg.learner.enabled else None
        self._episode_key = ""
        self._policy_fault: str | None = None  # why the policy last could not act
        self._live = LiveFrames(self._telemetry, self.env.camera_names, cfg.actor.live_fps,
                                cfg.actor.live_jpeg_quality)
        self._teleop_stale_ns = int(cfg.actor.teleop_stale_ms * 1e6)
        self._takeover_timeout_ns = int(cfg.actor.takeover_timeout_ms * 1e6)
        self.operator = OperatorState(self.env.scale.action_dim, self.env.local_estop)
        self._control = ControlServer(cfg, ctx, self.operator)
        # Reset-free runs: episodes after the first start where the last one ended.
        self.reset_free = (ResetFreeSession(cfg, self.env, store, self._publish_state)
                           if cfg.reset_free.enabled else None)
        try:
            self._control.start()
        except BaseException:
            self._close_sockets()
            raise

    def run(self, stop: threading.Event, episodes: int | None = None) -> ActorSummary:
        """Run episodes until `stop` is set or `episodes` (default cfg.actor.episodes) ran."""
        limit = episodes if episodes is not None else self.cfg.actor.episodes
        if self.store is not None and self._given_run_id is not None:
            self._run_id = self.store.mark_running(self._given_run_id).id
            # A run continued (or started again) goes on to scenes it has not seen yet.
            self._first_seed = next_episode_seed(self.store, self._run_id, self.cfg.actor.seed)
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
            if self.rewards is not None:  # the last episodes' worker values, if any
                self._send_late(self.rewards.drain(self.cfg.rewards.late_drain_s))
            status = "finished" if limit is not None and k >= limit else "stopped"
        except BaseException:
            status = "failed"
            raise
        finally:
            self.summary.filter_counts = dict(self.env.safety.counts)
            if self.store is not None and self._run_id is not None:
                self.store.end_run(self._run_id, status)
        return self.summary

    def _wait_for_pretrained_policy(self, stop: threading.Event) -> None:
        """With learner.pretrain_updates, hold the robot still until the learner's first
        trained weights arrive rather than practise with an untrained policy."""
        if not getattr(self.policy, "waiting_for_pretraining", False):
            return
        log.info("waiting for the learner's pretrained weights (learner.pretrain_updates %d)",
                 self.cfg.learner.pretrain_updates)
        t0 = last_log = time.monotonic()
        while not stop.is_set() and getattr(self.policy, "waiting_for_pretraining", False):
            self.policy.between_steps()
            self.operator.set_driver_estop(self.env.driver_estop)
            self._publish_state("waiting_for_weights")
            if time.monotonic() - last_log > 30.0:
                log.info("still waiting for pretrained weights (%.0f s)", time.monotonic() - t0)
                last_log = time.monotonic()
            time.sleep(0.05)
        if not getattr(self.policy, "waiting_for_pretraining", False):
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

    def _hold_paused(self, stop: threading.Event) -> dict[str, np.ndarray]:
        """Pause at a step boundary: stop the arm, wait, then restart the clock and return a
        fresh observation (the one from before the pause may be arbitrarily old).

        Raises:
            StaleFrame: no fresh state or frame after the pause.
        """
        self._stop_arm()
        log.info("paused at step boundary")
        self._wait_while_paused(stop)
        return self.env.start_from(time.monotonic_ns())

    def _episode(self, k: int, stop: threading.Event) -> EpisodeResult:
        seed = self._first_seed + k
        rf = self.reset_free
        obs = rf.begin(seed) if rf is not None else self.env.reset(seed=seed)[0]
        task = rf.task if rf is not None else (
            self.cfg.robot.task if self.cfg.robot.kind == "sim" else "")
        self._task = task or self.cfg.robot.task
        self.policy.reset()
        every = self.cfg.actor.eval_every
        evaluating = bool(every and (k + 1) % every == 0 and hasattr(self.policy, "eval_mode"))
        if hasattr(self.policy, "eval_mode"):
            self.policy.eval_mode = evaluating or self.cfg.actor.policy.eval_mode
        self._episode_key = f"{self.cfg.name}-{self._run_id}-{k}-{time.monotonic_ns()}"
        if self.rewards is not None:
            self.rewards.start_episode(self._episode_key)
        writer: EpisodeWriter | None = None
        if self.store is not None and self._run_id is not None and self.cfg.actor.record:
            writer = self.store.begin_episode(
                self._run_id, task, list(self.env.camera_names), seed=seed,
                policy=self.policy.name, is_demo=self.is_demo,
                direction=rf.direction if rf is not None else None,
            )
        success, outcome, reason, t = False, "timeout", "step_limit", 0
        intervention_steps = 0
        self.operator.set_progress(k, 0)
        try:
            for t in range(1, self.cfg.actor.episode_steps + 1):
                if stop.is_set():
                    outcome, reason = "aborted", "shutdown"
                    t -= 1
                    break
                try:
                    if self.operator.paused and not self.env.estop_latched:
                        obs = self._hold_paused(stop)
                        if stop.is_set():
                            outcome, reason = "aborted", "shutdown"
                            t -= 1
                            break
                    # The policy acts even during a takeover: frame stacks and action
                    # ensembles stay in step, and it can take over again seamlessly.
                    action = self._policy_action(obs)
                    now_ns = time.monotonic_ns()
                    if self.operator.end_takeover_if_silent(now_ns, self._takeover_timeout_ns):
                        log.warning("episode %d step %d: %s", k, t,
                                    self.operator.takeover_ended)
                    intervention = False
                    if self.operator.takeover:
                        # Only steps the operator steered count as interventions (and
                        # become demos); a stale input holds the arm still.
                        action, intervention = self.operator.teleop_action(
                            now_ns, self._teleop_stale_ns, self.env.safety.gripper_action)
                    next_obs, reward, terminated, _, step_info = self.env.step(action)
                    if self.rewards is not None:
                        reward = self.rewards.apply(next_obs, step_info, self._task,
                                                    step=t - 1)
                        terminated = step_info["success"] and self.cfg.actor.end_on_success
                except StaleFrame as e:
                    log.error("episode %d: %s", k, e)
                    outcome, reason = "aborted", "stale_observation"
                    t -= 1
                    break
                self.operator.set_progress(k, t)
                intervention_steps += int(intervention)
                # Reset-free: a stuck robot ends the episode (and the scheduler escalates).
                stuck = rf.check_step(next_obs, step_info) if rf is not None else None
                self._record_step(writer, obs, step_info, reward, intervention=intervention,
                                  episode=k, step=t, next_obs=next_obs)
                last = (terminated or bool(step_info["estop"]) or stuck is not None
                        or t == self.cfg.actor.episode_steps or stop.is_set())
                if not evaluating:  # evaluation episodes are measurements, not experience
                    self._send_transition(t - 1, obs, next_obs, step_info, reward,
                                          terminated=terminated,
                                          truncated=last and not terminated,
                                          recorded=writer is not None,
                                          intervention=intervention)
                self.policy.between_steps()
                obs = next_obs
                if step_info["estop"]:
                    outcome, reason = "aborted", "estop"
                    break
                if step_info["success"]:
                    success = True
                if terminated:
                    outcome, reason = "success", "success"
                    break
                if stuck is not None and not success:
                    outcome, reason = "failure", stuck
                    break
            else:
                outcome = "success" if success else "timeout"
            self._stop_arm()
            episode_id = self._finish(writer, obs, t, outcome, reason, success)
            if self._transitions is not None and episode_id is not None and not evaluating:
                self._transitions.send("episode_stored", {"episode": self._episode_key,
                                                          "episode_id": episode_id})
            if self.rewards is not None:
                self.rewards.end_episode(self._episode_key, t, episode_id,
                                         to_learner=self._transitions is not None
                                         and not evaluating and t > 0)
                self._send_late(self.rewards.collect())
        except BaseException:
            if writer is not None:
                writer.abort("actor error")
            if self.rewards is not None:
                self.rewards.discard_episode(self._episode_key)
            raise
        return EpisodeResult(index=k, seed=seed, steps=t, success=success, outcome=outcome,
                             end_reason=reason, episode_id=episode_id, evaluation=evaluating,
                             intervention_steps=intervention_steps,
                             direction=rf.direction if rf is not None else None)

    def _send_transition(self, step: int, obs: dict[str, np.ndarray],
                         next_obs: dict[str, np.ndarray], info: dict[str, Any], reward: float,
                         *, terminated: bool, truncated: bool, recorded: bool,
                         intervention: bool = False) -> None:
        if self._transitions is None or self._spec is None:
            return
        spec = self._spec
        arrays: dict[str, np.ndarray] = {
            "action": np.asarray(info["action"], dtype=np.float32),
            "next_low_dim": low_dim_of(spec, next_obs["proprio"], next_obs.get("state")),
        }
        for cam in spec.cameras:
            arrays[f"next_rgb_{cam}"] = next_obs[cam]
        if step == 0:
            arrays["low_dim"] = low_dim_of(spec, obs["proprio"], obs.get("state"))
            for cam in spec.cameras:
                arrays[f"rgb_{cam}"] = obs[cam]
        sent = self._transitions.send("transition", {
            "episode": self._episode_key, "step": step, "reward": float(reward),
            "terminated": terminated, "truncated": truncated, "intervention": intervention,
            "recorded": recorded, "task": self._task,
        }, arrays)
        if not sent:
            log.debug("learner not keeping up or not running: transition dropped")

    def _send_late(self, episodes: list) -> None:
        """Worker-run shaping values of finished episodes: the learner adds them to the
        rewards of those episodes' transitions (which carried the inline part only)."""
        if self._transitions is None:
            return
        for episode in episodes:
            if episode.to_learner:
                self._transitions.send("episode_rewards", {
                    "episode": episode.key, "missing": episode.missing,
                }, {"reward_delta": episode.reward_delta})

    def _stop_arm(self) -> None:
        # Between episodes nobody commands the arm: stop it explicitly rather than leaving it
        # to the driver's watchdog, which is for failures.
        try:
            self.env.request("stop")
        except PeerTimeout:
            log.warning("driver did not acknowledge stop at episode end; its watchdog will")

    def _record_step(self, writer: EpisodeWriter | None, obs: dict[str, np.ndarray],
                     info: dict[str, Any], reward: float, *, intervention: bool, episode: int,
                     step: int, next_obs: dict[str, np.ndarray]) -> None:
        timing = self.env.last_timing
        assert timing is not None
        self.summary.jitter_ns.append(timing.jitter_ns)
        self.summary.latency_ns.append(timing.latency_ns)
        self.summary.period_ns.append(timing.period_ns)
        self._step_total += 1
        scalars = {
            "jitter_ms": timing.jitter_ns / 1e6,
            "latency_ms": timing.latency_ns / 1e6,
            "frame_age_ms": timing.max_frame_age_ns / 1e6,
            **info.get("reward_scalars", {}),
        }
        if writer is not None:
            writer.add_step(
                {name: obs[name] for name in self.env.camera_names}, obs["proprio"],
                info["action"], reward, bool(info["success"]), intervention=intervention,
                stamp_ns=timing.wake_ns, scalars=scalars, state=obs.get("state"),
                joint_pos=obs.get("joint_pos"),
            )
        self.operator.set_driver_estop(self.env.driver_estop)
        self._publish({
            "step": self._step_total, "episode": episode, "episode_step": step,
            "reward": reward, "success": bool(info["success"]),
            # A reward model's probability when one is configured; else the sparse signal.
            "success_prob": float(info.get("success_prob", float(bool(info["success"])))),
            "q_value": getattr(self.policy, "last_q", None),
            "intervention": intervention, "estop": bool(info["estop"]),
            "paused": self.operator.paused, "takeover": self.operator.takeover,
            "takeover_ended": self.operator.takeover_ended,
            "state": "estop" if info["estop"] else (
                "policy_fault" if self._policy_fault else "running"),
            "policy_fault": self._policy_fault,
            "direction": self.reset_free.direction if self.reset_free is not None else None,
            "filtered": ",".join(info["filter_reasons"]),
            "action_dim": self.env.scale.action_dim,  # what teleop must send (4: no yaw)
            "period_ms": timing.period_ns / 1e6, **scalars, **self._weights_info(),
            **info.get("reward_telemetry", {}),
        })
        self._live.publish(next_obs, episode, step, timing.wake_ns)

    def _weights_info(self) -> dict[str, Any]:
        """The learner weights the policy acts with: version and seconds since they came."""
        version = getattr(self.policy, "version", None)
        received = getattr(self.policy, "weights_received_s", None)
        health = getattr(self.policy, "learner_health", None)  # CQN: learner_alive, ...
        return {"policy_version": version, "weights_version": version,
                "policy_updates": getattr(self.policy, "updates", None),
                "weights_age_s": None if received is None else time.monotonic() - received,
                **(health() if health is not None else {})}

    def _policy_action(self, obs: dict[str, np.ndarray]) -> np.ndarray:
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
            return hold
        if self._policy_fault is not None:
            log.info("policy %s acts again after a fault (%s)", self.policy.name,
                     self._policy_fault)
            self._policy_fault = None
        return action

    def _publish_state(self, state: str) -> None:
        """A heartbeat while no steps run (e-stop, pause), so operators see why."""
        status = self.operator.status()
        self._publish({"state": state, "estop": status.estop_latched, "paused": status.paused,
                       "takeover": status.takeover, "intervention": False,
                       "episode": status.episode, "episode_step": status.step,
                       "policy_fault": self._policy_fault, **self._weights_info()})

    def _finish(self, writer: EpisodeWriter | None, obs: dict[str, np.ndarray], steps: int,
                outcome: str, reason: str, success: bool) -> int | None:
        if writer is None:
            return None
        if steps == 0:
            writer.abort(reason)
            return None
        if success and outcome != "success":
            outcome = "success"
        return writer.finish({name: obs[name] for name in self.env.camera_names},
                             obs["proprio"], outcome, reason, final_state=obs.get("state"),
                             final_joint_pos=obs.get("joint_pos"))

    def _publish(self, values: dict[str, Any]) -> None:
        self._telemetry.publish("telemetry", {"kind": "actor", "values": values})

    def close(self) -> None:
        self._control.stop()
        close = getattr(self.policy, "close", None)
        if close is not None:
            close()
        self._close_sockets()

    def _close_sockets(self) -> None:
        if self.rewards is not None:
            self.rewards.close()  # reward workers are processes: never leave them behind
        if self._transitions is not None:
            self._transitions.close()
        self._telemetry.close()
        self.env.close()
