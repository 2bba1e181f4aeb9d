"""Replay sampling speed: ms per batch and samples/s at the RLBench and the small shape.

    python -m benchmarks.bench_replay --quick

RLBench shape: 4 cameras 84×84, frame stack 8, proprio 8, action 8, 256 online + 256 demo
rows per batch (DemoAndOnline), both buffers filled with synthetic 100-step episodes.
Small shape: 2 cameras 84×84, frame stack 1, 256 online rows. The batches are dropped
before the next sample (the learner's steady state, where the image windows are reused).
Results are appended to benchmarks/results.jsonl.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from benchmarks.results import append_result
from robolearn.learn.batch import ObsSpec
from robolearn.learn.replay import DemoAndOnline, ReplayBuffer

EPISODE_STEPS = 100


def _fill(buffer: ReplayBuffer, rng: np.random.Generator) -> float:
    """Fill the buffer with synthetic episodes; returns seconds per episode added."""
    spec, T = buffer.obs_spec, EPISODE_STEPS  # noqa: N806
    images = {
        c: rng.integers(0, 256, (T + 1, *spec.image_hw, 3), dtype=np.uint8) for c in spec.cameras
    }
    low_dim = rng.standard_normal((T + 1, spec.low_dim)).astype(np.float32)
    action = rng.uniform(-1, 1, (T, buffer.action_dim)).astype(np.float32)
    reward = np.zeros(T, np.float32)
    episodes = buffer.capacity // (T + 1)
    start = time.perf_counter()
    for i in range(episodes):
        buffer.add_episode(images, low_dim, action, reward, terminated=i % 2 == 0)
    return (time.perf_counter() - start) / episodes


def _time(sample, iterations: int) -> list[float]:
    sample()  # first call allocates the image windows
    times = []
    for _ in range(iterations):
        start = time.perf_counter()
        batch = sample()
        times.append(time.perf_counter() - start)
        del batch
    return times


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small buffers, few batches")
    parser.add_argument("--capacity", type=int, default=None, help="slots per buffer")
    parser.add_argument("--iterations", type=int, default=None, help="batches per shape")
    args = parser.parse_args(argv)
    capacity = args.capacity or (2_000 if args.quick else 20_000)
    iterations = args.iterations or (5 if args.quick else 30)
    rng = np.random.default_rng(0)
    metrics: dict[str, float] = {}

    rlbench = ObsSpec(cameras=("front", "wrist", "left_shoulder", "right_shoulder"),
                      image_hw=(84, 84), frame_stack=8, low_dim=8)
    online = ReplayBuffer(rlbench, 8, capacity, seed=0)
    demos = ReplayBuffer(rlbench, 8, capacity, seed=1, is_demo=True)
    metrics["rlbench_fill_ms_per_episode"] = round(1e3 * _fill(online, rng), 2)
    _fill(demos, rng)
    sampler = DemoAndOnline(online, demos, batch_size=256, demo_batch_size=256)
    times = _time(sampler.sample, iterations)
    metrics["rlbench_256+256_ms_median"] = round(1e3 * statistics.median(times), 1)
    metrics["rlbench_256+256_ms_p90"] = round(1e3 * sorted(times)[int(0.9 * len(times))], 1)
    metrics["rlbench_samples_per_s"] = round(512 / statistics.median(times))
    del online, demos, sampler

    small = ObsSpec(cameras=("front", "wrist"), image_hw=(84, 84), frame_stack=1, low_dim=8)
    buffer = ReplayBuffer(small, 8, capacity, seed=0)
    _fill(buffer, rng)
    times = _time(lambda: buffer.sample(256), iterations)
    metrics["small_256_ms_median"] = round(1e3 * statistics.median(times), 2)
    metrics["small_samples_per_s"] = round(256 / statistics.median(times))

    record = append_result(
        "replay",
        metrics,
        quick=args.quick,
        capacity=capacity,
        iterations=iterations,
        episode_steps=EPISODE_STEPS,
        torch_threads=torch.get_num_threads(),
    )
    for key, value in metrics.items():
        print(f"{key:35s} {value:10}")
    return record


if __name__ == "__main__":
    main()
