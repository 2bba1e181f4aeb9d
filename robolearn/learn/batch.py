"""What the replay buffers hand the agent, and how observations are shaped.

Shape letters (project-wide): B batch, V camera view, S frame stack, C channels, H, W image,
P proprioception/state dims, D action dims, K action-sequence length (CQN-AS).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # the actor imports ObsSpec; it must start without loading torch
    import numpy as np
    import torch


@dataclass(frozen=True)
class ObsSpec:
    """Observation layout the agent and the buffers agree on.

    Attributes:
        cameras: camera names in view order; empty for a state-only agent.
        image_hw: (H, W) of every camera image.
        frame_stack: S, frames concatenated along channels (RGB: C = 3·S).
        low_dim: P, length of one low-dimensional observation (proprio [+ object state
            + object offsets]).
        ee_offsets: how many object positions (3 each, at the start of the state) also enter
            as offsets from the end effector (object - ee); 0 for none. See
            `robolearn.learn.observation.low_dim_of`.
    """

    cameras: tuple[str, ...]
    image_hw: tuple[int, int]
    frame_stack: int
    low_dim: int
    ee_offsets: int = 0

    @property
    def pixels(self) -> bool:
        return bool(self.cameras)

    @property
    def rgb_shape(self) -> tuple[int, int, int, int]:
        """[V, 3·S, H, W] of one stacked observation."""
        return (len(self.cameras), 3 * self.frame_stack, *self.image_hw)

    @property
    def low_dim_shape(self) -> tuple[int]:
        """[S·P] of one stacked low-dimensional observation."""
        return (self.frame_stack * self.low_dim,)


class FrameEncoder(Protocol):
    """What the replay buffers and the actor's frame stack keep of a camera frame instead of
    its pixels: a frozen model's feature map (CQNConfig.encoder "pretrained";
    `robolearn.learn.cqn.pretrained.PretrainedFeatures`). Deterministic, so the actor and the
    learner, each encoding its own frames, agree.

    Attributes:
        frame_shape: (C, h, w) kept per camera frame; a stack of S frames is [S·C, h, w].
        dtype: the numpy dtype kept (uint8 quantised, or float16).
    """

    frame_shape: tuple[int, int, int]
    dtype: np.dtype

    def encode(self, frames: np.ndarray) -> np.ndarray:
        """uint8 [N, 3, H, W] frames -> [N, C, h, w] of `dtype`."""
        ...


@dataclass(frozen=True)
class Batch:
    """One training batch (online and demo samples concatenated; `is_demo` tells which).

    Attributes:
        rgb_obs: [B, V, 3·S, H, W] uint8 images; with a FrameEncoder, its features in
            their place, [B, V, S·C, h, w] of its dtype (uint8 or float16); None for a
            state-only agent.
        low_dim_obs: [B, S·P] float32.
        action: [B, D] float32 in [-1, 1]; CQN-AS: [B, K, D].
        reward: [B] float32, the n-step discounted reward sum.
        discount: [B] float32, the bootstrap factor γ^n, 0 where the episode terminated
            within the n steps (a success does not bootstrap).
        next_rgb_obs, next_low_dim_obs: the observation n steps later.
        is_demo: [B] bool, demonstration or intervention samples (demo losses apply).
    """

    rgb_obs: torch.Tensor | None
    low_dim_obs: torch.Tensor
    action: torch.Tensor
    reward: torch.Tensor
    discount: torch.Tensor
    next_rgb_obs: torch.Tensor | None
    next_low_dim_obs: torch.Tensor
    is_demo: torch.Tensor

    def to(self, device: torch.device | str, non_blocking: bool = True) -> Batch:
        def move(t: torch.Tensor) -> torch.Tensor:
            return t.to(device, non_blocking=non_blocking)

        return Batch(
            rgb_obs=None if self.rgb_obs is None else move(self.rgb_obs),
            low_dim_obs=move(self.low_dim_obs),
            action=move(self.action),
            reward=move(self.reward),
            discount=move(self.discount),
            next_rgb_obs=None if self.next_rgb_obs is None else move(self.next_rgb_obs),
            next_low_dim_obs=move(self.next_low_dim_obs),
            is_demo=move(self.is_demo),
        )

    @property
    def size(self) -> int:
        return int(self.reward.shape[0])
