"""C51 projection against a brute-force reference, and the demo losses."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from robolearn.learn.cqn import fosd_loss, margin_loss, project_c51_target


def brute_force_projection(
    reward: np.ndarray, discount: np.ndarray, probs: np.ndarray, support: np.ndarray
) -> np.ndarray:
    """Per-sample, per-atom loop (Bellemare et al. 2017, Algorithm 1)."""
    atoms = len(support)
    v_min, v_max = support[0], support[-1]
    dz = (v_max - v_min) / (atoms - 1)
    out = np.zeros_like(probs, dtype=np.float64)
    for i in range(probs.shape[0]):
        for k in np.ndindex(*probs.shape[1:-1]):
            for j in range(atoms):
                tz = min(max(reward[i] + discount[i] * support[j], v_min), v_max)
                b = (tz - v_min) / dz
                lo, up = int(np.floor(b)), int(np.ceil(b))
                p = probs[(i, *k, j)]
                if lo == up:
                    out[(i, *k, lo)] += p
                else:
                    out[(i, *k, lo)] += p * (up - b)
                    out[(i, *k, up)] += p * (b - lo)
    return out


@pytest.mark.parametrize("atoms", [2, 11, 51])
def test_projection_matches_brute_force(atoms: int) -> None:
    rng = np.random.default_rng(atoms)
    batch = 12
    support = np.linspace(-2.0, 2.0, atoms)
    # Includes discount 0, integer atom hits, and targets far outside [v_min, v_max].
    reward = rng.uniform(-5, 5, batch)
    reward[:3] = [0.0, 0.4, -3.0]
    discount = rng.uniform(0, 1, batch)
    discount[[0, 4, 5]] = 0.0
    discount[1] = 1.0
    probs = rng.dirichlet(np.ones(atoms), size=(batch, 2, 3))
    expected = brute_force_projection(reward, discount, probs, support)
    got = project_c51_target(
        torch.tensor(reward, dtype=torch.float64),
        torch.tensor(discount, dtype=torch.float64),
        torch.tensor(probs),
        torch.tensor(support),
    ).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-9)
    np.testing.assert_allclose(got.sum(-1), 1.0, atol=1e-9)


def test_discount_zero_ignores_next_distribution() -> None:
    support = torch.linspace(-2, 2, 51)
    reward, discount = torch.tensor([1.0, 1.0]), torch.zeros(2)
    a = project_c51_target(reward, discount, torch.softmax(torch.randn(2, 51), -1), support)
    b = project_c51_target(reward, discount, torch.softmax(torch.randn(2, 51), -1), support)
    assert torch.allclose(a, b)
    assert torch.allclose((a * support).sum(-1), reward)


def _demo_inputs(demo_leads: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """q_probs [B=2, L=1, D=1, bins=3, atoms=5]; demo bin 1 is one-hot on a high or low atom."""
    q_probs = torch.zeros(2, 1, 1, 3, 5)
    q_probs[..., :, 2] = 1.0  # every bin: all mass on atom 2 (Q = 0)
    q_probs[..., 1, :] = 0.0
    q_probs[..., 1, 4 if demo_leads else 0] = 1.0
    demo_bins = torch.ones(2, 1, 1, dtype=torch.long)
    return q_probs, demo_bins, torch.tensor([True, True])


def test_demo_losses_zero_when_demo_bin_leads_by_margin() -> None:
    support = torch.linspace(-2, 2, 5)
    q_probs, demo_bins, is_demo = _demo_inputs(demo_leads=True)
    qs = (q_probs * support).sum(-1)  # demo Q = 2, others 0
    assert fosd_loss(q_probs, demo_bins, is_demo) == 0
    assert margin_loss(qs, demo_bins, is_demo, margin=0.5) == 0
    assert margin_loss(qs, demo_bins, is_demo, margin=2.5) > 0  # lead smaller than margin


def test_demo_losses_positive_when_demo_bin_trails() -> None:
    support = torch.linspace(-2, 2, 5)
    q_probs, demo_bins, is_demo = _demo_inputs(demo_leads=False)
    qs = (q_probs * support).sum(-1)
    assert fosd_loss(q_probs, demo_bins, is_demo) > 0
    assert margin_loss(qs, demo_bins, is_demo, margin=0.01) > 0


def test_demo_losses_only_count_demo_samples() -> None:
    support = torch.linspace(-2, 2, 5)
    q_probs, demo_bins, _ = _demo_inputs(demo_leads=False)
    qs = (q_probs * support).sum(-1)
    none = torch.tensor([False, False])
    assert fosd_loss(q_probs, demo_bins, none) == 0
    assert margin_loss(qs, demo_bins, none, margin=0.01) == 0
    one = torch.tensor([True, False])
    both = torch.tensor([True, True])
    assert torch.isclose(fosd_loss(q_probs, demo_bins, one), fosd_loss(q_probs, demo_bins, both))
