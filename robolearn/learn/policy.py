"""The CQN policy on the actor's side: acts from its own copy of the networks and swaps in
the learner's newest weights between steps, never waiting for them."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import zmq

from robolearn.config import RunConfig
from robolearn.errors import ConfigError
from robolearn.learn.cqn import CQNAgent
from robolearn.learn.observation import FrameStacker, check_checkpoint_layout, obs_spec_for
from robolearn.learn.weights import nonfinite_tensors, unpack_policy
from robolearn.protocol import Subscriber
from robolearn.protocol.messages import LearnerStatus, Weights

log = logging.getLogger(__name__)

_NO_UTD: dict[str, float | bool | None] = {
    "learner_utd_target": None, "learner_utd_held": None, "learner_updates_per_s": None,
    "learner_env_steps_per_s": None, "learner_behind": None}


def load_policy_checkpoint(agent: CQNAgent, path: Path) -> dict[str, Any]:
    """Load a learner checkpoint's networks into `agent`; returns its counters."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    check_checkpoint_layout(state, agent.obs_spec, path)
    agent.load_state_dict(state["agent"])
    return dict(state.get("counters", {}))


class CQNPolicy:
    """Conforms to robolearn.actor.policies.Policy (structurally: `make_policy` returns it
    as one, so mypy checks every member)."""

    has_eval_mode = True  # greedy evaluation episodes (actor.eval_every) mean something

    def __init__(self, cfg: RunConfig, ctx: zmq.Context[Any] | None = None) -> None:
        self.cfg = cfg
        self.spec = obs_spec_for(cfg)
        # Acting is one small forward pass: more threads only contend with the learner and
        # the drivers for the cores and make the loop's latency spiky.
        torch.set_num_threads(1)
        torch.manual_seed(cfg.actor.policy.seed)
        self.agent = CQNAgent(cfg.learner.cqn, self.spec, cfg.actor.action_scale.action_dim,
                              "cpu")
        self.eval_mode = cfg.actor.policy.eval_mode
        # encoder "pretrained": the frozen model encodes each frame once, here as in the learner.
        self.stacker = FrameStacker(self.spec, self.agent.frame_encoder)
        self.version = 0
        self.session = ""  # the learner process whose weights are loaded
        self.updates = 0
        self.step = 0
        self.weights_received_s: float | None = None  # time.monotonic() of the last swap
        # Whether to hold the robot until the learner's demo head start is done
        # (learner.pretrain_updates): until its first weights say it is not pretraining.
        self.waiting_for_pretraining = (
            ctx is not None and cfg.learner.enabled and cfg.learner.pretrain_updates > 0
            and cfg.actor.policy.checkpoint is None)
        if cfg.actor.policy.checkpoint is not None:
            counters = load_policy_checkpoint(self.agent, cfg.actor.policy.checkpoint)
            self.version = int(counters.get("version", 0))
            self.step = int(counters.get("env_steps", 0))
            log.info("cqn policy: loaded %s (version %d)", cfg.actor.policy.checkpoint,
                     self.version)
        # Weights that failed to load (session, version): refused once, never retried.
        self._refused: tuple[str, int] | None = None
        # Learner liveness: any weights or learner_status message counts as a sign of life.
        # It is given the timeout from now to show up at all.
        self._heartbeat_timeout_s = cfg.learner.heartbeat_timeout_s
        self._last_heard_s = time.monotonic()
        self._reported_silent = False
        self._status_seen: tuple[str, int, int] | None = None
        self.learner_error: str | None = None  # what a failed learner said, until it is back
        # The UTD the learner reported holding (learner_status), for telemetry.
        self.learner_utd: dict[str, float | bool | None] = dict(_NO_UTD)
        self._weights: Subscriber | None = None
        if ctx is not None and cfg.learner.enabled:
            self._weights = Subscriber(ctx, cfg.learner.weights_address,
                                       types=("weights", "learner_status"),
                                       security=cfg.socket_security(
                                           cfg.learner.weights_address, "actor"))

    @property
    def name(self) -> str:  # what the store records as the episode's policy
        return "cqn-eval" if self.eval_mode else "cqn"

    def reset(self) -> None:
        self.stacker.reset()
        self.agent.reset()  # CQN-AS: no temporal ensembling across episodes

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        """The action for `obs`.

        Raises:
            PolicyFault: the critic's Q-values are NaN or inf; the caller holds the arm.
        """
        rgb, low = self.stacker.push(obs)
        action = self.agent.act(rgb, low, self.step, self.eval_mode)
        self.step += 1
        return action

    @property
    def last_q(self) -> float | None:
        """The greedy Q-value of the last action (telemetry), None before one or on a fault."""
        return self.agent.last_q

    @property
    def last_uncertainty(self) -> float | None:
        """How unsure the critic is of the last action's return (the std of its C51
        distribution; actor.ask_takeover), None when the critic did not choose it."""
        return self.agent.last_uncertainty

    def between_steps(self) -> None:
        """Swap in the newest published weights, if a newer version arrived."""
        if self._weights is None:
            return
        self._poll_learner()
        msg = self._weights.latest("weights")
        if msg is None:
            return
        weights = Weights.from_message(msg)
        key = (weights.session, weights.version)
        same_learner = key[0] == self.session
        if key == self._refused or (same_learner and key[1] <= self.version):
            return
        try:
            state = unpack_policy(list(weights.layout), weights.blob)
            # A learner that diverged must not steer the arm: refuse the whole version.
            bad = nonfinite_tensors(state)
            if bad:
                raise ValueError(f"{len(bad)} tensor(s) hold NaN or inf ("
                                 f"{', '.join(bad[:3])}{', ...' if len(bad) > 3 else ''})")
            self.agent.load_policy_state_dict(state)
        except (ValueError, KeyError, RuntimeError, ConfigError) as e:
            log.error("cqn policy: refused weights version %d of learner %s: %s; still acting "
                      "on version %d", key[1], key[0], e, self.version)
            self._refused = key  # logged once: the learner re-sends the same version
            return
        if self.version == 0 or not same_learner or weights.version % 20 == 0:
            log.info("cqn policy: weights version %d (update %d)", weights.version,
                     weights.update_step)
        self.session, self.version = key
        self.updates = weights.update_step
        self.weights_received_s = time.monotonic()
        if not weights.pretraining:
            self.waiting_for_pretraining = False

    def _poll_learner(self) -> None:
        """Take what the learner sent; log once when it falls silent or reports a failure."""
        assert self._weights is not None
        now = time.monotonic()
        if self._weights.poll():
            if self._reported_silent:
                log.info("cqn policy: the learner is back after %.0f s of silence",
                         now - self._last_heard_s)
            self._last_heard_s, self._reported_silent = now, False
        elif not self._reported_silent and now - self._last_heard_s > self._heartbeat_timeout_s:
            log.error("cqn policy: nothing from the learner at %s for %.0f s "
                      "(learner.heartbeat_timeout_s %.0f): it has stopped or cannot reach "
                      "this actor; still acting on weights version %d, which no longer "
                      "improve. Check the learner's log and restart it (--resume)",
                      self.cfg.learner.weights_address, now - self._last_heard_s,
                      self._heartbeat_timeout_s, self.version)
            self._reported_silent = True
        status = self._weights.latest("learner_status")
        if status is None:
            return
        ident = (status.sender, status.seq, status.sent_ns)
        if ident == self._status_seen:
            return
        self._status_seen = ident
        report = LearnerStatus.from_message(status)
        self.learner_utd = {
            "learner_utd_target": report.utd_target, "learner_utd_held": report.utd_held,
            "learner_updates_per_s": report.updates_per_s,
            "learner_env_steps_per_s": report.env_steps_per_s,
            "learner_behind": report.utd_behind}
        if report.state == "failed":
            error = report.error or "no reason given"
            if error != self.learner_error:
                log.error("cqn policy: the learner (session %s) failed: %s",
                          report.session, error)
            self.learner_error = error
        else:
            self.learner_error = None

    def learner_health(self) -> dict[str, bool | float | str | None]:
        """Telemetry values: whether the learner was heard within learner.heartbeat_timeout_s
        (None when this policy takes no weights), seconds since, its failure if any, and the
        updates per env step it last reported holding against its target (learner_utd_*,
        learner_updates_per_s, learner_env_steps_per_s, learner_behind; None until it
        reports them)."""
        if self._weights is None:
            return {"learner_alive": None, "learner_silent_s": None, "learner_error": None,
                    **_NO_UTD}
        self._poll_learner()
        silent_s = time.monotonic() - self._last_heard_s
        return {"learner_alive": silent_s <= self._heartbeat_timeout_s
                and self.learner_error is None,
                "learner_silent_s": round(silent_s, 1), "learner_error": self.learner_error,
                **self.learner_utd}

    def close(self) -> None:
        if self._weights is not None:
            self._weights.close()
