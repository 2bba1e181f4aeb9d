"""RewardService combines sources per config; the prefs/reward CLIs run end to end."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from robolearn.cli.main import main
from robolearn.config import load_config
from robolearn.config.rewards import ClassifierConfig, PreferenceConfig, RewardsConfig
from robolearn.errors import RewardModelError
from robolearn.rewards import records
from robolearn.rewards.classifier import FORMAT, ClassifierHead, SuccessClassifier
from robolearn.rewards.preference import PreferenceModel, RewardEnsemble
from robolearn.rewards.service import RewardService
from robolearn.sim.rollouts import record_rollout, rollout
from robolearn.store import Store


@pytest.fixture(scope="module")
def classifier() -> SuccessClassifier:
    cfg = ClassifierConfig(cameras=("front",))
    head = ClassifierHead(1, (1280, 2, 2), cfg)
    payload = {"kind": "classifier", "format": FORMAT, "config": cfg.model_dump(mode="json"),
               "cameras": ["front"], "encoder": "efficientnet_lite0", "input_size": 64,
               "feature_shape": [1280, 2, 2], "head": head.state_dict(), "threshold": 0.5,
               "report": {}}
    return SuccessClassifier(payload)


def preference_model() -> PreferenceModel:
    torch.manual_seed(0)
    cfg = PreferenceConfig(inputs=("proprio", "action"), ensemble=2, hidden=8)
    return PreferenceModel(cfg, RewardEnsemble(12, 2, 8))


def test_service_combines_sparse_and_shaping(classifier: SuccessClassifier) -> None:
    cfg = RewardsConfig(sparse="classifier", shaping=[{"source": "preference", "weight": 0.5}])
    service = RewardService(cfg, classifier=classifier, preference=preference_model())
    rng = np.random.default_rng(0)
    frames = {"front": rng.integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)}
    inputs = {"proprio": rng.normal(size=(3, 8)), "action": rng.normal(size=(3, 4))}
    out = service.score(frames, "pick up the cube", step_inputs=inputs,
                        sim_success=np.array([True, False, False]))
    prob = classifier.predict(frames)
    shaping = service.preference.rewards(
        np.concatenate([inputs["proprio"], inputs["action"]], 1).astype(np.float32))
    assert np.allclose(out.success_prob, prob)
    assert (out.success == (prob >= 0.5)).all()
    assert np.allclose(out.reward, (prob >= 0.5) + 0.5 * shaping, atol=1e-6)
    # The sim's ground truth is logged for evaluation but does not reach the reward.
    assert out.values["sim_success"].tolist() == [1.0, 0.0, 0.0]
    assert set(out.scalars(0)) == {"sim_success", "classifier_prob", "classifier",
                                   "preference", "success_prob"}
    with pytest.raises(RewardModelError, match="missing"):
        service.score(frames, "pick", step_inputs={"proprio": inputs["proprio"]})


def test_service_sim_success_and_missing_models(store: Store) -> None:
    service = RewardService(RewardsConfig())
    frames = {"front": np.zeros((2, 8, 8, 3), np.uint8)}
    out = service.score(frames, "reach", sim_success=np.array([False, True]))
    assert out.reward.tolist() == [0.0, 1.0] and out.success_prob is None
    with pytest.raises(RewardModelError, match="no sim_success"):
        service.score(frames, "reach")
    with pytest.raises(RewardModelError, match="no ready classifier model"):
        RewardService(RewardsConfig(sparse="classifier"), store=store)


def test_prefs_cli_simulate_train_and_list(write_config, capsys) -> None:
    path = write_config(rewards={"preference": {"segment_steps": 8, "steps": 40,
                                                "ensemble": 2, "hidden": 16}})
    cfg = load_config(path)
    with Store.open(cfg.data_dir) as store:
        run_id = store.create_run("cli", {})
        for seed in range(3):
            record_rollout(store, run_id, rollout("pick_cube", seed, "expert", 16, cameras=(),
                                          render=False))
    assert main(["prefs", "simulate", str(path), "--teacher", "mistake", "-n", "12"]) == 0
    assert main(["prefs", "train", str(path)]) == 0
    assert main(["reward", "list", str(path)]) == 0
    assert "preference  v1" in capsys.readouterr().out
    with Store.open(cfg.data_dir) as store:
        row = records.latest_ready(store, "preference", run_id)
        assert row is not None
        assert row.metrics["n_labels"] + row.metrics["n_holdout"] == 12
    # No classifier labels yet: a clear error and exit code 2, nothing registered.
    assert main(["reward", "train-classifier", str(path)]) == 2
