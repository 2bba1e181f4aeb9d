"""`RobotEnv` over a real sim driver process passes Gymnasium's `check_env`, and its spaces
match the in-process `robolearn/<Task>-v0` envs, so a policy moves between them unchanged."""

from __future__ import annotations

import warnings
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import zmq
from gymnasium.utils.env_checker import check_env

from robolearn.actor.env import RobotEnv
from robolearn.config import load_config
from robolearn.envs import ROBOT_ID

CAMERAS = [{"kind": "sim", "name": "front", "width": 32, "height": 24, "fps": 20},
           {"kind": "sim", "name": "wrist", "width": 32, "height": 24, "fps": 20}]


def checked(env: gym.Env) -> None:
    """check_env, with any warning it raises (infinite bounds, ...) made a failure."""
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        check_env(env)
    assert not seen, [str(w.message) for w in seen]


@pytest.mark.parametrize("actor", [{}, {"observe_state": True}], ids=["pixels", "state"])
def test_robot_env_passes_check_env(driver: Any, actor: dict[str, Any]) -> None:
    _, path = driver(robot={"task": "push_cube"}, cameras=CAMERAS, actor=actor)
    cfg = load_config(path)
    ctx = zmq.Context()
    env = RobotEnv(cfg, ctx)
    try:
        checked(env)
        obs, _ = env.reset(seed=1)
        # What the actor records beyond the policy's inputs is in the space too.
        assert obs["joint_pos"].shape == (7,) and "joint_pos" in env.observation_space.spaces
        assert ("state" in obs) == bool(actor)
    finally:
        env.close()
        ctx.term()


def test_make_robot_env_passes_the_passive_checker(driver: Any) -> None:
    _, path = driver(cameras=CAMERAS, actor={"observe_state": True})
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        env = gym.make(ROBOT_ID, cfg=load_config(path))  # makes and owns its own context
        try:
            obs, _ = env.reset(seed=0)
            obs, *_ = env.step(np.zeros(4, np.float32))
            assert obs in env.observation_space
        finally:
            env.close()
            env.close()  # a second close is allowed
    assert not seen, [str(w.message) for w in seen]


def test_spaces_match_the_registered_sim_env(write_config: Any) -> None:
    # No driver needed: the spaces come from the config alone.
    cfg = load_config(write_config(robot={"task": "drawer_open"}, cameras=CAMERAS,
                                   actor={"observe_state": True}))
    robot_env = RobotEnv(cfg)
    sim_env = gym.make("robolearn/DrawerOpen-v0", image_size=(24, 32), observe_state=True)
    try:
        for key, space in sim_env.observation_space.spaces.items():
            assert robot_env.observation_space[key] == space, key
        assert robot_env.action_space == sim_env.action_space
    finally:
        robot_env.close()
        sim_env.close()
