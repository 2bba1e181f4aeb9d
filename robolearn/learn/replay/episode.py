"""One whole episode as a replay buffer keeps it: the typed argument of `append_episode`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ReplayEpisode:
    """A finished episode of T steps, its frames already in the buffer's stored form.

    Attributes:
        frames: [T+1, V, *frame_shape] what the buffer keeps per camera frame: uint8 pixels
            [3, H, W], or a FrameEncoder's features (`ReplayBuffer.encode_frames`).
        low_dim: [T+1, P] low-dimensional observations.
        action: [T, D] actions taken.
        reward: [T] rewards received.
        terminated: it ended in success (its last step does not bootstrap); otherwise it was
            truncated (timeout, abort) and its last step bootstraps from the final obs.
        intervention: [T] bool, steps under operator control; None: none were.
        episode_id: the store's id of the episode, when it has one.
    """

    frames: np.ndarray
    low_dim: np.ndarray
    action: np.ndarray
    reward: np.ndarray
    terminated: bool
    intervention: np.ndarray | None = None
    episode_id: int | None = None

    @property
    def num_steps(self) -> int:
        """T, the transitions of the episode."""
        return int(self.frames.shape[0]) - 1
