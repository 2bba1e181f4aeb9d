"""Zero-shot CLIP reward (VLM-RM, Rocamonde et al. 2023) and its thresholded-softmax variant.

With unit-norm CLIP embeddings g (goal prompt), b (baseline prompt) and s (frame):

    R = 1 - 1/2 * |(s - g) P|^2,   P = alpha * d d^T / |d|^2 + (1 - alpha) * I,   d = g - b

alpha = 0 gives R = cos(s, g) (plain similarity); alpha = 1 keeps only the component of
s - g along the goal-baseline direction. The softmax variant scores the frame against goal
texts and baseline texts; its success probability is the softmax mass on the goal texts and
its reward is 1 when that mass reaches `threshold`.

Weights come from a local checkpoint only (`ClipModelConfig.checkpoint`).
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from robolearn.config.rewards import ClipRewardConfig
from robolearn.errors import RewardModelError
from robolearn.rewards.encoders import clip_input_size, clip_normalise, load_clip, resize, to_float

log = logging.getLogger(__name__)


def projection_matrix(goal: torch.Tensor, baseline: torch.Tensor, alpha: float) -> torch.Tensor:
    """P = alpha * d d^T / |d|^2 + (1 - alpha) * I with d = goal - baseline; [D, D]."""
    d = goal - baseline
    eye = torch.eye(goal.shape[-1], dtype=goal.dtype)
    norm = d.dot(d)
    if float(norm) == 0.0:
        raise RewardModelError("CLIP reward: goal and baseline prompts embed identically; "
                               "choose a baseline that differs from the goal")
    return alpha * torch.outer(d, d) / norm + (1 - alpha) * eye


def vlm_rm_reward(frames: torch.Tensor, goal: torch.Tensor, baseline: torch.Tensor,
                  alpha: float) -> torch.Tensor:
    """R = 1 - 1/2 |(s - g) P|^2 for unit-norm frame embeddings [B, D] -> [B]."""
    p = projection_matrix(goal, baseline, alpha)
    return 1.0 - 0.5 * ((frames - goal) @ p).square().sum(-1)


class ClipReward:
    """Scores frames with a local open_clip model.

    Args:
        cfg: prompts, alpha, variant.
        task_description: used as the goal prompt when cfg.goal is None.
        model, tokenizer: an already loaded open_clip model (tests build random ones);
            default: loaded from cfg.model.checkpoint.

    Raises:
        RewardModelError: no goal prompt, or the checkpoint is missing or corrupt.
    """

    def __init__(self, cfg: ClipRewardConfig, task_description: str | None = None, *,
                 model: torch.nn.Module | None = None, tokenizer: object | None = None) -> None:
        if model is None:
            model, tokenizer = load_clip(cfg.model)
        self.cfg = cfg
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.input_size = clip_input_size(model)
        goal = cfg.goal or task_description
        if not goal:
            raise RewardModelError("CLIP reward: no goal prompt; set rewards.clip.goal")
        self.goal_text = goal
        self.goal = self.embed_texts([goal])[0]  # [D]
        self.baseline = self.embed_texts([cfg.baseline])[0]
        self.projection = projection_matrix(self.goal, self.baseline, cfg.alpha)
        goals = [goal, *cfg.goal_texts]
        self.num_goal_texts = len(goals)
        self.texts = self.embed_texts([*goals, *cfg.baseline_texts])  # [G + N, D]

    @torch.inference_mode()
    def embed_texts(self, texts: list[str]) -> torch.Tensor:
        tokens = self.tokenizer(texts)
        return torch.nn.functional.normalize(self.model.encode_text(tokens).float(), dim=-1)

    @torch.inference_mode()
    def embed_frames(self, frames: np.ndarray) -> torch.Tensor:
        """uint8 [B, H, W, 3] -> unit-norm [B, D]."""
        images = clip_normalise(resize(to_float(frames), self.input_size))
        return torch.nn.functional.normalize(self.model.encode_image(images).float(), dim=-1)

    def projection_reward(self, embeddings: torch.Tensor) -> np.ndarray:
        return (1.0 - 0.5 * ((embeddings - self.goal) @ self.projection).square().sum(-1)).numpy()

    def goal_probability(self, embeddings: torch.Tensor) -> np.ndarray:
        """Softmax mass on the goal texts, [B]."""
        logits = embeddings @ self.texts.T / self.cfg.temperature  # [B, G + N]
        return logits.softmax(-1)[:, : self.num_goal_texts].sum(-1).numpy()

    def score(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(reward [B], success probability [B] or None for the projection variant)."""
        embeddings = self.embed_frames(frames)
        if self.cfg.variant == "softmax":
            prob = self.goal_probability(embeddings)
            return (prob >= self.cfg.threshold).astype(np.float32), prob
        return self.projection_reward(embeddings).astype(np.float32), None
