"""Record sim episodes in-process for replay and dataset tests: the real PandaSim stepped
deterministically (one control period per step, as action-mode replay steps it) into a real
store, with joint positions and world state logged as the actor logs them."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from robolearn.playback import MujocoBackend
from robolearn.store import Store

RUN_CONFIG = {"actor": {"control_hz": 10.0,
                        "action_scale": {"xyz_m": 0.05, "yaw_rad": 0.25, "use_yaw": False}}}


def record_sim_episode(
    store: Store,
    task: str = "pick_cube",
    seed: int = 3,
    *,
    max_steps: int = 40,
    cameras: tuple[str, ...] = ("front", "wrist"),
    image_size: tuple[int, int] = (32, 32),
    policy: Callable[[MujocoBackend], np.ndarray] | None = None,
    joints: bool = True,
    is_demo: bool = False,
) -> int:
    """Run the task's scripted expert (or `policy`) until success or `max_steps`; store it."""
    sim = MujocoBackend(task, cameras=cameras, image_size=image_size, control_hz=10.0)
    run_id = store.create_run(f"record {task}", RUN_CONFIG)
    obs = sim.reset(seed)
    success = False
    with store.begin_episode(run_id, task, list(cameras), seed=seed, policy="expert",
                             is_demo=is_demo) as writer:
        for _ in range(max_steps):
            action = (policy or (lambda b: b.sim.expert_action()))(sim)
            next_obs = sim.apply_action(action)
            success = sim.success()
            writer.add_step(obs.images, obs.proprio, action, float(success), success,
                            state=obs.state, joint_pos=obs.joint_pos_rad if joints else None,
                            scalars={"q_value": 0.5})
            obs = next_obs
            if success:
                break
        episode_id = writer.finish(obs.images, obs.proprio,
                                   "success" if success else "failure", final_state=obs.state,
                                   final_joint_pos=obs.joint_pos_rad if joints else None)
    sim.close()
    store.end_run(run_id, "finished")
    return episode_id
