"""Gymnasium environment ids for robolearn's tasks, registered when `robolearn` is imported.

import gymnasium as gym
import robolearn  # registers the ids
env = gym.make("robolearn/PickCube-v0", render_mode="rgb_array")
obs, info = env.reset(seed=0)

`robolearn/<Task>-v0` runs the MuJoCo Panda in this process (`SimTaskEnv`: no drivers, no
sockets); `robolearn/Robot-v0` is `RobotEnv`, the actor's env over running drivers (pass
`cfg=load_config(...)`). Registration uses entry-point strings only, so importing robolearn
loads neither MuJoCo nor torch; `gym.make` imports the env's module.
"""

from __future__ import annotations

import gymnasium as gym

# Gymnasium id -> sim task name (robolearn.sim.TASKS).
TASK_IDS: dict[str, str] = {
    "robolearn/Reach-v0": "reach",
    "robolearn/PushCube-v0": "push_cube",
    "robolearn/PickCube-v0": "pick_cube",
    "robolearn/DrawerOpen-v0": "drawer_open",
    "robolearn/DrawerClose-v0": "drawer_close",
}
ROBOT_ID = "robolearn/Robot-v0"
# The actor's default episode length (actor.episode_steps), so both truncate alike.
MAX_EPISODE_STEPS = 100

__all__ = ["MAX_EPISODE_STEPS", "ROBOT_ID", "TASK_IDS", "register_envs"]


def register_envs() -> None:
    """Register every robolearn id with Gymnasium; ids already registered are left alone."""
    for env_id, task in TASK_IDS.items():
        if env_id not in gym.registry:
            gym.register(
                id=env_id,
                entry_point="robolearn.envs.sim:SimTaskEnv",
                kwargs={"task": task},
                max_episode_steps=MAX_EPISODE_STEPS,
            )
    if ROBOT_ID not in gym.registry:
        # A real robot (or the sim driver, which runs in real time) is not deterministic;
        # the episode length comes from the run config (the actor truncates), not a wrapper.
        gym.register(id=ROBOT_ID, entry_point="robolearn.actor.env:RobotEnv",
                     nondeterministic=True)
