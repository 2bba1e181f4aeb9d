"""The registered robolearn/<Task>-v0 ids: Gymnasium conformance, the actor's spaces, safety
filter, reward and truncation, and light registration."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from collections.abc import Iterator
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import robolearn  # noqa: F401 - registers the ids
from robolearn.config import SafetyConfig
from robolearn.envs import MAX_EPISODE_STEPS, TASK_IDS
from robolearn.envs.sim import SimTaskEnv
from robolearn.sim import PandaSim

SMALL = (24, 24)
VARIANTS: dict[str, dict[str, Any]] = {
    "pixels": {"image_size": SMALL},
    "pixels+state": {"image_size": SMALL, "observe_state": True},
    "state": {"cameras": (), "observe_state": True},
}


@pytest.fixture
def no_warnings() -> Iterator[list[warnings.WarningMessage]]:
    """Every warning raised inside (Gymnasium's checkers warn rather than fail) fails the test."""
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        yield seen
    assert not seen, [str(w.message) for w in seen]


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("env_id", TASK_IDS)
def test_check_env_passes_unwrapped(env_id: str, variant: str, no_warnings: list) -> None:
    env = gym.make(env_id, **VARIANTS[variant])
    try:
        check_env(env.unwrapped)
    finally:
        env.close()


@pytest.mark.parametrize("env_id", TASK_IDS)
def test_make_passes_the_passive_checker_and_renders(env_id: str, no_warnings: list) -> None:
    env = gym.make(env_id, render_mode="rgb_array", image_size=SMALL)
    try:
        obs, info = env.reset(seed=3)
        assert set(obs) == {"front", "wrist", "proprio"}  # no privileged state unless asked
        assert info["description"] == env.unwrapped.description != ""
        obs, *_ = env.step(env.action_space.sample())
        assert obs in env.observation_space
        frame = env.render()
        assert isinstance(frame, np.ndarray)
        assert frame.shape == (*SMALL, 3) and frame.dtype == np.uint8
    finally:
        env.close()


def test_registration_loads_neither_mujoco_nor_torch() -> None:
    probe = ("import json, sys, gymnasium as gym, robolearn\n"
             "ids = sorted(i for i in gym.registry if i.startswith('robolearn/'))\n"
             "print(json.dumps([ids, sorted({m.split('.')[0] for m in sys.modules})]))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    ids, modules = json.loads(out.strip().splitlines()[-1])
    assert set(TASK_IDS) | {"robolearn/Robot-v0"} == set(ids)
    assert not {"mujoco", "torch"} & set(modules)


@pytest.mark.parametrize("env_id", TASK_IDS)
def test_the_expert_earns_the_reward_and_ends_the_episode(env_id: str) -> None:
    env = gym.make(env_id, cameras=(), observe_state=True)
    try:
        env.reset(seed=0)
        for _ in range(MAX_EPISODE_STEPS):
            _, reward, terminated, truncated, info = env.step(env.unwrapped.expert_action())
            if terminated or truncated:
                break
        assert terminated and not truncated
        assert reward == 1.0 and info["success"]
    finally:
        env.close()


def test_truncates_at_the_episode_length() -> None:
    env = gym.make("robolearn/Reach-v0", cameras=(), max_episode_steps=3)
    assert gym.spec("robolearn/Reach-v0").max_episode_steps == MAX_EPISODE_STEPS
    try:
        env.reset(seed=0)
        hold = np.array([0, 0, 0, -1], np.float32)
        flags = [env.step(hold)[2:4] for _ in range(3)]
        assert flags == [(False, False), (False, False), (False, True)]
    finally:
        env.close()


def test_seeded_reset_places_objects_as_the_sim_driver_does() -> None:
    env = SimTaskEnv("push_cube", cameras=(), observe_state=True)
    sim = PandaSim("push_cube", render=False)
    sim.reset(seed=7)
    obs, _ = env.reset(seed=7)
    positions = sim.object_positions()
    np.testing.assert_allclose(
        obs["state"], np.concatenate([positions[k] for k in sorted(positions)]), atol=1e-6)
    np.testing.assert_allclose(obs["proprio"], sim.proprio(), atol=1e-6)


def test_actions_pass_the_actors_safety_filter() -> None:
    box = SafetyConfig(workspace_min_m=(0.3, -0.2, 0.1), workspace_max_m=(0.6, 0.2, 0.4))
    env = SimTaskEnv("reach", cameras=(), safety=box)
    env.reset(seed=0)
    _, _, _, _, info = env.step(np.array([np.nan, 0, 0, 0], np.float32))
    assert info["filter_reasons"] == ("non_finite",)
    for _ in range(15):  # full speed along +x: the box stops it
        obs, _, _, _, info = env.step(np.array([1, 0, 0, -1], np.float32))
    assert "workspace" in info["filter_reasons"]
    assert obs["proprio"][0] <= 0.6 + 0.01
    assert np.all(np.abs(info["action"]) <= 1.0)
