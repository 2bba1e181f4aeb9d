"""Policies the actor can run before a learner exists: the sim's scripted expert, random
actions, and holding still. A learned checkpoint plugs in through the same `Policy` protocol.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import zmq

from robolearn.actor.env import DriverError, RobotEnv
from robolearn.config import RunConfig


class Policy(Protocol):
    name: str

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray: ...

    def reset(self) -> None:
        """A new episode starts (clear frame stacks, action queues)."""

    def between_steps(self) -> None:
        """Called after each command is sent, in the loop's idle time (weight swaps)."""


class _Stateless:
    def reset(self) -> None:
        pass

    def between_steps(self) -> None:
        pass


class ExpertPolicy(_Stateless):
    """The sim task's scripted expert, asked over the wire (it needs privileged sim state)."""

    name = "expert"

    def __init__(self, env: RobotEnv) -> None:
        self._env = env

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        reply = self._env.request("expert_action")
        if not reply.body["ok"]:
            raise DriverError(
                f"expert policy: driver refused expert_action ({reply.body['reason']}); the "
                "scripted expert exists only for the sim robot"
            )
        return np.asarray(reply.arrays["action"], dtype=np.float32)


class RandomPolicy(_Stateless):
    name = "random"

    def __init__(self, action_dim: int, seed: int = 0) -> None:
        self._rng = np.random.default_rng(seed)
        self._dim = action_dim

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        return self._rng.uniform(-1.0, 1.0, self._dim).astype(np.float32)


class ZeroPolicy(_Stateless):
    name = "zero"

    def __init__(self, action_dim: int) -> None:
        self._action = np.zeros(action_dim, dtype=np.float32)
        self._action[-1] = -1.0  # gripper open

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        return self._action.copy()


def make_policy(cfg: RunConfig, env: RobotEnv, ctx: zmq.Context | None = None) -> Policy:
    """The policy named by cfg.actor.policy; `ctx` lets a CQN policy receive weights."""
    pcfg = cfg.actor.policy
    if pcfg.kind == "cqn":
        from robolearn.learn.policy import CQNPolicy  # torch only when a learner is used

        return CQNPolicy(cfg, ctx)
    if pcfg.kind == "expert":
        return ExpertPolicy(env)
    if pcfg.kind == "random":
        return RandomPolicy(env.scale.action_dim, pcfg.seed)
    return ZeroPolicy(env.scale.action_dim)
