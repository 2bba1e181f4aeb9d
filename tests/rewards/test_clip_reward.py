"""VLM-RM CLIP reward with a randomly initialised tiny open_clip model (no weights can be
downloaded here), saved to a local checkpoint and loaded the way a real one is."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from robolearn.config.rewards import ClipModelConfig, ClipRewardConfig
from robolearn.errors import RewardModelError
from robolearn.rewards.clip_reward import ClipReward, projection_matrix, vlm_rm_reward
from robolearn.rewards.encoders import load_clip

TINY = "robolearn-test-tiny-clip"
TINY_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8,
                   "head_width": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2,
                 "layers": 2},
}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import open_clip

    folder = tmp_path_factory.mktemp("clip")
    (folder / f"{TINY}.json").write_text(json.dumps(TINY_CONFIG))
    open_clip.add_model_config(folder / f"{TINY}.json")
    torch.manual_seed(0)
    model = open_clip.create_model(TINY, pretrained=None)
    path = folder / "tiny.pt"
    torch.save(model.state_dict(), path)
    return path


def frames(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 40, 40, 3), dtype=np.uint8)


def make(checkpoint: Path, **cfg) -> ClipReward:
    config = ClipRewardConfig(model=ClipModelConfig(model_name=TINY, checkpoint=checkpoint),
                              **cfg)
    return ClipReward(config, "pick up the red cube")


def test_alpha_zero_ranks_like_cosine_similarity(checkpoint: Path) -> None:
    reward = make(checkpoint, alpha=0.0)
    batch = frames(12)
    rewards, prob = reward.score(batch)
    cosine = (reward.embed_frames(batch) @ reward.goal).numpy()
    assert prob is None
    assert np.allclose(rewards, cosine, atol=1e-5)  # 1 - |s-g|^2/2 = cos for unit vectors
    assert (np.argsort(rewards) == np.argsort(cosine)).all()


def test_alpha_one_depends_only_on_goal_minus_baseline_direction(checkpoint: Path) -> None:
    reward = make(checkpoint, alpha=1.0)
    g, b = reward.goal, reward.baseline
    d = (g - b) / (g - b).norm()
    s = reward.embed_frames(frames(8))
    # Moving a frame embedding orthogonally to d leaves the reward unchanged...
    noise = torch.randn_like(s)
    orthogonal = noise - (noise @ d)[:, None] * d
    base = vlm_rm_reward(s, g, b, 1.0)
    assert torch.allclose(vlm_rm_reward(s + orthogonal, g, b, 1.0), base, atol=1e-5)
    # ...moving it along d changes it, and the value is 1 - ((s - g)·d)^2 / 2.
    assert not torch.allclose(vlm_rm_reward(s + 0.3 * d, g, b, 1.0), base, atol=1e-3)
    assert torch.allclose(base, 1 - 0.5 * ((s - g) @ d) ** 2, atol=1e-5)
    assert np.allclose(reward.score(frames(8))[0], base.numpy(), atol=1e-5)
    p = projection_matrix(g, b, 1.0)
    assert torch.allclose(p @ p, p, atol=1e-5)  # a projection


def test_softmax_variant_thresholds_goal_probability(checkpoint: Path) -> None:
    reward = make(checkpoint, variant="softmax", goal_texts=("the cube is lifted",),
                  baseline_texts=("the cube is on the table", "an empty table"),
                  threshold=0.4, temperature=0.05)
    rewards, prob = reward.score(frames(10))
    assert prob is not None and ((prob >= 0) & (prob <= 1)).all()
    assert (rewards == (prob >= 0.4)).all()


def test_missing_checkpoint_is_the_documented_error(tmp_path: Path) -> None:
    documented = r"does not exist; download .* set rewards.clip.model.checkpoint"
    with pytest.raises(RewardModelError, match=documented):
        load_clip(ClipModelConfig(model_name="ViT-B-32", checkpoint=tmp_path / "nope.pt"))
    with pytest.raises(RewardModelError, match="no checkpoint configured"):
        load_clip(ClipModelConfig(model_name="ViT-B-32"))


def test_corrupt_checkpoint_is_a_clear_error(tmp_path: Path, checkpoint: Path) -> None:
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"this is not a checkpoint")
    with pytest.raises(RewardModelError, match="cannot be loaded"):
        load_clip(ClipModelConfig(model_name=TINY, checkpoint=bad))
    with pytest.raises(RewardModelError, match="cannot be loaded"):
        load_clip(ClipModelConfig(model_name="RN50", checkpoint=checkpoint))  # wrong architecture
