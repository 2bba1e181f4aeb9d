"""How a run's observations become the agent's: which cameras, which low-dim vector, and the
frame stack the actor keeps between steps."""

from __future__ import annotations

import dataclasses
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np

from robolearn.config import RunConfig
from robolearn.envs.spaces import DIRECTION_DIM, PROPRIO_DIM, STATE_DIMS
from robolearn.errors import ConfigError
from robolearn.learn.batch import FrameEncoder, ObsSpec


def obs_spec_for(cfg: RunConfig) -> ObsSpec:
    """The agent's observation layout for a run config."""
    cqn = cfg.learner.cqn
    if cfg.learner.observation == "state":
        return state_spec(cfg.robot.task, frame_stack=cqn.frame_stack,
                          directed=cfg.reset_free.enabled)
    sizes = {c.image_hw for c in cfg.cameras}
    if len(sizes) != 1:
        raise ValueError(f"CQN needs every camera at one size, got {sorted(sizes)}")
    return ObsSpec(cameras=tuple(c.name for c in cfg.cameras), image_hw=sizes.pop(),
                   frame_stack=cqn.frame_stack, low_dim=PROPRIO_DIM)


def state_spec(task: str, *, frame_stack: int = 1, directed: bool = False) -> ObsSpec:
    """A state-based agent's layout: proprio, the sim's object positions, the direction
    one-hot when `directed` (a reset-free run conditions its one policy on it), then each
    object's offset from the end effector."""
    objects = STATE_DIMS[task]
    extra = DIRECTION_DIM if directed else 0
    return ObsSpec(cameras=(), image_hw=(0, 0), frame_stack=frame_stack,
                   low_dim=PROPRIO_DIM + objects + extra + objects, ee_offsets=objects // 3)


def low_dim_of(spec: ObsSpec, proprio: np.ndarray, state: np.ndarray | None) -> np.ndarray:
    """The low-dim vector of one observation (works on [P] or [T, P] arrays).

    Pixels: the proprioception. States: proprio, the state, then each of the first
    `spec.ee_offsets` object positions minus the end effector's position (proprio[:3]).
    The offsets carry nothing the network could not compute, but a small MLP learns to act
    on them far sooner. Drawer open/close after two simulated hours, reset every episode
    (benchmarks/bench_reset_free.py, seed 0): greedy success 0.85 / 0.90 with them, 0.75 /
    0.65 without; without them the greedy policy hovered above the handle, never closing
    its sideways offset.
    """
    proprio = np.asarray(proprio, dtype=np.float32)
    if spec.pixels:
        return proprio
    if state is None:
        raise ValueError("a state-based agent needs the world state (actor.observe_state)")
    state = np.asarray(state, dtype=np.float32)
    k = spec.ee_offsets
    if state.shape[-1] < 3 * k:
        raise ValueError(f"the state has {state.shape[-1]} values, the agent expects at least "
                         f"{3 * k} ({k} object positions)")
    objects = state[..., :3 * k].reshape(*state.shape[:-1], k, 3)
    offsets = (objects - proprio[..., None, :3]).reshape(*state.shape[:-1], 3 * k)
    return np.concatenate([proprio, state, offsets], axis=-1)


def check_checkpoint_layout(checkpoint: dict[str, Any], spec: ObsSpec, path: Path) -> None:
    """Refuse a learner checkpoint written for another observation layout, before its
    weights are loaded (where it would fail as a bare tensor-shape mismatch).

    Raises:
        ConfigError: the checkpoint's layout differs from `spec`.
    """
    saved = checkpoint.get("obs_spec")
    if saved is None:
        return  # written by a bare agent (tests, benchmarks): the weights' shapes decide
    mine = dataclasses.asdict(spec)
    saved = {**saved, "cameras": tuple(saved.get("cameras", ())),
             "image_hw": tuple(saved.get("image_hw", ()))}
    if saved == mine:
        return
    differ = sorted(k for k in mine.keys() | saved.keys() if saved.get(k) != mine.get(k))
    hint = ("; it predates the object offsets in state observations: train anew from the "
            "stored episodes" if "ee_offsets" not in saved else "")
    raise ConfigError(
        f"{path.name}: written for another observation layout ({', '.join(differ)}: "
        f"checkpoint {[saved.get(k) for k in differ]}, this config "
        f"{[mine.get(k) for k in differ]}){hint}")


class FrameStacker:
    """The last S observations, concatenated as the agent expects: rgb [V, 3S, H, W] uint8 and
    low-dim [S·P]. At an episode's start the first observation fills the whole stack, as the
    replay buffer does at sample time.

    With a `frame_encoder` (CQNConfig.encoder "pretrained") each new frame is encoded once,
    as the learner's replay buffer encodes it, and the stack holds features
    [V, S·C, h, w] instead of pixels.
    """

    def __init__(self, spec: ObsSpec, frame_encoder: FrameEncoder | None = None) -> None:
        self.spec = spec
        self.frame_encoder = frame_encoder
        self._rgb: deque[np.ndarray] = deque(maxlen=spec.frame_stack)
        self._low: deque[np.ndarray] = deque(maxlen=spec.frame_stack)

    def reset(self) -> None:
        self._rgb.clear()
        self._low.clear()

    def push(self, obs: dict[str, np.ndarray]) -> tuple[np.ndarray | None, np.ndarray]:
        low = low_dim_of(self.spec, obs["proprio"], obs.get("state"))
        rgb = (np.stack([obs[c].transpose(2, 0, 1) for c in self.spec.cameras])  # [V, 3, H, W]
               if self.spec.pixels else None)
        if rgb is not None and self.frame_encoder is not None:
            rgb = self.frame_encoder.encode(rgb)  # [V, C, h, w]
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
