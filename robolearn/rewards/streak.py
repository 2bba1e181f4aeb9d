"""Success debouncing: an episode succeeds only after k consecutive positive verdicts.

A learned success detector misjudges single frames near the decision boundary (a cube
lifted almost high enough, an arm hiding the cube). One such frame ending an episode as a
success rewards the wrong behaviour and cuts the episode short; a real success lasts
(the task state stays achieved), so asking for k frames in a row removes isolated false
positives at the cost of k - 1 control periods of delay on true ones.

Example::

    streak = SuccessStreak(2)
    streak.start_episode()
    [streak.update(v) for v in (True, False, True, True)]   # [False, False, False, True]
"""

from __future__ import annotations

import logging

import numpy as np

from robolearn.errors import RewardModelError

log = logging.getLogger(__name__)


class SuccessStreak:
    """Counts consecutive positive verdicts within one episode.

    Args:
        frames: consecutive positives needed for success (1: every positive counts).

    Raises:
        RewardModelError: frames < 1.
    """

    def __init__(self, frames: int) -> None:
        if frames < 1:
            raise RewardModelError(f"SuccessStreak: frames must be >= 1, got {frames}")
        self.frames = frames
        self.run = 0

    def start_episode(self) -> None:
        """Forget the previous episode's streak."""
        self.run = 0

    def update(self, positive: bool) -> bool:
        """Record the next step's verdict; True once the last `frames` were all positive."""
        self.run = self.run + 1 if positive else 0
        return self.run >= self.frames

    def update_batch(self, positive: np.ndarray) -> np.ndarray:
        """[B] consecutive steps of this episode, in order -> [B] bool debounced success."""
        return np.array([self.update(bool(v)) for v in np.asarray(positive).reshape(-1)],
                        dtype=bool)
