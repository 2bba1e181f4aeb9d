"""Stored episodes judged again by the run's learned success detector.

A run whose success comes from a learned detector (rewards.sparse: classifier or clip) is
what a real rig runs: the learner must not train on a reward or an episode end that anything
else decided. Episodes in the store may have been recorded before the detector existed (the
demonstrations an operator gave, scored then by the sim or by nobody) or under an older
version of it, so the learner judges every stored episode again, frame by frame, as the
actor would have live: the detector on each observation the actions led to, the success
streak of rewards.success_frames, and the episode ending at its first success.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np

from robolearn.config import RunConfig
from robolearn.config.rewards import LEARNED_SUCCESS
from robolearn.rewards.service import RewardService
from robolearn.store import EpisodeData, Store

log = logging.getLogger(__name__)

def judges_stored_episodes(cfg: RunConfig) -> bool:
    """Whether the run's success comes from a learned detector, so stored rewards and
    outcomes are never taken as they are."""
    return cfg.rewards.sparse in LEARNED_SUCCESS


@dataclasses.dataclass(frozen=True)
class Verdict:
    """An episode as the detector sees it.

    Attributes:
        reward: [steps] float32, the reward of each kept step (success and shaping).
        success: the detector's success streak completed (the last kept step).
        steps: how many of the episode's steps are kept: through the first success, or all.
    """

    reward: np.ndarray
    success: bool
    steps: int


class EpisodeJudge:
    """Scores a stored episode with the run's reward service, in batches of frames."""

    def __init__(self, cfg: RunConfig, store: Store, batch: int = 64) -> None:
        self.cfg = cfg
        self.service = RewardService.from_config(cfg, store)
        self.batch = batch

    def __call__(self, data: EpisodeData) -> Verdict:
        arrays = data.arrays
        steps = data.num_steps
        frames = {c: data.images(c)[1:] for c in data.record.cameras}  # what each action led to
        inputs = {"proprio": arrays["proprio"][1:], "action": arrays["action"]}
        if "state" in arrays:  # only a shaping source of the run's own config may read it
            inputs["state"] = arrays["state"][1:]
        streak = self.service.new_streak()
        rewards, success = [], np.zeros(0, bool)
        for start in range(0, steps, self.batch):
            part = slice(start, min(start + self.batch, steps))
            out = self.service.score({c: f[part] for c, f in frames.items()},
                                     data.record.task,
                                     step_inputs={k: v[part] for k, v in inputs.items()},
                                     streak=streak)
            rewards.append(out.reward)
            success = np.concatenate([success, out.success])
            if out.success.any():
                break
        reward = np.concatenate(rewards) if rewards else np.zeros(0, np.float32)
        hits = np.flatnonzero(success)
        kept = int(hits[0]) + 1 if hits.size else steps
        return Verdict(reward=reward[:kept].astype(np.float32), success=bool(hits.size),
                       steps=kept)


__all__ = ["EpisodeJudge", "Verdict", "judges_stored_episodes"]
