"""Fixtures for reward-model tests: a fresh migrated store per test, sim rollouts of
pick_cube rendered once per session, and a helper that records rollouts as episodes."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from robolearn.store import Store

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", "egl")

IMAGE_SIZE = (64, 64)


@dataclasses.dataclass
class Rollout:
    """One sim episode: frames [T+1, H, W, 3] per camera, per-step arrays, seed."""

    seed: int
    policy: str
    images: dict[str, np.ndarray]
    proprio: np.ndarray  # [T+1, P]
    state: np.ndarray  # [T+1, Q]
    action: np.ndarray  # [T, D]
    success: np.ndarray  # [T] sim success after each action

    @property
    def outcome(self) -> str:
        return "success" if self.success.any() else "failure"


def rollout(task: str, seed: int, policy: str, steps: int,
            cameras: tuple[str, ...] = ("front",), noise: float = 0.0,
            size: tuple[int, int] = IMAGE_SIZE, render: bool = True) -> Rollout:
    """Run the scripted expert (optionally noisy) or a random policy in PandaSim."""
    from robolearn.sim.panda import PandaSim

    sim = PandaSim(task, image_size=size, cameras=cameras or ("front",), render=render)
    sim.reset(seed=seed)
    rng = np.random.default_rng(seed + 1000)
    images: dict[str, list[np.ndarray]] = {c: [] for c in cameras}
    proprio, state, actions, success = [], [], [], []

    def observe() -> None:
        for c in cameras:
            images[c].append(sim.render(c))
        proprio.append(sim.proprio())
        state.append(np.concatenate(list(sim.object_positions().values())).astype(np.float32))

    observe()
    for _ in range(steps):
        if policy == "expert":
            action = sim.expert_action()
            if noise:
                action = np.clip(action + rng.normal(0, noise, action.shape), -1, 1)
        else:
            action = rng.uniform(-1, 1, sim.expert_action().shape)
        action = action.astype(np.float32)
        sim.step(action)
        actions.append(action)
        success.append(sim.success())
        observe()
    sim.close()
    return Rollout(seed, policy, {c: np.stack(v) for c, v in images.items()},
                   np.stack(proprio), np.stack(state), np.stack(actions),
                   np.array(success, bool))


def record(store: Store, run_id: int, r: Rollout, task: str = "pick_cube",
           rewards: np.ndarray | None = None) -> int:
    """Store a rollout as a complete episode; returns its id."""
    cameras = list(r.images)
    with store.begin_episode(run_id, task, cameras, seed=r.seed, policy=r.policy) as writer:
        for t in range(len(r.action)):
            reward = float(r.success[t]) if rewards is None else float(rewards[t])
            writer.add_step({c: r.images[c][t] for c in cameras}, r.proprio[t], r.action[t],
                            reward, bool(r.success[t]), state=r.state[t])
        return writer.finish({c: r.images[c][-1] for c in cameras}, r.proprio[-1], r.outcome,
                             final_state=r.state[-1])


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path / "data") as opened:
        yield opened


@pytest.fixture
def run_id(store: Store) -> int:
    return store.create_run("pick_cube", {"task": "pick_cube"}, kind="sim")


@pytest.fixture(scope="session")
def pick_cube_rollouts() -> dict[str, list[Rollout]]:
    """Rendered pick_cube rollouts: "train" seeds 0-11 and unseen "test" seeds 100-102,
    each an expert episode (succeeds around step 13) and a random-policy episode."""
    def both(seed: int) -> list[Rollout]:
        return [rollout("pick_cube", seed, "expert", 20),
                rollout("pick_cube", seed, "random", 12)]

    return {
        "train": [r for seed in range(12) for r in both(seed)],
        "test": [r for seed in range(100, 103) for r in both(seed)],
    }
