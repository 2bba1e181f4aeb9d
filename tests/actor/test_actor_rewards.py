"""The actor takes its reward and success from the configured reward models, not the sim."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from sqlalchemy import select

from robolearn.actor.loop import Actor
from robolearn.config import load_config
from robolearn.config.rewards import ClassifierConfig
from robolearn.errors import RewardModelError
from robolearn.rewards import records
from robolearn.rewards.classifier import FORMAT, ClassifierHead, SuccessClassifier
from robolearn.store import Store
from robolearn.store.models import Step
from tests.actor.conftest import run_actor


def save_classifier(path: Path, threshold: float) -> SuccessClassifier:
    """An untrained head over the real EfficientNet-Lite0 features: arbitrary but fixed
    probabilities, which is all this test needs to tell its verdicts from the sim's."""
    torch.manual_seed(0)
    cfg = ClassifierConfig(cameras=("front",))
    payload = {"kind": "classifier", "format": FORMAT, "config": cfg.model_dump(mode="json"),
               "cameras": ["front"], "encoder": "efficientnet_lite0", "input_size": 64,
               "feature_shape": [1280, 2, 2],
               "head": ClassifierHead(1, (1280, 2, 2), cfg).state_dict(),
               "threshold": threshold, "report": {}}
    records.save_atomic(payload, path)
    return SuccessClassifier.load(path)


def test_classifier_reward_replaces_the_sim_success(driver, tmp_path: Path) -> None:
    model = tmp_path / "classifier.pt"
    probe = save_classifier(model, 0.5)
    _, path = driver(
        actor={"episode_steps": 6, "end_on_success": False, "policy": {"kind": "random"}},
        rewards={"sparse": "classifier",
                 "classifier": {"cameras": ["front"], "model_path": str(model)}},
    )
    _, (data,) = run_actor(path, 1)
    # Each step is judged on the observation its action led to: images index t + 1.
    prob = probe.predict({"front": data.arrays["images_front"][1:]})
    verdict = prob >= probe.threshold
    np.testing.assert_array_equal(data.arrays["success"], verdict)
    np.testing.assert_allclose(data.arrays["reward"], verdict.astype(np.float32))
    cfg = load_config(path)
    with Store.open(cfg.data_dir) as store, store.session() as db:
        steps = db.scalars(select(Step).where(Step.episode_id == data.record.id)
                           .order_by(Step.index)).all()
    np.testing.assert_allclose([s.success_prob for s in steps], prob, atol=1e-4)
    # The sim's ground truth is kept beside it, for evaluation only.
    assert all(s.scalars["sim_success"] in (0.0, 1.0) for s in steps)
    assert all("classifier_prob" in s.scalars for s in steps)


def test_success_frames_debounce_the_classifier_in_every_episode(driver, tmp_path: Path,
                                                                  ) -> None:
    model = tmp_path / "classifier.pt"
    save_classifier(model, 0.0)  # every frame is judged a success
    _, path = driver(
        actor={"episode_steps": 6, "end_on_success": True, "policy": {"kind": "random"}},
        rewards={"sparse": "classifier", "success_frames": 2,
                 "classifier": {"cameras": ["front"], "model_path": str(model)}},
    )
    summary, stored = run_actor(path, 2)
    # One positive frame is not a success; the second in a row is, and ends the episode.
    # The streak starts afresh in the second episode.
    for result, data in zip(summary.episodes, stored, strict=True):
        assert (result.steps, result.outcome) == (2, "success")
        np.testing.assert_array_equal(data.arrays["success"], [False, True])
        np.testing.assert_allclose(data.arrays["reward"], [0.0, 1.0])


def test_missing_reward_model_is_an_error_before_the_actor_starts(driver, tmp_path: Path,
                                                                  ) -> None:
    _, path = driver(rewards={"sparse": "classifier"})
    cfg = load_config(path)
    with Store.open(cfg.data_dir) as store, pytest.raises(RewardModelError, match="train"):
        Actor(cfg, None, store=store)  # type: ignore[arg-type] - fails before any socket
