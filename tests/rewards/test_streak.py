"""rewards.success_frames: a success needs k consecutive positive steps of one episode."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from robolearn.config.rewards import RewardsConfig
from robolearn.errors import RewardModelError
from robolearn.rewards.service import RewardService
from robolearn.rewards.streak import SuccessStreak


def test_streak_needs_consecutive_positives_and_restarts_each_episode() -> None:
    streak = SuccessStreak(3)
    verdicts = [True, True, False, True, True, True, True]
    assert [streak.update(v) for v in verdicts] == [False] * 5 + [True, True]
    streak.start_episode()
    assert not streak.update(True)  # the old run does not carry into a new episode
    assert SuccessStreak(1).update_batch(np.array([False, True])).tolist() == [False, True]
    with pytest.raises(RewardModelError, match="frames must be >= 1"):
        SuccessStreak(0)


def test_service_debounces_the_sparse_success_across_calls() -> None:
    service = RewardService(RewardsConfig(success_frames=2))
    frames = {"front": np.zeros((2, 8, 8, 3), np.uint8)}
    streak = service.new_streak()
    first = service.score(frames, "pick", sim_success=np.array([True, False]), streak=streak)
    second = service.score(frames, "pick", sim_success=np.array([True, True]), streak=streak)
    assert first.success.tolist() == [False, False]
    assert second.success.tolist() == [False, True]  # the streak spans the two calls
    assert second.reward.tolist() == [0.0, 1.0]
    # The raw per-step verdict is still logged with the step.
    assert second.values["sim_success"].tolist() == [1.0, 1.0]
    # Without a streak (offline scoring) every step is judged alone.
    alone = service.score(frames, "pick", sim_success=np.array([True, False]))
    assert alone.success.tolist() == [True, False]


def test_success_frames_config_is_validated() -> None:
    with pytest.raises(ValidationError, match="success_frames"):
        RewardsConfig(success_frames=0)
