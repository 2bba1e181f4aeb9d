"""CQN-AS: action-sequence critic, sequence batches, temporal ensembling."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from robolearn.config.cqn import CQNConfig
from robolearn.learn.batch import Batch, ObsSpec
from robolearn.learn.cqn import C2FCritic, CQNAgent

STATE_SPEC = ObsSpec(cameras=(), image_hw=(0, 0), frame_stack=1, low_dim=2)
PIXEL_SPEC = ObsSpec(cameras=("front",), image_hw=(24, 24), frame_stack=1, low_dim=3)
SMALL = dict(feature_dim=16, hidden_dim=32)


def sequence_batch(spec: ObsSpec, size: int, seq: int, action_dim: int) -> Batch:
    g = torch.Generator().manual_seed(0)
    rgb = (lambda: torch.randint(0, 256, (size, *spec.rgb_shape), dtype=torch.uint8,
                                 generator=g)) if spec.pixels else (lambda: None)
    low = spec.low_dim_shape[0]
    return Batch(
        rgb_obs=rgb(), low_dim_obs=torch.randn(size, low, generator=g),
        action=torch.rand(size, seq, action_dim, generator=g) * 2 - 1,
        reward=(torch.rand(size, generator=g) < 0.5).float(), discount=torch.zeros(size),
        next_rgb_obs=rgb(), next_low_dim_obs=torch.randn(size, low, generator=g),
        is_demo=torch.arange(size) % 2 == 0,
    )


def test_critic_output_shape_and_flat_start() -> None:
    critic = C2FCritic(repr_dim=0, low_dim=5, action_dim=3, feature_dim=8, hidden_dim=16,
                       levels=2, bins=4, atoms=7, v_min=-1, v_max=1, action_sequence=4)
    feat = critic.obs_features(None, torch.randn(6, 5))
    logits = critic(feat, torch.zeros(6, 2, 12), torch.arange(2))
    assert logits.shape == (6, 2, 12, 4, 7)
    assert torch.all(logits == 0)  # zero-initialised heads
    assert critic.greedy_bins(feat).shape == (6, 2, 12)


def test_gru_makes_later_steps_depend_on_earlier_centres() -> None:
    torch.manual_seed(0)
    critic = C2FCritic(repr_dim=0, low_dim=2, action_dim=1, feature_dim=8, hidden_dim=16,
                       levels=2, bins=3, atoms=5, v_min=-1, v_max=1, action_sequence=3)
    for head in (critic.value_head, critic.advantage_head):
        torch.nn.init.normal_(head.weight)
    feat = critic.obs_features(None, torch.randn(1, 2))
    centres = torch.zeros(1, 1, 3)
    base = critic(feat, centres, torch.tensor([1]))
    centres[..., 0] = 0.5  # change step 0's input only
    moved = critic(feat, centres, torch.tensor([1]))
    assert not torch.allclose(base[:, :, 1:], moved[:, :, 1:])  # later steps see it (GRU)


@pytest.mark.parametrize("spec", [STATE_SPEC, PIXEL_SPEC], ids=["state", "pixels"])
def test_sequence_update_lowers_loss(spec: ObsSpec) -> None:
    torch.manual_seed(0)
    cfg = CQNConfig(frame_stack=1, action_sequence=3, lr=1e-3, **SMALL)
    agent = CQNAgent(cfg, spec, action_dim=2)
    batch = sequence_batch(spec, 16, 3, 2)
    losses = [float(agent.update(batch)["loss"]) for _ in range(40)]
    assert np.mean(losses[-5:]) < 0.85 * np.mean(losses[:5])
    with pytest.raises(ValueError, match="expected"):
        agent.update(Batch(**{**batch.__dict__, "action": batch.action[:, 0]}))


def test_learns_first_step_of_sequence_in_bandit() -> None:
    """One-step task (terminal): reward 1 iff the first action is in [0.2, 0.6)."""
    torch.manual_seed(0)
    cfg = CQNConfig(frame_stack=1, levels=2, bins=5, lr=1e-3, weight_decay=0.0, tau=0.1,
                    critic_lambda=1.0, bc_lambda=0.0, v_min=-0.5, v_max=1.5,
                    action_sequence=2, **SMALL)
    agent = CQNAgent(cfg, STATE_SPEC, action_dim=1)
    n = 256
    action = torch.rand(n, 2, 1) * 2 - 1
    reward = ((action[:, 0, 0] >= 0.2) & (action[:, 0, 0] < 0.6)).float()
    obs = torch.tensor([[1.0, 0.0]]).expand(n, 2)
    batch = Batch(rgb_obs=None, low_dim_obs=obs, action=action, reward=reward,
                  discount=torch.zeros(n), next_rgb_obs=None, next_low_dim_obs=obs,
                  is_demo=torch.zeros(n, dtype=torch.bool))
    for _ in range(300):
        agent.update(batch)
    agent.reset()
    first = agent.act(None, np.array([1.0, 0.0], np.float32), step=10**6, eval_mode=True)
    assert first.shape == (1,)
    assert 0.2 <= first[0] < 0.6, first


def test_temporal_ensemble_weights_newest_most_and_keeps_zeros() -> None:
    cfg = CQNConfig(frame_stack=1, action_sequence=3, temporal_ensemble_decay=1.0, **SMALL)
    agent = CQNAgent(cfg, STATE_SPEC, action_dim=1)
    agent.reset()
    # t=0: only one prediction -> its step 0.
    assert agent._temporal_ensemble(np.array([[0.0], [0.3], [0.6]], np.float32))[0] == 0.0
    # t=1: previous prediction says 0.3 for now (age 1), the new one says 0.9 (age 0).
    got = agent._temporal_ensemble(np.array([[0.9], [0.0], [0.0]], np.float32))[0]
    w0, w1 = 1.0, np.exp(-1.0)
    assert np.isclose(got, (w0 * 0.9 + w1 * 0.3) / (w0 + w1))
    # t=2: three predictions for now: 0.6 (age 2), 0.0 (age 1, kept although exactly 0), -0.5.
    got = agent._temporal_ensemble(np.array([[-0.5], [0.0], [0.0]], np.float32))[0]
    w = np.exp(-np.arange(3.0))
    assert np.isclose(got, (w[0] * -0.5 + w[1] * 0.0 + w[2] * 0.6) / w.sum(), atol=1e-6)
    agent.reset()
    assert agent._temporal_ensemble(np.array([[0.1], [0.2], [0.3]], np.float32))[0] == \
        np.float32(0.1)


def test_sequence_act_shape_and_range() -> None:
    cfg = CQNConfig(frame_stack=1, action_sequence=4, stddev=0.3, **SMALL)
    agent = CQNAgent(cfg, PIXEL_SPEC, action_dim=3)
    rgb = np.zeros(PIXEL_SPEC.rgb_shape, np.uint8)
    low = np.zeros(PIXEL_SPEC.low_dim_shape, np.float32)
    agent.reset()
    for step in range(6):
        action = agent.act(rgb, low, step=step, eval_mode=False)
        assert action.shape == (3,) and action.dtype == np.float32
        assert np.all(np.abs(action) <= 1.0)
