"""`SimTaskEnv`: a robolearn sim task as an in-process Gymnasium env (no drivers, no sockets).

import gymnasium as gym
import robolearn  # registers the ids
env = gym.make("robolearn/PushCube-v0", image_size=(64, 64), observe_state=True)

The MuJoCo Panda (`robolearn.sim.PandaSim`) runs in this process, one `step()` advancing
physics by one control period. Observations have the keys, shapes and bounds of the actor's
`RobotEnv` on the sim driver: one uint8 HxWx3 image per camera ("front", "wrist"), `proprio`
(float32: end-effector position, orientation wxyz, gripper width) and, only when
`observe_state=True`, the privileged `state` (the task's object positions, 3 each, in name
order: the sim driver's `object_state`). Actions are the normalised end-effector delta +
gripper of `robolearn.actionspace`, passed through the actor's own `SafetyFilter` (workspace
box, per-step limit, non-finite actions hold still) before they reach the arm. Reward is the
task's sparse success (1.0 or 0.0); an episode terminates at the first success and the
registered ids truncate after `robolearn.envs.MAX_EPISODE_STEPS` steps.

`reset(seed=k)` starts the same scene as the actor's episode with seed k.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from robolearn.actionspace import ActionScale
from robolearn.config import SafetyConfig
from robolearn.envs.spaces import image_space, proprio_space, state_space
from robolearn.errors import ConfigError
from robolearn.safety import SafetyFilter
from robolearn.sim import CAMERAS, PandaSim

log = logging.getLogger(__name__)

# Seeds drawn for unseeded resets stay in the range the actor's episode seeds use.
_SEED_HIGH = 2**31 - 1


def object_state(sim: PandaSim) -> np.ndarray:
    """The task's object positions concatenated in name order, float32 (the sim driver's
    `object_state` layout)."""
    positions = sim.object_positions()
    return np.concatenate([np.asarray(positions[k], dtype=np.float32).ravel()
                           for k in sorted(positions)])


class SimTaskEnv(gym.Env[dict[str, Any], np.ndarray]):
    """One robolearn sim task in this process.

    Args:
        task: a sim task name (`robolearn.sim.TASKS`), e.g. "pick_cube".
        render_mode: None or "rgb_array" (`render()` returns the front camera's image).
        image_size: (height, width) of every camera image and of `render()`, pixels (8..256).
        cameras: which cameras appear in observations; empty for proprio (+ state) only,
            which skips rendering entirely (fast, for state-based learning).
        observe_state: add the privileged `state` (object positions) to observations.
        control_hz: control rate; one step advances 1 / control_hz of physics.
        action_scale: physical size of a full-scale action (the actor's default if None).
        safety: the safety filter's limits (the actor's default if None).
        end_on_success: terminate at the first success (the actor's default); False keeps
            stepping (reward stays 1.0 while the task is solved).

    Raises:
        ConfigError: unknown task or camera, bad image size or render mode.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}  # noqa: RUF012

    def __init__(
        self,
        task: str,
        *,
        render_mode: str | None = None,
        image_size: tuple[int, int] = (84, 84),
        cameras: Sequence[str] = CAMERAS,
        observe_state: bool = False,
        control_hz: float = 10.0,
        action_scale: ActionScale | None = None,
        safety: SafetyConfig | None = None,
        end_on_success: bool = True,
    ) -> None:
        super().__init__()
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ConfigError(f"SimTaskEnv({task!r}): render_mode {render_mode!r} is not "
                              f"supported; use one of {self.metadata['render_modes']} or None")
        self.render_mode = render_mode
        self.metadata = {**self.metadata, "render_fps": control_hz}
        self.camera_names = tuple(cameras)
        self.observe_state = observe_state
        self.end_on_success = end_on_success
        self.scale = action_scale or ActionScale()
        self.safety_cfg = safety or SafetyConfig()
        # render() shows the front camera whichever cameras the observation uses.
        sim_cameras = tuple(dict.fromkeys((*self.camera_names, "front")))
        self.sim = PandaSim(task, image_size=image_size, cameras=sim_cameras,
                            scale=self.scale, control_hz=control_hz,
                            render=bool(self.camera_names) or render_mode is not None)
        self.safety = SafetyFilter(self.safety_cfg, self.scale)

        h, w = self.sim.image_size
        spaces: dict[str, gym.Space[Any]] = {name: image_space(h, w) for name in self.camera_names}
        spaces["proprio"] = proprio_space()
        if observe_state:
            spaces["state"] = state_space(object_state(self.sim).shape[0])
        self.observation_space = gym.spaces.Dict(spaces)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (self.scale.action_dim,), np.float32)

    @property
    def task(self) -> str:
        return self.sim.task

    @property
    def description(self) -> str:
        """The task's text, e.g. "pick up the red cube"."""
        return self.sim.description

    def _observe(self) -> dict[str, np.ndarray]:
        obs = {name: self.sim.render(name) for name in self.camera_names}
        obs["proprio"] = self.sim.proprio()
        if self.observe_state:
            obs["state"] = object_state(self.sim)
        return obs

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        super().reset(seed=seed)
        # A given seed places the objects as the sim driver does for that episode seed; an
        # unseeded reset draws one from the env's generator, so it is reproducible too.
        task_seed = seed if seed is not None else int(self.np_random.integers(_SEED_HIGH))
        self.sim.reset(seed=task_seed)
        # A fresh filter: the gripper it holds on a bad action is the open one of the reset.
        self.safety = SafetyFilter(self.safety_cfg, self.scale)
        success = self.sim.success()
        return self._observe(), {"description": self.description, "success": success,
                                 "task_seed": task_seed}

    def step(
        self, action: np.ndarray
    ) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        result = self.safety.filter(action, self.sim.ee_pos(), estop=False)
        assert result.command is not None  # only a latched e-stop withholds a command
        self.sim.apply_command(result.command)
        self.sim.advance(1.0 / self.sim.control_hz)
        success = self.sim.success()
        info = {"action": result.action, "filter_reasons": result.reasons, "success": success}
        return (self._observe(), 1.0 if success else 0.0, success and self.end_on_success,
                False, info)

    def render(self) -> np.ndarray | None:  # type: ignore[override]
        """The front camera's RGB image, uint8 [H, W, 3], when render_mode is "rgb_array"."""
        if self.render_mode is None:
            gym.logger.warn("SimTaskEnv.render() without a render_mode; pass "
                            "render_mode='rgb_array' to gym.make")
            return None
        return self.sim.render("front")

    def expert_action(self) -> np.ndarray:
        """The scripted expert's action for the current state (for demonstrations)."""
        return np.asarray(self.sim.expert_action(), dtype=np.float32)

    def close(self) -> None:
        self.sim.close()
