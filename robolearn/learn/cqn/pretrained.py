"""Pixels through a frozen pretrained model (CQNConfig.encoder "pretrained"), HIL-SERL's
recipe made to fit a CPU learner.

HIL-SERL (Luo et al. 2024) runs a frozen ImageNet ResNet-10 on every image and trains only a
"spatial learned embeddings" pooling and the heads on top. Here the frozen model is the
ImageNet EfficientNet-Lite0 the success classifier already loads (`rewards.encoders`), cut
at a spatial stage, and since it is frozen each camera frame is encoded ONCE: by the learner
when the frame enters the replay buffer, by the actor when it arrives. The replay keeps the
feature maps instead of the pixels, so an update costs the pooling and the critic only.

- `PretrainedFeatures` (both processes): uint8 frames [N, 3, H, W] -> feature maps
  [N, C, h, w], quantised to uint8 with a fixed per-channel affine map (or fp16). It is a
  `batch.FrameEncoder`: the replay buffers and the actor's `FrameStacker` call it.
- The agent's trainable encoder, shipped with the weights, pools each camera's map after a
  1×1 conv: `SpatialEmbeddingPooling` (HIL-SERL's learned spatial embeddings, K weight maps
  per channel, each summed over space) or `SpatialSoftmaxPooling` (a keypoint, the expected
  (x, y) under a softmax over space, per channel); the critic's rgb bottleneck (Linear +
  LayerNorm + Tanh) takes it from there.

The frozen model is never part of a checkpoint or a weights message: both sides build it
from the pip package, and being deterministic they compute the same features (to one
quantisation step where two machines round differently).
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator
from typing import Literal, cast

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from robolearn.learn.batch import ObsSpec
from robolearn.learn.cqn.networks import ChannelLayerNormSiLU, orthogonal_init
from robolearn.rewards.encoders import EfficientNetLite0, resize

log = logging.getLogger(__name__)

# Output stride -> EfficientNet-Lite0 blocks run. Stride 8 ends the 40-channel stage (5
# blocks), stride 16 the 112-channel one (11 of 16 blocks); the rest (stride 32, 320
# channels, and the 1280-channel head) would cost more and keep less of where things are.
STAGE_BLOCKS = {8: 5, 16: 11}
# uint8 quantisation range per channel: centre ± QUANT_HALF_WIDTH · spread, where centre
# and spread come from the stage's batch norms (see `PretrainedFeatures`). On simulated
# frames the features' std was 0.57 spread (median channel) and no value lay beyond 5.4
# spreads of the centre, so 6 clips nothing measured and the rounding error (at most half a
# step, 0.024 spread) stays near 4 % of a channel's std.
QUANT_HALF_WIDTH = 6.0
# Frames per forward pass on the CPU. One: a frame's features then never depend on what it
# was batched with (float sums in another order can move a value across a rounding step), so
# the actor (one frame per camera) and the learner (whole stored episodes) store the same
# bytes; and on the 2-core CPU larger batches were no faster per frame (cqn_update reports
# the encode time per camera frame).
CPU_FRAMES_PER_PASS = 1
GPU_FRAMES_PER_PASS = 64


@contextlib.contextmanager
def _one_thread(device: torch.device) -> Iterator[None]:
    """On the CPU, run the frozen model on one intra-op thread, whatever the process uses.

    The network is ~50 small ops per frame, each a parallel region whose threads meet at a
    barrier: on a shared 2-core machine under load, two threads made a frame tens of times
    slower than one. One thread is also what the actor uses, so the learner's features are
    the same bytes (on two threads a few values came out one quantisation step apart). The
    learner's update runs on its own threads again afterwards.
    """
    if device.type != "cpu" or torch.get_num_threads() == 1:
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class PretrainedFeatures:
    """Frozen ImageNet EfficientNet-Lite0 cut at stride 8 or 16: camera frames -> stored maps.

    Frames are resized to `input_size`² and run through the first blocks of the network
    (eval mode, no grad). With uint8 storage every channel c is mapped affinely onto 0..255
    over centre_c ± QUANT_HALF_WIDTH · spread_c; the stage's output is the sum of its blocks'
    final batch norms (γ·x̂ + β, the later blocks through their residual connections), so
    centre_c = Σ β_c and spread_c = Σ |γ_c| over those blocks: fixed numbers of the
    weights, the same in every process, needing no calibration images.

    Args:
        image_hw: (H, W) of the camera frames.
        stride: 8 or 16, where the network is cut.
        input_size: side of the square the frames are resized to, px.
        dtype: "uint8" (quantised) or "fp16" stored features.
        device: where the frozen network runs.

    Attributes:
        frame_shape: (C, h, w) stored per camera frame.
        dtype: numpy dtype stored.
        scale, offset: [C] float32, stored value q means features q·scale + offset (fp16:
            ones and zeros).
    """

    def __init__(
        self,
        image_hw: tuple[int, int],
        *,
        stride: Literal[8, 16] = 16,
        input_size: int = 128,
        dtype: Literal["uint8", "fp16"] = "uint8",
        device: torch.device | str = "cpu",
    ) -> None:
        if stride not in STAGE_BLOCKS:
            raise ValueError(f"PretrainedFeatures: stride must be one of {sorted(STAGE_BLOCKS)}, "
                             f"got {stride}")
        self.model = EfficientNetLite0(input_size, str(device))
        self.image_hw = tuple(image_hw)
        self.input_size = input_size
        self.blocks = STAGE_BLOCKS[stride]
        self.device = self.model.device
        self.frames_per_pass = (CPU_FRAMES_PER_PASS if self.device.type == "cpu"
                                else GPU_FRAMES_PER_PASS)
        self.dtype = np.dtype(np.uint8 if dtype == "uint8" else np.float16)
        centre, spread = self._stage_statistics()
        if self.dtype == np.uint8:
            self.scale = (2 * QUANT_HALF_WIDTH * spread / 255.0).float()  # [C]
            self.offset = (centre - QUANT_HALF_WIDTH * spread).float()  # [C]
        else:
            self.scale, self.offset = torch.ones_like(centre), torch.zeros_like(centre)
        dummy = np.zeros((1, 3, *self.image_hw), np.uint8)
        self.frame_shape: tuple[int, int, int] = tuple(self.encode(dummy).shape[1:])

    def _stage_statistics(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(Σ β, Σ |γ|) [C] of the final batch norms that add up to the stage's output."""
        beta = gamma = None
        for block in self.model.net._blocks[: self.blocks]:
            args = block._block_args
            # The package's own residual condition (a list-valued stride never skips).
            residual = (block.id_skip and args.stride == 1
                        and args.input_filters == args.output_filters)
            bn = block._bn2
            if residual and beta is not None:
                beta, gamma = beta + bn.bias, gamma + bn.weight.abs()
            else:
                beta, gamma = bn.bias.clone(), bn.weight.abs()
        assert beta is not None and gamma is not None
        return beta.detach().cpu(), gamma.detach().cpu()

    @torch.inference_mode()
    def features(self, frames: np.ndarray) -> torch.Tensor:
        """uint8 [N, 3, H, W] frames -> float [N, C, h, w], unquantised, on `device`."""
        # Contiguous NCHW: a channels-last input (e.g. stacked transposed HWC frames) would
        # keep its layout through to the convolutions, whose sums then round differently.
        images = torch.as_tensor(np.ascontiguousarray(frames)).to(self.device)
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1:] != (
                3, *self.image_hw):
            raise ValueError(
                f"PretrainedFeatures: frames must be uint8 [N, 3, {self.image_hw[0]}, "
                f"{self.image_hw[1]}], got {images.dtype} {tuple(images.shape)}")
        with _one_thread(self.device):
            return torch.cat([
                self.model.stage_features(resize(chunk.float().div_(255.0), self.input_size),
                                          self.blocks)  # [n, C, h, w] from [n, 3, S, S]
                for chunk in torch.split(images, self.frames_per_pass)])  # [N, C, h, w]

    @torch.inference_mode()
    def encode(self, frames: np.ndarray) -> np.ndarray:
        """uint8 [N, 3, H, W] frames -> stored features [N, C, h, w] of `dtype` (numpy)."""
        features = self.features(frames)  # [N, C, h, w]
        if self.dtype == np.float16:
            return features.half().cpu().numpy()
        scale = self.scale.to(features.device)[:, None, None]
        offset = self.offset.to(features.device)[:, None, None]
        q = features.sub_(offset).div_(scale).round_().clamp_(0, 255)
        return q.to(torch.uint8).cpu().numpy()

    def nbytes_per_frame(self) -> int:
        """Bytes stored per camera per frame."""
        return math.prod(self.frame_shape) * self.dtype.itemsize


class _FeaturePooling(nn.Module):
    """Per camera, a 1×1 conv of the dequantised stored features; subclasses pool its maps.

    Takes RandomShift's layout [V, B, h, w, S·C] (channels last, so the 1×1 conv is a Linear
    over the last axis). `scale` / `offset` are buffers outside the state dict: they belong
    to the frozen model, which both processes build themselves.
    """

    scale: torch.Tensor  # [S·C], buffer
    offset: torch.Tensor  # [S·C], buffer

    def __init__(self, obs_spec: ObsSpec, frozen: PretrainedFeatures, channels: int) -> None:
        super().__init__()
        if not obs_spec.pixels:
            raise ValueError(f"{type(self).__name__}: obs_spec.cameras is empty")
        self.views, stack = len(obs_spec.cameras), obs_spec.frame_stack
        c, self.h, self.w = frozen.frame_shape
        self.register_buffer("scale", frozen.scale.repeat(stack), persistent=False)  # [S·C]
        self.register_buffer("offset", frozen.offset.repeat(stack), persistent=False)
        self.convs = nn.ModuleList(nn.Linear(stack * c, channels) for _ in range(self.views))

    def _project(self, q: torch.Tensor, view: int) -> torch.Tensor:
        """[B, h, w, S·C] stored values of one camera -> [B, h, w, channels]."""
        conv = cast(nn.Linear, self.convs[view])  # ModuleList yields Module
        # W(q·scale + offset) + b with the dequantisation folded into the weights: no pass
        # over the maps for it.
        weight = conv.weight * self.scale  # [c, S·C]
        bias = conv.bias + conv.weight @ self.offset  # [c]
        return functional.linear(q.float(), weight, bias)  # [B, h, w, c]


class SpatialEmbeddingPooling(_FeaturePooling):
    """CQNConfig.pooling "embeddings": HIL-SERL's SpatialLearnedEmbeddings.

    Per camera: the 1×1 conv to `channels`, channel LayerNorm + SiLU, then `embeddings`
    learned weight maps per channel, each multiplied with the channel's map and summed over
    space -> [channels · embeddings]. Views are concatenated into [B, repr_dim]; the
    critic's rgb bottleneck (Linear + LayerNorm + Tanh) takes it from there.
    """

    def __init__(
        self,
        obs_spec: ObsSpec,
        frozen: PretrainedFeatures,
        channels: int = 32,
        embeddings: int = 8,
    ) -> None:
        super().__init__(obs_spec, frozen, channels)
        self.norms = nn.ModuleList(ChannelLayerNormSiLU(channels) for _ in range(self.views))
        self.apply(orthogonal_init)
        hw = self.h * self.w
        # A sum over h·w positions: weights of std 1/√(h·w) keep each embedding near unit scale.
        self.kernels = nn.Parameter(
            torch.randn(self.views, hw, channels, embeddings) / math.sqrt(hw))  # [V, hw, c, K]
        self.repr_dim = self.views * channels * embeddings

    def forward(self, views_bhwc: torch.Tensor) -> torch.Tensor:
        """Args: views_bhwc [V, B, h, w, S·C] stored features (uint8 or fp16).

        Returns: [B, repr_dim] float.
        """
        batch, h, w = views_bhwc.shape[1:4]
        pooled = []
        for v in range(self.views):
            y = self._project(views_bhwc[v], v)  # [B, h, w, c]
            y = self.norms[v](y.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)  # [B, h, w, c]
            spatial = torch.einsum("bpc,pck->bck", y.reshape(batch, h * w, -1),
                                   self.kernels[v])  # [B, c, K]
            pooled.append(spatial.flatten(1))  # [B, c·K]
        return torch.cat(pooled, dim=-1)  # [B, repr_dim]


class SpatialSoftmaxPooling(_FeaturePooling):
    """CQNConfig.pooling "keypoints": spatial soft-argmax (Levine et al. 2016's keypoints).

    Per camera: the 1×1 conv to `channels` maps, each normalised over the whole sample
    (h, w, channels: zero mean, unit variance), times a learned per-channel gain (how sharp
    its softmax is), softmax over the h·w positions, and the expected image coordinates
    (x, y) in [-1, 1] under it -> [2 · channels]. A keypoint moves smoothly with what it
    tracks, so the critic reads where a small object is as two numbers per map instead of
    a pattern it must learn for every place the object was seen.
    """

    grid: torch.Tensor  # [h·w, 2] (x, y), buffer

    def __init__(self, obs_spec: ObsSpec, frozen: PretrainedFeatures, channels: int = 32) -> None:
        super().__init__(obs_spec, frozen, channels)
        self.apply(orthogonal_init)
        self.gains = nn.Parameter(torch.ones(self.views, channels))  # [V, c]
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, self.h), torch.linspace(-1, 1, self.w),
                                indexing="ij")
        self.register_buffer("grid", torch.stack([xs.flatten(), ys.flatten()], dim=-1),
                             persistent=False)  # [hw, 2]
        self.repr_dim = self.views * channels * 2

    def forward(self, views_bhwc: torch.Tensor) -> torch.Tensor:
        """Args: views_bhwc [V, B, h, w, S·C] stored features (uint8 or fp16).

        Returns: [B, repr_dim] float: per camera and channel the keypoint's (x, y).
        """
        batch = views_bhwc.shape[1]
        pooled = []
        for v in range(self.views):
            y = self._project(views_bhwc[v], v).reshape(batch, -1)  # [B, h·w·c]
            y = functional.layer_norm(y, y.shape[-1:])  # over the whole sample
            logits = y.reshape(batch, self.h * self.w, -1) * self.gains[v]  # [B, hw, c]
            attention = torch.softmax(logits, dim=1)  # over positions
            keypoints = torch.einsum("bpc,pd->bcd", attention, self.grid)  # [B, c, 2]
            pooled.append(keypoints.flatten(1))  # [B, 2c]
        return torch.cat(pooled, dim=-1)  # [B, repr_dim]


__all__ = [
    "QUANT_HALF_WIDTH",
    "STAGE_BLOCKS",
    "PretrainedFeatures",
    "SpatialEmbeddingPooling",
    "SpatialSoftmaxPooling",
]
