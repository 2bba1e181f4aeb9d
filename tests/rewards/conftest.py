"""Fixtures for reward-model tests: a fresh migrated store per test and sim rollouts of
pick_cube rendered once per session (rollout helpers: robolearn.sim.rollouts)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from robolearn.sim.rollouts import Rollout, rollout
from robolearn.store import Store

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", "egl")


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
