"""The learner on CUDA computes what it computes on the CPU: one CQN update from the same
weights and batch, both critic layouts, bf16 under autocast, and the encoder's CPU kernels
against the ATen ops that stand in for them on a GPU.

Every test here needs a CUDA device and skips without one; `benchmarks/device_check.sh` runs
them on a GPU machine with the speed benchmarks.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from robolearn.config.cqn import CQNConfig
from robolearn.learn.batch import Batch, ObsSpec
from robolearn.learn.cqn import CQNAgent, kernels
from robolearn.learn.cqn.networks import RandomShift

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="needs a CUDA device (benchmarks/device_check.sh runs "
                                "these on a GPU machine)")

DEVICE = "cuda"
SPEC = ObsSpec(cameras=("front", "wrist"), image_hw=(84, 84), frame_stack=1, low_dim=8)


@pytest.fixture(autouse=True)
def exact_fp32():
    """TF32 matmuls would make CUDA differ from the CPU by far more than rounding."""
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def batch(size: int = 32, action_dim: int = 4) -> Batch:
    gen = torch.Generator().manual_seed(1)

    def rgb() -> torch.Tensor:
        return torch.randint(0, 256, (size, *SPEC.rgb_shape), dtype=torch.uint8, generator=gen)

    return Batch(rgb_obs=rgb(), low_dim_obs=torch.randn(size, 8, generator=gen),
                 action=torch.rand(size, action_dim, generator=gen) * 2 - 1,
                 reward=(torch.rand(size, generator=gen) < 0.3).float(),
                 discount=torch.full((size,), 0.99), next_rgb_obs=rgb(),
                 next_low_dim_obs=torch.randn(size, 8, generator=gen),
                 is_demo=torch.arange(size) >= size // 2)


def agent_pair(cfg: CQNConfig) -> tuple[CQNAgent, CQNAgent]:
    """The same agent on the CPU and on CUDA. Its heads get small random weights: the
    untrained critic is flat, and a flat critic's greedy pass picks random bins."""
    torch.manual_seed(0)
    cpu = CQNAgent(cfg, SPEC, 4, "cpu")
    with torch.no_grad():
        for module in cpu.critic.modules():
            if isinstance(module, nn.Linear) and not module.weight.abs().sum():  # the heads
                module.weight.normal_(0.0, 0.05)
        cpu.critic_target.load_state_dict(cpu.critic.state_dict())
    gpu = CQNAgent(cfg, SPEC, 4, DEVICE)
    gpu.load_state_dict(cpu.state_dict())
    return cpu, gpu


@pytest.mark.parametrize("streams", ["separate", "shared"])
def test_one_update_on_cuda_matches_the_cpu(streams: str) -> None:
    # No augmentation: the random shifts are drawn on each device's own generator.
    cfg = CQNConfig(frame_stack=1, random_shift_pad=0, critic_streams=streams,
                    hidden_dim=128, atoms=21)
    cpu, gpu = agent_pair(cfg)
    b = batch()
    m_cpu = cpu.update(b)
    m_gpu = gpu.update(b.to(DEVICE))
    for name in ("loss", "critic_loss"):
        if name in m_cpu:
            torch.testing.assert_close(m_gpu[name].cpu(), m_cpu[name], rtol=1e-3, atol=1e-5)
    after_gpu = gpu.state_dict()["networks"]
    for key, value in cpu.state_dict()["networks"].items():
        torch.testing.assert_close(after_gpu[key].cpu(), value, rtol=1e-3, atol=1e-4,
                                   msg=key)


def test_bf16_updates_on_cuda_stay_close_to_fp32() -> None:
    cfg = CQNConfig(frame_stack=1, random_shift_pad=0, hidden_dim=128, atoms=21)
    _, fp32 = agent_pair(cfg)
    _, bf16 = agent_pair(cfg.model_copy(update={"precision": "bf16"}))
    b = batch().to(DEVICE)
    for _ in range(3):
        m32, m16 = fp32.update(b), bf16.update(b)
        assert torch.isfinite(m16["loss"])
        assert abs(float(m16["loss"]) - float(m32["loss"])) <= 0.05 * abs(float(m32["loss"]))


@pytest.mark.parametrize("channels", [32, 64, 128, 256])
def test_layer_norm_silu_on_cuda_matches_the_cpu_kernel(channels: int) -> None:
    torch.manual_seed(channels)
    x = torch.randn(8, channels, 21, 21).to(memory_format=torch.channels_last)  # as the CNN
    weight, bias = torch.randn(channels), torch.randn(channels)
    on_cpu = kernels.channel_layer_norm_silu(x, weight, bias, 1e-5)  # the fused kernel
    on_gpu = kernels.channel_layer_norm_silu(x.to(DEVICE), weight.to(DEVICE),
                                             bias.to(DEVICE), 1e-5)
    torch.testing.assert_close(on_gpu.cpu(), on_cpu, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("channels", [3, 24])
def test_random_shift_on_cuda_matches_the_cpu_kernel(channels: int,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    pad, views, size = 4, 2, 16
    rgb = torch.randint(0, 256, (size, views, channels, 84, 84), dtype=torch.uint8)
    shift = torch.randint(-pad, pad + 1, (2, views, size))
    fixed = shift + pad  # what RandomShift's draw of randint(0, 2·pad + 1) would be
    monkeypatch.setattr(torch, "randint",
                        lambda *a, device=None, **k: fixed.to(device))
    aug = RandomShift(pad)
    on_cpu, on_gpu = aug(rgb), aug(rgb.to(DEVICE))
    assert torch.equal(on_gpu.cpu(), on_cpu)


def test_pixel_scaling_on_cuda_matches_the_cpu_kernel() -> None:
    pixels = torch.arange(256, dtype=torch.uint8).repeat(128).view(2, 4, 8, 8, 64)
    torch.testing.assert_close(kernels.pixels_to_float(pixels.to(DEVICE)).cpu(),
                               kernels.pixels_to_float(pixels), rtol=0, atol=0)
