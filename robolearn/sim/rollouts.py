"""Scripted sim rollouts recorded as episodes: labelled data for reward-model tests and
benchmarks (success classifier frames, preference segments with true returns).

Example::

    from robolearn.sim.rollouts import record_rollout, rollout

    r = rollout("pick_cube", seed=0, policy="expert", steps=20)   # renders "front" at 64 px
    episode_id = record_rollout(store, run_id, r)                  # rewards = sim success
"""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING, Literal

import numpy as np

if TYPE_CHECKING:  # the store pulls in SQLAlchemy; only recording needs it
    from robolearn.store import Store

log = logging.getLogger(__name__)

Policy = Literal["expert", "random"]
DEFAULT_IMAGE_SIZE = (64, 64)  # the classifier's default input size, px


@dataclasses.dataclass(frozen=True)
class Rollout:
    """One sim episode: T actions and the T+1 observations around them."""

    seed: int
    policy: str
    images: dict[str, np.ndarray]  # camera -> uint8 [T+1, H, W, 3]
    proprio: np.ndarray  # [T+1, P]
    state: np.ndarray  # [T+1, Q] object positions, concatenated
    action: np.ndarray  # [T, D]
    success: np.ndarray  # [T] bool: the sim's success after each action

    @property
    def outcome(self) -> str:
        return "success" if self.success.any() else "failure"

    @property
    def frame_success(self) -> np.ndarray:
        """[T+1] bool: the sim's success for every observation (the first is before any
        action, so never a success)."""
        return np.concatenate([[False], self.success])


def rollout(task: str, seed: int, policy: Policy, steps: int,
            cameras: tuple[str, ...] = ("front",), noise: float = 0.0,
            size: tuple[int, int] = DEFAULT_IMAGE_SIZE, render: bool = True) -> Rollout:
    """Run the scripted expert (optionally with Gaussian action noise) or a uniformly
    random policy in a fresh PandaSim.

    Args:
        seed: scene seed (the policy's noise comes from seed + 1000).
        cameras: cameras rendered at every observation; () with render=False records
            only proprio, object state and actions (no renderer is created).
        noise: standard deviation of the noise added to the expert's [-1, 1] actions.

    Raises:
        ValueError: an unknown policy.
    """
    from robolearn.sim.panda import PandaSim  # MuJoCo loads only when a rollout runs

    if policy not in ("expert", "random"):
        raise ValueError(f"rollout policy {policy!r}: expected 'expert' or 'random'")
    sim = PandaSim(task, image_size=size, cameras=cameras or ("front",), render=render)
    try:
        sim.reset(seed=seed)
        rng = np.random.default_rng(seed + 1000)
        images: dict[str, list[np.ndarray]] = {c: [] for c in cameras}
        proprio, state, actions, success = [], [], [], []

        def observe() -> None:
            for c in cameras:
                images[c].append(sim.render(c))
            proprio.append(sim.proprio())
            state.append(np.concatenate(list(sim.object_positions().values()))
                         .astype(np.float32))

        observe()
        for _ in range(steps):
            expert = sim.expert_action()
            if policy == "expert":
                action = expert
                if noise:
                    action = np.clip(action + rng.normal(0, noise, action.shape), -1, 1)
            else:
                action = rng.uniform(-1, 1, expert.shape)
            action = action.astype(np.float32)
            sim.step(action)
            actions.append(action)
            success.append(sim.success())
            observe()
    finally:
        sim.close()
    return Rollout(seed, policy, {c: np.stack(v) for c, v in images.items()},
                   np.stack(proprio), np.stack(state), np.stack(actions),
                   np.array(success, bool))


def record_rollout(store: Store, run_id: int, r: Rollout, task: str = "pick_cube",
                   rewards: np.ndarray | None = None) -> int:
    """Store a rollout as a complete episode (its rewards: the sim's success unless
    `rewards` [T] is given); returns the episode id."""
    cameras = list(r.images)
    with store.begin_episode(run_id, task, cameras, seed=r.seed, policy=r.policy) as writer:
        for t in range(len(r.action)):
            reward = float(r.success[t]) if rewards is None else float(rewards[t])
            writer.add_step({c: r.images[c][t] for c in cameras}, r.proprio[t], r.action[t],
                            reward, bool(r.success[t]), state=r.state[t])
        return writer.finish({c: r.images[c][-1] for c in cameras}, r.proprio[-1], r.outcome,
                             final_state=r.state[-1])
