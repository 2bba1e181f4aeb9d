"""frame_mean: a diagnostic dense reward source with a configurable per-call delay.

Its value, a camera's mean brightness in [0, 1], is cheap and exactly reproducible from the
stored frame, so a test can check that a value reached the right step; the delay stands in
for a slow model (a CLIP ViT on the CPU) without occupying a core, so the worker path can
be exercised on a busy machine. It says nothing about the task.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from robolearn.config.rewards import FrameMeanConfig
from robolearn.errors import RewardModelError

log = logging.getLogger(__name__)


class FrameMean:
    """Args:
        cfg: the camera and the per-call delay.
    """

    def __init__(self, cfg: FrameMeanConfig) -> None:
        self.cfg = cfg

    def score(self, frames: dict[str, np.ndarray]) -> np.ndarray:
        """camera -> uint8 [B, H, W, 3]  ->  [B] float32 mean brightness of the camera.

        Raises:
            RewardModelError: the configured camera is not among the frames.
        """
        camera = self.cfg.camera or next(iter(frames))
        if camera not in frames:
            raise RewardModelError(f"frame_mean reward: no frames of camera {camera!r}; "
                                   f"got {sorted(frames)} (set rewards.frame_mean.camera)")
        if self.cfg.delay_ms:
            time.sleep(self.cfg.delay_ms / 1e3)
        batch = np.asarray(frames[camera])
        return (batch.reshape(batch.shape[0], -1).mean(axis=1) / 255.0).astype(np.float32)
