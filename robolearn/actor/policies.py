"""What the actor may ask of a policy (`Policy`), and the policies it can run before a
learner exists: the sim's scripted expert, random actions, and holding still. A learned
checkpoint (robolearn.learn.policy.CQNPolicy) plugs in through the same protocol.

Every member the control loop uses is declared on `Policy`; nothing is probed with
`getattr`. The members only a learned policy gives meaning to (greedy evaluation, the
learner's weights, its Q-value) have defaults on `PolicyBase`, which scripted policies and
test doubles derive from. The actor checks a policy once, at construction (`check_policy`).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np
import zmq

from robolearn.actor.env import DriverError, RobotEnv
from robolearn.config import RunConfig
from robolearn.protocol.messages import Reply

# A learned policy's report on its learner (telemetry values, e.g. learner_alive).
LearnerHealth = dict[str, bool | float | str | None]


@runtime_checkable
class Policy(Protocol):
    """A policy as the actor drives it; see `PolicyBase` for the optional members."""

    @property
    def name(self) -> str:
        """What the store records as an episode's policy (may follow `eval_mode`)."""

    @property
    def has_eval_mode(self) -> bool:
        """A greedy mode that differs from how it acts while practising exists: then every
        `actor.eval_every`-th episode is an evaluation, stored but not learned from."""

    eval_mode: bool  # act greedily (set by the actor per episode when has_eval_mode)

    @property
    def waiting_for_pretraining(self) -> bool:
        """The actor holds the robot still until this turns False (the learner's demo head
        start, learner.pretrain_updates); `between_steps` keeps being called meanwhile."""

    @property
    def last_q(self) -> float | None:
        """The critic's value of the last action, for telemetry; None when it has none."""

    @property
    def version(self) -> int | None:
        """The learner weights version acted with; None when it takes no weights."""

    @property
    def updates(self) -> int | None:
        """The learner's update count of those weights; None when it takes no weights."""

    @property
    def weights_received_s(self) -> float | None:
        """time.monotonic() when the acting weights arrived; None before any or without."""

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        """The action for `obs` (policy space, [-1, 1]).

        Raises:
            PolicyFault: it cannot act (NaN/inf values); the actor holds the arm.
        """

    def reset(self) -> None:
        """A new episode starts (clear frame stacks, action queues)."""

    def between_steps(self) -> None:
        """Called after each command is sent, in the loop's idle time (weight swaps)."""

    def learner_health(self) -> LearnerHealth:
        """Telemetry values about its learner (empty when it has none)."""

    def close(self) -> None:
        """Release its sockets; the actor calls it once when it closes."""


@runtime_checkable
class ReportsUncertainty(Protocol):
    """A policy whose critic says how sure it is of its last action (CQNPolicy)."""

    @property
    def last_uncertainty(self) -> float | None:
        """The std of the last action's return distribution; None when it has none."""


class PolicyBase:
    """The optional members of `Policy` with what they mean for a policy without a learner:
    no greedy mode, no weights, no Q-value, nothing to wait for, nothing to close."""

    has_eval_mode = False
    eval_mode = False
    waiting_for_pretraining = False
    last_q: float | None = None
    version: int | None = None
    updates: int | None = None
    weights_received_s: float | None = None

    def reset(self) -> None:
        pass

    def between_steps(self) -> None:
        pass

    def learner_health(self) -> LearnerHealth:
        return {}

    def close(self) -> None:
        pass


def _protocol_members(proto: type) -> frozenset[str]:
    own = vars(proto)  # its declared attributes (annotations) and methods/properties
    return frozenset({*own.get("__annotations__", {}), *(n for n in own if n[0] != "_")})


POLICY_MEMBERS = _protocol_members(Policy)


def check_policy(policy: object) -> Policy:
    """`policy`, checked to have every member of `Policy` (once, before the loop runs).

    Raises:
        TypeError: a member is missing.
    """
    if isinstance(policy, Policy):
        return policy
    missing = sorted(m for m in POLICY_MEMBERS if not hasattr(policy, m))
    raise TypeError(
        f"actor: policy {type(policy).__name__} lacks {', '.join(missing)} of the Policy "
        "protocol; derive it from robolearn.actor.policies.PolicyBase, which gives the "
        "optional members their defaults")


class ExpertPolicy(PolicyBase):
    """The sim task's scripted expert, asked over the wire (it needs privileged sim state)."""

    name = "expert"

    def __init__(self, env: RobotEnv) -> None:
        self._env = env

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        reply = Reply.from_message(self._env.request("expert_action"))
        if not reply.ok:
            raise DriverError(
                f"expert policy: driver refused expert_action ({reply.reason}); the "
                "scripted expert exists only for the sim robot"
            )
        return np.asarray(reply.arrays["action"], dtype=np.float32)


class RandomPolicy(PolicyBase):
    name = "random"

    def __init__(self, action_dim: int, seed: int = 0) -> None:
        self._rng = np.random.default_rng(seed)
        self._dim = action_dim

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        return self._rng.uniform(-1.0, 1.0, self._dim).astype(np.float32)


class ZeroPolicy(PolicyBase):
    name = "zero"

    def __init__(self, action_dim: int) -> None:
        self._action = np.zeros(action_dim, dtype=np.float32)
        self._action[-1] = -1.0  # gripper open

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        return self._action.copy()


def make_policy(cfg: RunConfig, env: RobotEnv, ctx: zmq.Context[Any] | None = None) -> Policy:
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
