"""Coarse-to-fine discretisation: round trips, edges, nesting, precision."""

from __future__ import annotations

import pytest
import torch

from robolearn.learn.cqn import decode_action, encode_action, level_centres, zoom_in

LEVELS, BINS = 3, 5
FINEST = 2.0 / BINS**LEVELS


def test_encode_decode_encode_fixed_point() -> None:
    action = torch.rand(1000, 4) * 2 - 1
    bins = encode_action(action, LEVELS, BINS)
    assert bins.shape == (1000, LEVELS, 4) and bins.dtype == torch.long
    assert bins.min() >= 0 and bins.max() < BINS
    decoded = decode_action(bins, LEVELS, BINS)
    assert torch.equal(encode_action(decoded, LEVELS, BINS), bins)
    assert torch.equal(decode_action(encode_action(decoded, LEVELS, BINS), LEVELS, BINS), decoded)


def test_decode_within_half_a_finest_cell() -> None:
    action = torch.rand(5000, 3) * 2 - 1
    decoded = decode_action(encode_action(action, LEVELS, BINS), LEVELS, BINS)
    assert (decoded - action).abs().max() <= FINEST / 2 + 1e-6


@pytest.mark.parametrize(("value", "expected"), [(-1.0, 0), (1.0, BINS - 1)])
def test_edges_map_to_outermost_cells(value: float, expected: int) -> None:
    bins = encode_action(torch.tensor([[value, value]]), LEVELS, BINS)
    assert (bins == expected).all()
    decoded = decode_action(bins, LEVELS, BINS)
    assert torch.allclose(decoded, torch.full_like(decoded, value - (value > 0) * FINEST / 2
                                                   + (value < 0) * FINEST / 2))


def test_out_of_range_is_clipped_to_outer_cells() -> None:
    bins = encode_action(torch.tensor([[-3.0, 7.0]]), LEVELS, BINS)
    assert (bins[..., 0] == 0).all() and (bins[..., 1] == BINS - 1).all()


def test_zoom_intervals_nest() -> None:
    torch.manual_seed(0)
    low, high = torch.full((100, 2), -1.0), torch.full((100, 2), 1.0)
    for _ in range(LEVELS):
        idx = torch.randint(0, BINS, (100, 2))
        new_low, new_high = zoom_in(low, high, idx, BINS)
        assert (new_low >= low - 1e-7).all() and (new_high <= high + 1e-7).all()
        assert torch.allclose(new_high - new_low, (high - low) / BINS)
        low, high = new_low, new_high


def test_level_centres_are_zero_at_level_0_and_nest() -> None:
    action = torch.rand(200, 2) * 2 - 1
    bins = encode_action(action, LEVELS, BINS)
    centres = level_centres(bins, LEVELS, BINS)
    assert centres.shape == (200, LEVELS, 2)
    assert (centres[:, 0] == 0).all()
    # Level l's centre is within half a level-(l-1) cell of the action.
    for level in range(1, LEVELS):
        half_cell = 1.0 / BINS**level
        assert ((centres[:, level] - action).abs() <= half_cell + 1e-6).all()


def test_custom_bounds() -> None:
    low, high = torch.tensor([0.0, -2.0]), torch.tensor([1.0, 2.0])
    action = torch.rand(300, 2) * (high - low) + low
    bins = encode_action(action, LEVELS, BINS, low, high)
    decoded = decode_action(bins, LEVELS, BINS, low, high)
    assert ((decoded - action).abs() <= (high - low) / BINS**LEVELS / 2 + 1e-6).all()
