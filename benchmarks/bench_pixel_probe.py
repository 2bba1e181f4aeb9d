"""How well each pretrained-feature pooling localises the task's objects (`pixel_probe`).

A policy from pixels can only be as precise as its encoder says where things are. This
probe measures that without reinforcement learning's noise: frames of noisy-expert episodes
(the arm moving about, near and far from the goal) are encoded once by the frozen
EfficientNet-Lite0 the `pretrained` encoder uses; per variant the agent's own pooling
(`SpatialEmbeddingPooling` or `SpatialSoftmaxPooling`), the critic's rgb bottleneck (Linear,
LayerNorm, Tanh) and a small MLP on that plus the proprioception are trained to regress the
objects' positions, on the episodes of --train-scenes scenes, and scored on unseen scenes:
mean error in cm and the fraction of object-frames within reach's 3 cm. The object
positions are the sim's, used here only as the measuring instrument, never by a learner.

    python -m benchmarks.bench_pixel_probe --task reach \\
        --variants embeddings:16:front,wrist keypoints:8:front,wrist keypoints:8:front,wrist,side
    python -m benchmarks.bench_pixel_probe --quick
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np
import torch
from torch import nn

from benchmarks.results import append_result
from robolearn.learn.batch import ObsSpec
from robolearn.learn.cqn.pretrained import (
    PretrainedFeatures,
    SpatialEmbeddingPooling,
    SpatialSoftmaxPooling,
)
from robolearn.sim import SIM_CAMERAS, PandaSim

IMAGE = 84
TOLERANCE_M = 0.03  # reach's success radius


def parse_variant(text: str) -> tuple[str, int, tuple[str, ...]]:
    """'keypoints:8:front,wrist' -> (pooling, stride, cameras)."""
    try:
        pooling, stride, cameras = text.split(":")
        names = tuple(cameras.split(","))
        if pooling not in ("embeddings", "keypoints") or int(stride) not in (8, 16):
            raise ValueError
        if not names or any(c not in SIM_CAMERAS for c in names):
            raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"variant {text!r}: want POOLING:STRIDE:CAMERAS, POOLING embeddings|keypoints, "
            f"STRIDE 8|16, CAMERAS from {list(SIM_CAMERAS)} joined by commas") from None
    return pooling, int(stride), names


def collect(task: str, scenes: range, steps: int, seed: int) -> dict[str, np.ndarray]:
    """Noisy-expert episodes: every camera's frames, proprio, object positions, scene."""
    sim = PandaSim(task, image_size=(IMAGE, IMAGE), cameras=SIM_CAMERAS)
    rng = np.random.default_rng(seed)
    frames: dict[str, list[np.ndarray]] = {c: [] for c in SIM_CAMERAS}
    proprio, objects, scene_of = [], [], []
    for scene in scenes:
        sim.reset(seed=scene)
        noise = rng.uniform(0.0, 0.8)  # from expert-like to nearly random motion
        for _ in range(steps):
            action = sim.expert_action()
            sim.step(np.clip(action + rng.normal(0, noise, action.shape), -1, 1)
                     .astype(np.float32))
            for c in SIM_CAMERAS:
                frames[c].append(sim.render(c))
            proprio.append(sim.proprio())
            objects.append(np.concatenate(list(sim.object_positions().values())))
            scene_of.append(scene)
    sim.close()
    return {**{c: np.stack(f).transpose(0, 3, 1, 2) for c, f in frames.items()},
            "proprio": np.stack(proprio).astype(np.float32),
            "objects": np.stack(objects).astype(np.float32), "scene": np.array(scene_of)}


class Probe(nn.Module):
    """pooling -> rgb bottleneck (as the critic's) -> with proprio, an MLP -> positions."""

    def __init__(self, pooling: nn.Module, repr_dim: int, proprio: int, out: int,
                 feature_dim: int = 64, hidden: int = 256) -> None:
        super().__init__()
        self.pooling = pooling
        self.bottleneck = nn.Sequential(nn.Linear(repr_dim, feature_dim),
                                        nn.LayerNorm(feature_dim), nn.Tanh())
        self.head = nn.Sequential(nn.Linear(feature_dim + proprio, hidden), nn.ReLU(),
                                  nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, out))

    def forward(self, views: torch.Tensor, proprio: torch.Tensor) -> torch.Tensor:
        positions: torch.Tensor = self.head(
            torch.cat([self.bottleneck(self.pooling(views)), proprio], dim=-1))
        return positions


def probe(data: dict[str, np.ndarray], features: dict[str, torch.Tensor],
          frozen: PretrainedFeatures, pooling_kind: str, cameras: tuple[str, ...],
          test: np.ndarray, updates: int, seed: int) -> dict[str, Any]:
    torch.manual_seed(seed)
    spec = ObsSpec(cameras=cameras, image_hw=(IMAGE, IMAGE), frame_stack=1,
                   low_dim=data["proprio"].shape[1])
    pooling: SpatialEmbeddingPooling | SpatialSoftmaxPooling = (
        SpatialSoftmaxPooling(spec, frozen) if pooling_kind == "keypoints"
        else SpatialEmbeddingPooling(spec, frozen))
    views = torch.stack([features[c] for c in cameras])  # [V, N, h, w, C] stored
    proprio = torch.as_tensor(data["proprio"])
    target = torch.as_tensor(data["objects"])
    model = Probe(pooling, pooling.repr_dim, proprio.shape[1], target.shape[1])
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(seed)
    train_rows, test_rows = np.flatnonzero(~test), np.flatnonzero(test)
    started = time.perf_counter()
    for _ in range(updates):
        rows = torch.as_tensor(rng.choice(train_rows, 128))
        loss = (model(views[:, rows], proprio[rows]) - target[rows]).pow(2).sum(-1).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        rows = torch.as_tensor(test_rows)
        error = (model(views[:, rows], proprio[rows]) - target[rows]).reshape(
            len(rows), -1, 3).norm(dim=-1)  # [n, objects] m
    return {"mean_error_cm": round(float(error.mean()) * 100, 2),
            "median_error_cm": round(float(error.median()) * 100, 2),
            "within_3cm": round(float((error < TOLERANCE_M).float().mean()), 3),
            "train_s": round(time.perf_counter() - started, 1)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", default="reach")
    p.add_argument("--variants", nargs="+", type=parse_variant, default=[
        parse_variant(v) for v in ("embeddings:16:front,wrist", "keypoints:16:front,wrist",
                                   "embeddings:8:front,wrist", "keypoints:8:front,wrist",
                                   "keypoints:8:front,wrist,side")])
    p.add_argument("--train-scenes", type=int, default=64)
    p.add_argument("--test-scenes", type=int, default=16)
    p.add_argument("--steps", type=int, default=40, help="frames per episode")
    p.add_argument("--updates", type=int, default=3000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="tiny sizes; nothing is appended")
    args = p.parse_args(argv)
    if args.quick:
        args.train_scenes, args.test_scenes, args.steps, args.updates = 3, 2, 6, 5
    torch.set_num_threads(1)
    scenes = range(10_000, 10_000 + args.train_scenes + args.test_scenes)  # unused elsewhere
    data = collect(args.task, scenes, args.steps, args.seed)
    test = data["scene"] >= scenes.start + args.train_scenes
    results = {}
    for stride in sorted({s for _, s, _ in args.variants}):
        frozen = PretrainedFeatures((IMAGE, IMAGE), stride=stride)
        cameras = sorted({c for _, s, cams in args.variants if s == stride for c in cams})
        # Channels last, as the replay hands the pooling its maps.
        features = {c: torch.as_tensor(np.concatenate(
            [frozen.encode(data[c][i : i + 1]) for i in range(len(data[c]))])
        ).permute(0, 2, 3, 1).contiguous() for c in cameras}
        for pooling, s, cams in args.variants:
            if s != stride:
                continue
            name = f"{pooling}:{stride}:{','.join(cams)}"
            results[name] = probe(data, features, frozen, pooling, cams, test, args.updates,
                                  args.seed)
            print(name, json.dumps(results[name]), flush=True)
    metrics = {"task": args.task, "variants": results}
    context = {"train_scenes": args.train_scenes, "test_scenes": args.test_scenes,
               "frames_per_scene": args.steps, "updates": args.updates, "batch": 128,
               "image": IMAGE, "input_size": 128, "seed": args.seed}
    if args.quick:
        return {"benchmark": "pixel_probe", "metrics": metrics, "context": context}
    return append_result("pixel_probe", metrics, **context)


if __name__ == "__main__":
    main()
