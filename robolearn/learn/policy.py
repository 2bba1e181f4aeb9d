"""The CQN policy on the actor's side: acts from its own copy of the networks and swaps in
the learner's newest weights between steps, never waiting for them."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import torch
import zmq

from robolearn.config import RunConfig
from robolearn.learn.cqn import CQNAgent
from robolearn.learn.observation import FrameStacker, check_checkpoint_layout, obs_spec_for
from robolearn.learn.weights import unpack_policy
from robolearn.protocol import Subscriber

log = logging.getLogger(__name__)


def load_policy_checkpoint(agent: CQNAgent, path: Path) -> dict:
    """Load a learner checkpoint's networks into `agent`; returns its counters."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    check_checkpoint_layout(state, agent.obs_spec, path)
    agent.load_state_dict(state["agent"])
    return dict(state.get("counters", {}))


class CQNPolicy:

    def __init__(self, cfg: RunConfig, ctx: zmq.Context | None = None) -> None:
        self.cfg = cfg
        self.spec = obs_spec_for(cfg)
        # Acting is one small forward pass: more threads only contend with the learner and
        # the drivers for the cores and make the loop's latency spiky.
        torch.set_num_threads(1)
        torch.manual_seed(cfg.actor.policy.seed)
        self.agent = CQNAgent(cfg.learner.cqn, self.spec, cfg.actor.action_scale.action_dim,
                              "cpu")
        self.eval_mode = cfg.actor.policy.eval_mode
        self.stacker = FrameStacker(self.spec)
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
        self._weights: Subscriber | None = None
        if ctx is not None and cfg.learner.enabled:
            self._weights = Subscriber(ctx, cfg.learner.weights_address, types=("weights",),
                                       security=cfg.security.socket_security())

    @property
    def name(self) -> str:  # what the store records as the episode's policy
        return "cqn-eval" if self.eval_mode else "cqn"

    def reset(self) -> None:
        self.stacker.reset()
        self.agent.reset()  # CQN-AS: no temporal ensembling across episodes

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        rgb, low = self.stacker.push(obs)
        action = self.agent.act(rgb, low, self.step, self.eval_mode)
        self.step += 1
        return action

    def between_steps(self) -> None:
        """Swap in the newest published weights, if a newer version arrived."""
        if self._weights is None:
            return
        self._weights.poll()
        msg = self._weights.latest("weights")
        if msg is None:
            return
        same_learner = msg.body["session"] == self.session
        if same_learner and msg.body["version"] <= self.version:
            return
        try:
            self.agent.load_policy_state_dict(
                unpack_policy(list(msg.body["layout"]), msg.arrays["blob"]))
        except (ValueError, KeyError, RuntimeError) as e:
            log.error("cqn policy: refused weights version %d: %s", msg.body["version"], e)
            self.session, self.version = msg.body["session"], msg.body["version"]
            return  # never retry the same bad message
        if self.version == 0 or not same_learner or msg.body["version"] % 20 == 0:
            log.info("cqn policy: weights version %d (update %d)", msg.body["version"],
                     msg.body["update_step"])
        self.session, self.version = msg.body["session"], msg.body["version"]
        self.updates = msg.body["update_step"]
        self.weights_received_s = time.monotonic()
        if not msg.body.get("pretraining", False):
            self.waiting_for_pretraining = False

    def close(self) -> None:
        if self._weights is not None:
            self._weights.close()
