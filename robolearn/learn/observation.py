"""How a run's observations become the agent's: which cameras, which low-dim vector, and the
frame stack the actor keeps between steps."""

from __future__ import annotations

from collections import deque

import numpy as np

from robolearn.actor.env import PROPRIO_DIM, STATE_DIMS
from robolearn.actor.reset_free import DIRECTION_DIM
from robolearn.config import RunConfig
from robolearn.learn.batch import ObsSpec


def obs_spec_for(cfg: RunConfig) -> ObsSpec:
    """The agent's observation layout for a run config."""
    cqn = cfg.learner.cqn
    if cfg.learner.observation == "state":
        # Reset-free runs condition the one policy on its direction (a one-hot in the state).
        extra = DIRECTION_DIM if cfg.reset_free.enabled else 0
        return ObsSpec(cameras=(), image_hw=(0, 0), frame_stack=cqn.frame_stack,
                       low_dim=PROPRIO_DIM + STATE_DIMS[cfg.robot.task] + extra)
    sizes = {c.image_hw for c in cfg.cameras}
    if len(sizes) != 1:
        raise ValueError(f"CQN needs every camera at one size, got {sorted(sizes)}")
    return ObsSpec(cameras=tuple(c.name for c in cfg.cameras), image_hw=sizes.pop(),
                   frame_stack=cqn.frame_stack, low_dim=PROPRIO_DIM)


def low_dim_of(spec: ObsSpec, proprio: np.ndarray, state: np.ndarray | None) -> np.ndarray:
    """The low-dim vector of one observation (works on [P] or stacked [T, P] arrays)."""
    if spec.pixels:
        return np.asarray(proprio, dtype=np.float32)
    if state is None:
        raise ValueError("a state-based agent needs the world state (actor.observe_state)")
    return np.concatenate([proprio, state], axis=-1).astype(np.float32)


class FrameStacker:
    """The last S observations, concatenated as the agent expects: rgb [V, 3S, H, W] uint8 and
    low-dim [S·P]. At an episode's start the first observation fills the whole stack, as the
    replay buffer does at sample time."""

    def __init__(self, spec: ObsSpec) -> None:
        self.spec = spec
        self._rgb: deque[np.ndarray] = deque(maxlen=spec.frame_stack)
        self._low: deque[np.ndarray] = deque(maxlen=spec.frame_stack)

    def reset(self) -> None:
        self._rgb.clear()
        self._low.clear()

    def push(self, obs: dict[str, np.ndarray]) -> tuple[np.ndarray | None, np.ndarray]:
        low = low_dim_of(self.spec, obs["proprio"], obs.get("state"))
        rgb = (np.stack([obs[c].transpose(2, 0, 1) for c in self.spec.cameras])  # [V, 3, H, W]
               if self.spec.pixels else None)
        if not self._low:
            for _ in range(self.spec.frame_stack):
                self._low.append(low)
                if rgb is not None:
                    self._rgb.append(rgb)
        else:
            self._low.append(low)
            if rgb is not None:
                self._rgb.append(rgb)
        stacked_rgb = np.concatenate(list(self._rgb), axis=1) if rgb is not None else None
        return stacked_rgb, np.concatenate(list(self._low))
