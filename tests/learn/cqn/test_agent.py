"""CQNAgent: acting, learning a tiny chain task, pixel updates, checkpoints, CUDA."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from robolearn.config.cqn import CQNConfig
from robolearn.learn.batch import Batch, ObsSpec
from robolearn.learn.cqn import CQNAgent, decode_action, encode_action

STATE_SPEC = ObsSpec(cameras=(), image_hw=(0, 0), frame_stack=1, low_dim=2)
PIXEL_SPEC = ObsSpec(cameras=("front", "wrist"), image_hw=(32, 32), frame_stack=2, low_dim=3)
SMALL = dict(feature_dim=16, hidden_dim=64)


def pixel_batch(size: int, action_dim: int, spec: ObsSpec = PIXEL_SPEC,
                device: str = "cpu") -> Batch:
    g = torch.Generator().manual_seed(1)

    def rgb() -> torch.Tensor:
        return torch.randint(0, 256, (size, *spec.rgb_shape), dtype=torch.uint8, generator=g)

    low_dim = spec.low_dim_shape[0]
    return Batch(
        rgb_obs=rgb(),
        low_dim_obs=torch.randn(size, low_dim, generator=g),
        action=torch.rand(size, action_dim, generator=g) * 2 - 1,
        reward=(torch.rand(size, generator=g) < 0.3).float(),
        discount=torch.full((size,), 0.99),
        next_rgb_obs=rgb(),
        next_low_dim_obs=torch.randn(size, low_dim, generator=g),
        is_demo=torch.arange(size) % 2 == 0,
    ).to(device)


def test_untrained_greedy_action_is_uniform_over_grid() -> None:
    torch.manual_seed(0)
    cfg = CQNConfig(frame_stack=1, **SMALL)
    agent = CQNAgent(cfg, STATE_SPEC, action_dim=1)
    obs = np.zeros(STATE_SPEC.low_dim_shape, np.float32)
    actions = np.stack([agent.act(None, obs, step=10, eval_mode=True) for _ in range(1500)])
    cells = encode_action(torch.from_numpy(actions), cfg.levels, cfg.bins)  # [N, L, 1]
    flat = (cells[:, 0, 0] * 25 + cells[:, 1, 0] * 5 + cells[:, 2, 0]).numpy()
    assert len(np.unique(flat)) >= 115  # of 125 (expected about 124 for uniform)
    counts = np.bincount(cells[:, 0, 0].numpy(), minlength=cfg.bins)
    assert counts.min() > 240 and counts.max() < 360  # 300 each if uniform


def test_act_shape_range_and_grid() -> None:
    cfg = CQNConfig(frame_stack=PIXEL_SPEC.frame_stack, num_expl_steps=5, stddev=0.2, **SMALL)
    agent = CQNAgent(cfg, PIXEL_SPEC, action_dim=4)
    rgb = np.random.default_rng(0).integers(0, 256, PIXEL_SPEC.rgb_shape, dtype=np.uint8)
    low = np.zeros(PIXEL_SPEC.low_dim_shape, np.float32)
    for step, eval_mode in [(0, False), (10, False), (10, True), (0, True)]:
        action = agent.act(rgb, low, step=step, eval_mode=eval_mode)
        assert action.shape == (4,) and action.dtype == np.float32
        assert np.all(np.abs(action) <= 1.0)
        t = torch.from_numpy(action)
        on_grid = decode_action(encode_action(t, cfg.levels, cfg.bins), cfg.levels, cfg.bins)
        assert torch.allclose(on_grid, t, atol=1e-6)


def test_terminal_target_ignores_next_state() -> None:
    torch.manual_seed(0)
    cfg = CQNConfig(frame_stack=PIXEL_SPEC.frame_stack, **SMALL)
    agent = CQNAgent(cfg, PIXEL_SPEC, action_dim=2)
    batch = pixel_batch(8, 2)
    for _ in range(3):  # make the critic non-trivial so the next state could matter
        agent.update(batch)
    terminal = Batch(**{**batch.__dict__, "discount": torch.zeros(8)})
    other_next = Batch(**{**terminal.__dict__,
                          "next_rgb_obs": 255 - terminal.next_rgb_obs,
                          "next_low_dim_obs": -5 * terminal.next_low_dim_obs})
    t1, t2 = agent.target_distribution(terminal), agent.target_distribution(other_next)
    assert torch.allclose(t1, t2, atol=1e-6)  # equal up to float summation order
    expected_q = batch.reward.view(-1, 1, 1).expand(8, cfg.levels, 2)
    assert torch.allclose((t1 * agent.critic.support).sum(-1), expected_q, atol=1e-5)
    bootstrapped = agent.target_distribution(batch)
    assert not torch.allclose(bootstrapped, t1)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_pixel_update_lowers_loss_on_fixed_batch(precision: str) -> None:
    torch.manual_seed(0)
    cfg = CQNConfig(frame_stack=PIXEL_SPEC.frame_stack, lr=1e-3, precision=precision, **SMALL)
    agent = CQNAgent(cfg, PIXEL_SPEC, action_dim=3)
    # Terminal transitions: the target is the reward itself (a bootstrapped target from the
    # flat untrained critic is nearly uniform over atoms, so its cross-entropy cannot fall).
    batch = Batch(**{**pixel_batch(16, 3).__dict__, "discount": torch.zeros(16)})
    losses = []
    for _ in range(40):
        metrics = agent.update(batch)
        assert all(isinstance(v, torch.Tensor) and not v.requires_grad for v in metrics.values())
        losses.append(float(metrics["loss"]))
    assert np.isfinite(losses).all()
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5])
    assert agent.num_updates == 40


def _chain_step(state: int, action: np.ndarray) -> tuple[float, float, int]:
    """(reward, discount, next_state). s0: action in [-1, -0.6) leads to s1, else the
    episode ends with 0. s1: action in [0.2, 0.6) earns 1, any action ends the episode."""
    a = float(action[0])
    if state == 0:
        return (0.0, 0.9, 1) if a < -0.6 else (0.0, 0.0, 0)
    return (1.0 if 0.2 <= a < 0.6 else 0.0), 0.0, 0


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_learns_tiny_chain_task(precision: str) -> None:
    """Two-state chain with a terminal reward: the s0 choice only pays through the bootstrap."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    cfg = CQNConfig(frame_stack=1, levels=2, bins=5, lr=1e-3, weight_decay=0.0, tau=0.1,
                    critic_lambda=1.0, bc_lambda=0.0, v_min=-0.5, v_max=1.5,
                    precision=precision, **SMALL)
    agent = CQNAgent(cfg, STATE_SPEC, action_dim=1)
    eye = np.eye(2, dtype=np.float32)
    n = 256
    states = rng.integers(0, 2, n)
    actions = rng.uniform(-1, 1, (n, 1)).astype(np.float32)
    steps = [_chain_step(int(s), a) for s, a in zip(states, actions, strict=True)]
    batch = Batch(
        rgb_obs=None,
        low_dim_obs=torch.from_numpy(eye[states]),
        action=torch.from_numpy(actions),
        reward=torch.tensor([r for r, _, _ in steps]),
        discount=torch.tensor([d for _, d, _ in steps]),
        next_rgb_obs=None,
        next_low_dim_obs=torch.from_numpy(eye[[s for _, _, s in steps]]),
        is_demo=torch.zeros(n, dtype=torch.bool),
    )
    for _ in range(400):
        agent.update(batch)
    a1 = agent.act(None, eye[1], step=10**6, eval_mode=True)
    a0 = agent.act(None, eye[0], step=10**6, eval_mode=True)
    assert 0.2 <= a1[0] < 0.6, a1
    assert a0[0] < -0.6, a0


def test_bf16_runs_the_networks_in_bf16_and_keeps_fp32_state() -> None:
    """bf16 changes the forward passes (the same weights give slightly different logits),
    while logits, targets, parameters and optimiser state stay fp32."""
    torch.manual_seed(0)
    cfgs = {p: CQNConfig(frame_stack=PIXEL_SPEC.frame_stack, precision=p, **SMALL)
            for p in ("fp32", "bf16")}
    fp32, bf16 = (CQNAgent(cfgs[p], PIXEL_SPEC, action_dim=2) for p in ("fp32", "bf16"))
    batch = pixel_batch(8, 2)
    fp32.update(batch)
    bf16.load_state_dict(fp32.state_dict())
    with torch.no_grad(), fp32._autocast():
        feats = fp32.critic.obs_features(*fp32._encode(fp32._views(batch.rgb_obs, False),
                                                        batch.low_dim_obs))
    with torch.no_grad(), bf16._autocast():
        feats16 = bf16.critic.obs_features(*bf16._encode(bf16._views(batch.rgb_obs, False),
                                                          batch.low_dim_obs))
    assert feats.dtype == torch.float32 and feats16.dtype == torch.bfloat16
    torch.testing.assert_close(feats16.float(), feats, atol=0.05, rtol=0.05)
    assert not torch.equal(feats16.float(), feats)
    assert bf16.target_distribution(batch).dtype == torch.float32
    metrics = bf16.update(batch)
    assert all(torch.isfinite(v).all() for v in metrics.values())
    assert all(p.dtype == torch.float32 for p in bf16.networks.parameters())
    assert all(t.dtype == torch.float32 for state in bf16.optimizer.state.values()
               for t in state.values() if t.is_floating_point())


def test_state_dict_round_trip_reproduces_greedy_actions() -> None:
    torch.manual_seed(0)
    cfg = CQNConfig(frame_stack=PIXEL_SPEC.frame_stack, lr=1e-3, **SMALL)
    agent = CQNAgent(cfg, PIXEL_SPEC, action_dim=3)
    batch = pixel_batch(8, 3)
    for _ in range(5):
        agent.update(batch)
    clone = CQNAgent(cfg, PIXEL_SPEC, action_dim=3)
    clone.load_state_dict(agent.state_dict())
    assert clone.num_updates == 5
    rgb = batch.rgb_obs[0].numpy()
    low = batch.low_dim_obs[0].numpy()
    for _ in range(3):
        torch.manual_seed(1)
        a = agent.act(rgb, low, step=100, eval_mode=True)
        torch.manual_seed(1)
        b = clone.act(rgb, low, step=100, eval_mode=True)
        np.testing.assert_array_equal(a, b)
    # Both continue identically (optimiser state included).
    torch.manual_seed(2)
    m1 = agent.update(batch)
    torch.manual_seed(2)
    m2 = clone.update(batch)
    assert torch.allclose(m1["loss"], m2["loss"])


def test_policy_state_dict_loads_into_fresh_agent() -> None:
    torch.manual_seed(0)
    cfg = CQNConfig(frame_stack=PIXEL_SPEC.frame_stack, lr=1e-3, **SMALL)
    learner = CQNAgent(cfg, PIXEL_SPEC, action_dim=3)
    batch = pixel_batch(8, 3)
    for _ in range(5):
        learner.update(batch)
    weights = learner.policy_state_dict()
    assert "critic_target" not in weights
    assert all(t.device.type == "cpu" for part in weights.values() for t in part.values())
    actor = CQNAgent(cfg, PIXEL_SPEC, action_dim=3)
    actor.load_policy_state_dict(weights)
    rgb, low = batch.rgb_obs[1].numpy(), batch.low_dim_obs[1].numpy()
    torch.manual_seed(3)
    a = learner.act(rgb, low, step=100, eval_mode=True)
    torch.manual_seed(3)
    b = actor.act(rgb, low, step=100, eval_mode=True)
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="expected parts"):
        CQNAgent(cfg, STATE_SPEC, action_dim=3).load_policy_state_dict(weights)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_update_and_act_on_cuda() -> None:
    cfg = CQNConfig(frame_stack=PIXEL_SPEC.frame_stack, **SMALL)
    agent = CQNAgent(cfg, PIXEL_SPEC, action_dim=3, device="cuda")
    batch = pixel_batch(16, 3, device="cuda")
    for _ in range(3):
        metrics = agent.update(batch)
    assert metrics["loss"].device.type == "cuda"
    assert torch.isfinite(metrics["loss"])
    action = agent.act(batch.rgb_obs[0].cpu().numpy(), batch.low_dim_obs[0].cpu().numpy(),
                       step=100, eval_mode=False)
    assert action.shape == (3,)
    weights = agent.policy_state_dict()
    assert all(t.device.type == "cpu" for part in weights.values() for t in part.values())


def test_repeated_updates_do_not_grow_process_memory() -> None:
    """Regression: a Polyak step outside no_grad chained every update's autograd graph into
    the target weights (1.2 GB over 100 updates here), which ran a long CPU run out of memory."""
    import psutil

    spec = ObsSpec(cameras=(), image_hw=(0, 0), frame_stack=1, low_dim=11)
    agent = CQNAgent(CQNConfig(frame_stack=1), spec, 4, "cpu")
    n = 512  # the reference batch (256 online + 256 demo): the leak showed at this size
    batch = Batch(None, torch.randn(n, 11), torch.rand(n, 4) * 2 - 1, torch.rand(n),
                  torch.full((n,), 0.99), None, torch.randn(n, 11), torch.arange(n) >= n // 2)
    for _ in range(20):  # allocator and caches settle
        agent.update(batch)
    before = psutil.Process().memory_info().rss
    for _ in range(100):
        agent.update(batch)
    grown_mb = (psutil.Process().memory_info().rss - before) / 2**20
    assert grown_mb < 200, f"RSS grew {grown_mb:.0f} MB over 100 updates"
