"""RandomShift: the DrQ augmentation equals replicate-pad + integer crop, per sample and view
(each test with the compiled CPU kernel and with the ATen gathers: the `cpu_path` fixture)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F  # noqa: N812

from robolearn.learn.cqn.networks import RandomShift

PAD = 4


def crops(image: torch.Tensor, pad: int) -> list[torch.Tensor]:
    """Every replicate-padded integer crop of one [C, H, W] image, laid out [H, W, C]."""
    _, height, width = image.shape
    padded = F.pad(image[None].float(), (pad,) * 4, mode="replicate")[0].to(image.dtype)
    return [padded[:, dy:dy + height, dx:dx + width].permute(1, 2, 0)
            for dy in range(2 * pad + 1) for dx in range(2 * pad + 1)]


# ATen: 3 channels take the separable gather; 6 (a stack of two frames) the element-wise one.
@pytest.mark.parametrize("channels", [3, 6])
def test_each_view_of_each_sample_is_one_replicate_padded_crop(
    cpu_path: str, channels: int
) -> None:
    g = torch.Generator().manual_seed(0)
    rgb = torch.randint(0, 256, (6, 2, channels, 12, 10), dtype=torch.uint8, generator=g)
    torch.manual_seed(0)
    out = RandomShift(PAD)(rgb)  # [V, B, H, W, C]
    assert out.shape == (2, 6, 12, 10, channels)
    assert out.dtype == torch.uint8 and out.is_contiguous()
    for b in range(6):
        for v in range(2):
            assert any(torch.equal(out[v, b], c) for c in crops(rgb[b, v], PAD)), (b, v)


@pytest.mark.parametrize("channels", [1, 6])
def test_shifts_are_drawn_per_sample_and_view_over_the_whole_range(
    cpu_path: str, channels: int
) -> None:
    # A single bright pixel at the centre: where it lands tells the shift that was drawn.
    rgb = torch.zeros(400, 2, channels, 21, 21, dtype=torch.uint8)
    rgb[:, :, :, 10, 10] = 255
    torch.manual_seed(1)
    out = RandomShift(PAD)(rgb)[..., 0]  # [V, B, H, W]
    where = out.flatten(2).argmax(-1)  # [V, B]
    rows, cols = where // 21 - 10, where % 21 - 10
    assert set(rows.unique().tolist()) == set(range(-PAD, PAD + 1))
    assert set(cols.unique().tolist()) == set(range(-PAD, PAD + 1))
    assert not torch.equal(where[0], where[1])  # views are shifted independently


def test_both_gathers_draw_the_same_shifts(cpu_path: str) -> None:
    g = torch.Generator().manual_seed(2)
    rgb = torch.randint(0, 256, (5, 3, 3, 9, 11), dtype=torch.uint8, generator=g)
    torch.manual_seed(3)
    separable = RandomShift(PAD)(rgb)
    torch.manual_seed(3)
    elementwise = RandomShift(PAD)(torch.cat([rgb, rgb], dim=2))  # 6 channels
    assert torch.equal(elementwise[..., :3], separable)


def test_without_augmentation_only_the_layout_changes(cpu_path: str) -> None:
    rgb = torch.randint(0, 256, (3, 2, 3, 8, 8), dtype=torch.uint8)
    expected = rgb.permute(1, 0, 3, 4, 2)
    assert torch.equal(RandomShift(PAD)(rgb, augment=False), expected)
    assert torch.equal(RandomShift(0)(rgb), expected)
