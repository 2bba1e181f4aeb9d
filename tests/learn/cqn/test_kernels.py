"""The compiled CPU kernels agree with the ATen ops they replace, forward and backward."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F  # noqa: N812

from robolearn.learn.batch import ObsSpec
from robolearn.learn.cqn import kernels
from robolearn.learn.cqn.networks import MultiViewEncoder, RandomShift


def reference(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    normed = F.layer_norm(x.permute(0, 2, 3, 1), weight.shape, weight, bias, 1e-5)
    return F.silu(normed).permute(0, 3, 1, 2)


def activation(channels: int, seed: int) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(3, channels, 7, 5, generator=g) * 3 + 1).to(
        memory_format=torch.channels_last)
    weight = torch.randn(channels, generator=g)
    bias = torch.randn(channels, generator=g)
    grad = torch.randn(x.shape, generator=g).to(memory_format=torch.channels_last)
    return x, weight, bias, grad


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("channels", [32, 64, 128, 256, 48])  # 48: no kernel, ATen fallback
def test_layer_norm_silu_matches_aten_forward_and_backward(
    cpu_path: str, channels: int, threads: int
) -> None:
    x, weight, bias, grad = activation(channels, seed=channels)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        inputs = [t.clone().requires_grad_() for t in (x, weight, bias)]
        out = kernels.channel_layer_norm_silu(*inputs, 1e-5)
        out.backward(grad)
    finally:
        torch.set_num_threads(before)
    expected_inputs = [t.clone().requires_grad_() for t in (x, weight, bias)]
    expected = reference(*expected_inputs)
    expected.backward(grad)
    assert out.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    for got, want in zip(inputs, expected_inputs, strict=True):
        torch.testing.assert_close(got.grad, want.grad, rtol=1e-4, atol=1e-4)


def test_without_grad_the_result_overwrites_the_input_and_is_the_same(cpu_path: str) -> None:
    x, weight, bias, _ = activation(32, seed=1)
    expected = reference(x, weight, bias)
    given = x.clone()
    with torch.no_grad():
        out = kernels.channel_layer_norm_silu(given, weight, bias, 1e-5)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    if cpu_path == "kernels":
        assert out.data_ptr() == given.data_ptr()  # no activation-sized allocation


def test_a_nan_pixel_stays_nan_and_leaves_the_other_pixels_alone(cpu_path: str) -> None:
    x, weight, bias, _ = activation(64, seed=2)
    x[1, 5, 3, 2] = float("nan")
    out = kernels.channel_layer_norm_silu(x, weight, bias, 1e-5)
    assert out[1, :, 3, 2].isnan().all()
    out[1, :, 3, 2] = 0.0
    assert out.isfinite().all()


@pytest.mark.parametrize("channels", [3, 24])  # one RGB frame; a stack of eight
def test_the_shift_kernel_draws_and_applies_the_same_shifts_as_the_aten_gathers(
    channels: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    rgb = torch.randint(0, 256, (9, 2, channels, 13, 11), dtype=torch.uint8)
    outs = []
    for switch in ("1", "0"):
        monkeypatch.setenv(kernels.ENV_SWITCH, switch)
        kernels.extension.cache_clear()
        torch.manual_seed(4)
        outs.append(RandomShift(4)(rgb))
    kernels.extension.cache_clear()
    assert torch.equal(outs[0], outs[1])


def test_pixels_are_scaled_to_obs_over_255_minus_half(cpu_path: str) -> None:
    pixels = torch.arange(256, dtype=torch.uint8).repeat(3, 7)  # every value, odd length
    scaled = kernels.pixels_to_float(pixels)
    assert scaled.dtype == torch.float32 and scaled.shape == pixels.shape
    torch.testing.assert_close(scaled, pixels.double() / 255.0 - 0.5, rtol=0, atol=6e-8,
                               check_dtype=False)


def test_the_encoder_gives_the_same_features_and_gradients_either_way(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec = ObsSpec(("front", "wrist"), (36, 36), 1, 4)
    torch.manual_seed(5)
    encoder = MultiViewEncoder(spec)
    views = torch.randint(0, 256, (2, 16, 36, 36, 3), dtype=torch.uint8)
    results = []
    for switch in ("1", "0"):
        monkeypatch.setenv(kernels.ENV_SWITCH, switch)
        kernels.extension.cache_clear()
        encoder.zero_grad()
        features = encoder(views)
        features.square().mean().backward()
        results.append((features.detach(), [p.grad.clone() for p in encoder.parameters()]))
    kernels.extension.cache_clear()
    (got, got_grads), (want, want_grads) = results
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    for g, w in zip(got_grads, want_grads, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-3, atol=1e-6)


def test_saved_encoders_keep_their_keys() -> None:
    # The layout conv, LayerNorm, SiLU per layer (SiLU without parameters) from before the
    # fused module; checkpoints written then must still load.
    encoder = MultiViewEncoder(ObsSpec(("front",), (36, 36), 1, 4))
    expected = {f"convs.0.{3 * i}.{p}" for i in range(4) for p in ("weight", "bias")}
    expected |= {f"convs.0.{3 * i + 1}.norm.{p}" for i in range(4) for p in ("weight", "bias")}
    assert set(encoder.state_dict()) == expected
