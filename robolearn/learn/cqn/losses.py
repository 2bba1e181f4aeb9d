"""CQN losses: C51 target projection and cross-entropy, and the two demonstration losses.

Shape letters: B batch, L level, D action dimension; `bins` per level, `atoms` on the support.
"""

from __future__ import annotations

import logging

import torch

log = logging.getLogger(__name__)


def project_c51_target(
    reward: torch.Tensor,
    discount: torch.Tensor,
    target_q_dist: torch.Tensor,
    support: torch.Tensor,
) -> torch.Tensor:
    """Categorical projection of r + discount·z onto the fixed support (Bellemare et al.
    2017, Algorithm 1; Rainbow).

    Each atom z_j of the next-state distribution moves to Tz_j = clamp(r + discount·z_j,
    v_min, v_max); its probability p_j is split between the two neighbouring atoms in
    proportion to closeness: m_l += p_j (u − b_j), m_u += p_j (b_j − l) with
    b_j = (Tz_j − v_min)/Δz, l = ⌊b_j⌋ (capped at atoms − 2), u = l + 1. Capping l keeps an
    exactly-on-atom b_j from losing its mass (the usual l == u special case).

    Args:
        reward: [B] n-step reward sums.
        discount: [B] bootstrap factors (γ^n, or 0 where the episode terminated: the target is
            then r alone, whatever the next-state distribution).
        target_q_dist: [B, ..., atoms] next-state probabilities.
        support: [atoms] evenly spaced atoms from v_min to v_max.

    Returns:
        [B, ..., atoms] projected target probabilities (no gradient flows from them).
    """
    atoms = support.shape[0]
    v_min, v_max = support[0], support[-1]
    delta_z = (v_max - v_min) / (atoms - 1)
    extra = (1,) * (target_q_dist.dim() - 1)
    r = reward.view(-1, *extra)  # [B, 1, ..., 1]
    g = discount.view(-1, *extra)
    tz = (r + g * support).clamp(v_min, v_max).expand_as(target_q_dist)  # [B, ..., atoms]
    b = (tz - v_min) / delta_z
    lower = b.floor().clamp(max=atoms - 2)
    upper_weight = b - lower
    lower_idx = lower.long()
    target = torch.zeros_like(target_q_dist)
    target.scatter_add_(-1, lower_idx, target_q_dist * (1 - upper_weight))
    target.scatter_add_(-1, lower_idx + 1, target_q_dist * upper_weight)
    return target


def c51_loss(q_logits_a: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy −Σ_j m_j log p_j(s, a) summed over atoms and averaged over batch,
    level and dimension (C51: Bellemare et al. 2017, Algorithm 1, last line; CQN applies it
    per level and dimension).

    Args:
        q_logits_a: [B, L, D, atoms] logits at the taken action's bins.
        target: [B, L, D, atoms] from `project_c51_target`.
    """
    return -(target * q_logits_a.log_softmax(dim=-1)).sum(-1).mean()


def _demo_mean(per_sample: torch.Tensor, is_demo: torch.Tensor) -> torch.Tensor:
    """Mean over demo samples; 0 when the batch has none (no host sync to check)."""
    mask = is_demo.to(per_sample.dtype)
    return (per_sample * mask).sum() / mask.sum().clamp(min=1.0)


def _other_bins(q: torch.Tensor, demo_bins: torch.Tensor) -> torch.Tensor:
    """1 for every bin except the demo's: [B, L, D] -> [B, L, D, bins]."""
    return 1.0 - torch.nn.functional.one_hot(demo_bins, q.shape[-1]).to(q.dtype)


def fosd_loss(
    q_probs: torch.Tensor, demo_bins: torch.Tensor, is_demo: torch.Tensor
) -> torch.Tensor:
    """First-order stochastic dominance loss (CQN paper, RLBench auxiliary objective):

        L_FOSD = E_demo [ mean_{l,d,a} Σ_j clamp(CDF_j(a_demo) − CDF_j(a), min=0) ]

    zero iff, at every level and dimension, the demo bin's return distribution
    stochastically dominates every other bin's (its CDF is nowhere above theirs).

    Args:
        q_probs: [B, L, D, bins, atoms] probabilities.
        demo_bins: [B, L, D] long, the demonstrated action's bins.
        is_demo: [B] bool, which samples the loss applies to.
    """
    cdf = q_probs.cumsum(dim=-1)  # [B, L, D, bins, atoms]
    idx = demo_bins[..., None, None].expand(*demo_bins.shape, 1, cdf.shape[-1])
    cdf_demo = cdf.gather(-2, idx)  # [B, L, D, 1, atoms]
    excess = (cdf_demo - cdf).clamp(min=0).sum(-1)  # [B, L, D, bins]; 0 at the demo bin
    return _demo_mean(excess.mean(dim=(-1, -2, -3)), is_demo)


def margin_loss(
    qs: torch.Tensor, demo_bins: torch.Tensor, is_demo: torch.Tensor, margin: float
) -> torch.Tensor:
    """Large-margin loss (DQfD, Hester et al. 2018, Sec. 3, J_E; CQN applies it per bin as a
    hinge against every other bin rather than only the max):

        L_margin = E_demo [ mean_{l,d,a≠a_demo} clamp(margin − (Q(a_demo) − Q(a)), min=0) ]

    The mean runs over all bins with the demo bin's own term set to zero, so the gradient
    equals the reference's (which keeps a constant `margin` term there) and the loss is
    exactly zero once the demo bin leads every other bin by `margin`.

    Args:
        qs: [B, L, D, bins] expected returns.
        demo_bins: [B, L, D] long. is_demo: [B] bool. margin: the required lead.
    """
    q_demo = qs.gather(-1, demo_bins.unsqueeze(-1))  # [B, L, D, 1]
    hinge = (margin - (q_demo - qs)).clamp(min=0) * _other_bins(qs, demo_bins)  # [B, L, D, bins]
    return _demo_mean(hinge.mean(dim=(-1, -2, -3)), is_demo)
