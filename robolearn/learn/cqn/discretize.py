"""Coarse-to-fine action grid (Seo et al. 2024, Sec. 3.1).

Each action dimension is discretised independently. Level 0 splits [low, high] into `bins`
equal intervals; each next level splits the chosen interval into `bins` again. After `levels`
levels an action is the centre of the finest interval (L=3, B=5: 125 cells per dimension).

All functions are pure, work on any leading shape, and share one interval-narrowing helper
(`_narrow`). Shape letters: L level, D action dimension.
"""

from __future__ import annotations

import logging

import torch

log = logging.getLogger(__name__)

Bound = float | torch.Tensor


def _narrow(
    low: torch.Tensor, high: torch.Tensor, bin_idx: torch.Tensor, bins: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The interval `bin_idx` of [low, high] split into `bins` equal parts."""
    width = (high - low) / bins
    new_low = low + width * bin_idx
    return new_low, new_low + width


def _initial_interval(
    like: torch.Tensor, low: Bound, high: Bound
) -> tuple[torch.Tensor, torch.Tensor]:
    """[low, high] as float tensors broadcast to `like`'s shape [..., D]."""
    dtype = like.dtype if like.is_floating_point() else torch.float32
    low_t = torch.as_tensor(low, dtype=dtype, device=like.device).expand(like.shape)
    high_t = torch.as_tensor(high, dtype=dtype, device=like.device).expand(like.shape)
    return low_t, high_t


def zoom_in(
    low: torch.Tensor, high: torch.Tensor, bin_idx: torch.Tensor, bins: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Zoom into the chosen bin of the current interval.

    Args:
        low, high: [..., D] the current interval per action dimension.
        bin_idx: [..., D] long, the chosen bin in [0, bins).
        bins: B, bins per level.

    Returns:
        (low, high) of the chosen bin, each [..., D].
    """
    return _narrow(low, high, bin_idx, bins)


def encode_action(
    action: torch.Tensor, levels: int, bins: int, low: Bound = -1.0, high: Bound = 1.0
) -> torch.Tensor:
    """Bin indices of a continuous action at every level.

    Values outside [low, high] go to the outermost bins; a value on a bin edge goes to the
    upper bin, except `high` itself, which goes to the last bin.

    Args:
        action: [..., D] float.
        levels: L. bins: B. low, high: action bounds (scalars or [D] tensors).

    Returns:
        [..., L, D] long bin indices in [0, bins).
    """
    cur_low, cur_high = _initial_interval(action, low, high)
    idxs = []
    for _ in range(levels):
        width = (cur_high - cur_low) / bins
        idx = torch.floor((action - cur_low) / width).clamp(0, bins - 1).long()  # [..., D]
        idxs.append(idx)
        cur_low, cur_high = _narrow(cur_low, cur_high, idx, bins)
    return torch.stack(idxs, dim=-2)  # [..., L, D]


def level_centres(
    bin_idx: torch.Tensor, levels: int, bins: int, low: Bound = -1.0, high: Bound = 1.0
) -> torch.Tensor:
    """The critic's per-level action input: the centre of the interval each level splits.

    Level l > 0 gets the centre of the interval chosen at level l-1; level 0 gets zeros (the
    paper's convention, independent of the bounds).

    Args:
        bin_idx: [..., L, D] long (only levels 0..L-2 are read).

    Returns:
        [..., L, D] float centres.
    """
    first = bin_idx[..., 0, :]
    cur_low, cur_high = _initial_interval(first.float(), low, high)
    centres = [torch.zeros_like(cur_low)]
    for level in range(levels - 1):
        cur_low, cur_high = _narrow(cur_low, cur_high, bin_idx[..., level, :], bins)
        centres.append((cur_low + cur_high) / 2)
    return torch.stack(centres, dim=-2)  # [..., L, D]


def decode_action(
    bin_idx: torch.Tensor, levels: int, bins: int, low: Bound = -1.0, high: Bound = 1.0
) -> torch.Tensor:
    """Continuous action for bin indices: the centre of the finest interval.

    Args:
        bin_idx: [..., L, D] long.

    Returns:
        [..., D] float.
    """
    cur_low, cur_high = _initial_interval(bin_idx[..., 0, :].float(), low, high)
    for level in range(levels):
        cur_low, cur_high = _narrow(cur_low, cur_high, bin_idx[..., level, :], bins)
    return (cur_low + cur_high) / 2


def snap_to_grid(
    action: torch.Tensor, levels: int, bins: int, low: Bound = -1.0, high: Bound = 1.0
) -> torch.Tensor:
    """The grid action nearest in the coarse-to-fine sense: decode(encode(action))."""
    return decode_action(encode_action(action, levels, bins, low, high), levels, bins, low, high)
