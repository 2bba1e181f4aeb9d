"""CQN learner speed: seconds per `CQNAgent.update` on random uint8 data.

    python -m benchmarks.bench_cqn_update --quick

Shapes: "rlbench" is the reference RLBench setting (4 cameras × 84×84, frame stack 8,
batch 256 online + 256 demo, proprio 8, action dim 8); "small" is 2 cameras 84×84, frame
stack 1, batch 256, no demo batch. Anchors are the authors' reference agent measured on the
2-core CPU development machine (torch, 2 threads). Also reported: the update's FLOPs (torch's
counter), the throughput they imply, and a dense fp32 matmul's throughput on the same device
(the practical ceiling). Results are appended to benchmarks/results.jsonl.

Each shape is measured in a fresh process, as a learner trains one shape: measured after the
RLBench shape in the same process (its freed heap kept, see `keep_freed_memory`), the small
shape took 0.935 s per update against 0.869 s on its own.
"""

from __future__ import annotations

import argparse
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.results import append_result
from robolearn.learn.batch import Batch, ObsSpec
from robolearn.learn.config import CQNConfig
from robolearn.learn.cqn import CQNAgent, kernels
from robolearn.learn.cqn.cpu import keep_freed_memory


@dataclass(frozen=True)
class Shape:
    cameras: int
    image: int
    frame_stack: int
    batch: int
    demo_batch: int
    low_dim: int
    action_dim: int
    anchor_s: float  # reference agent, 2-core CPU, 2 threads


SHAPES = {
    "rlbench": Shape(4, 84, 8, 256, 256, 8, 8, anchor_s=28.6),
    "small": Shape(2, 84, 1, 256, 0, 8, 8, anchor_s=2.64),
}


def random_batch(spec: ObsSpec, size: int, demo: int, action_dim: int, device: str) -> Batch:
    def rgb() -> torch.Tensor:
        return torch.randint(0, 256, (size, *spec.rgb_shape), dtype=torch.uint8)

    low_dim = spec.low_dim_shape[0]
    return Batch(
        rgb_obs=rgb(),
        low_dim_obs=torch.randn(size, low_dim),
        action=torch.rand(size, action_dim) * 2 - 1,
        reward=(torch.rand(size) < 0.1).float(),
        discount=torch.full((size,), 0.99),
        next_rgb_obs=rgb(),
        next_low_dim_obs=torch.randn(size, low_dim),
        is_demo=torch.arange(size) >= size - demo,
    ).to(device)


def seconds_per_update(
    shape: Shape, updates: int, warmup: int, device: str, compile: bool, precision: str = "fp32"
) -> tuple[float, float]:
    """(seconds per update, GFLOP per update as counted by torch's FLOP counter)."""
    cfg = CQNConfig(
        frame_stack=shape.frame_stack, batch_size=shape.batch, demo_batch_size=shape.demo_batch,
        precision=precision,
    )
    names = tuple(f"cam{i}" for i in range(shape.cameras))
    spec = ObsSpec(names, (shape.image, shape.image), shape.frame_stack, shape.low_dim)
    agent = CQNAgent(cfg, spec, shape.action_dim, device=device, compile=compile)
    batch = random_batch(spec, shape.batch + shape.demo_batch, shape.demo_batch,
                         shape.action_dim, device)

    def sync() -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    for _ in range(warmup):
        agent.update(batch)
    with FlopCounterMode(display=False) as flops:
        agent.update(batch)
    sync()
    start = time.perf_counter()
    for _ in range(updates):
        metrics = agent.update(batch)
    sync()
    elapsed = (time.perf_counter() - start) / updates
    if not torch.isfinite(metrics["loss"]):
        raise RuntimeError(f"bench_cqn_update: non-finite loss {metrics['loss']}")
    return elapsed, flops.get_total_flops() / 1e9


def measure_in_fresh_process(
    name: str, updates: int, warmup: int, device: str, compile: bool, precision: str,
    threads: int, tuned_allocator: bool,
) -> tuple[float, float]:
    """`seconds_per_update` for SHAPES[name] in a new process with the same settings."""
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
        return pool.submit(_measure, name, updates, warmup, device, compile, precision,
                           threads, tuned_allocator).result()


def _measure(
    name: str, updates: int, warmup: int, device: str, compile: bool, precision: str,
    threads: int, tuned_allocator: bool,
) -> tuple[float, float]:
    if tuned_allocator:
        keep_freed_memory()
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    return seconds_per_update(SHAPES[name], updates, warmup, device, compile, precision)


def peak_gflops(device: str, n: int = 2048, reps: int = 10) -> float:
    """Dense fp32 matmul throughput: the practical ceiling an update could approach."""
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    for _ in range(2):
        a @ b
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return 2 * n**3 * reps / (time.perf_counter() - start) / 1e9


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 warm-up + 2 timed updates")
    parser.add_argument("--updates", type=int, default=None, help="timed updates (default 5)")
    parser.add_argument("--shapes", nargs="*", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--compile", action="store_true", help="torch.compile the encoder")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                        help="CQN network precision (the reference anchors are fp32)")
    parser.add_argument(
        "--default-allocator", action="store_true",
        help="skip keep_freed_memory() (glibc then page-faults large tensors in every update)",
    )
    args = parser.parse_args(argv)
    tuned_allocator = not args.default_allocator and keep_freed_memory()
    if args.threads:
        torch.set_num_threads(args.threads)
    updates = args.updates or (2 if args.quick else 5)
    warmup = 1 if args.quick else 2
    torch.manual_seed(0)

    metrics: dict[str, float] = {"matmul_peak_gflops": round(peak_gflops(args.device), 1)}
    for name in args.shapes:
        shape = SHAPES[name]
        s, gflop = measure_in_fresh_process(
            name, updates, warmup, args.device, args.compile, args.precision,
            torch.get_num_threads(), tuned_allocator)
        metrics[f"{name}_s_per_update"] = round(s, 4)
        metrics[f"{name}_gflop_per_update"] = round(gflop, 1)
        metrics[f"{name}_gflops_achieved"] = round(gflop / s, 1)
        if args.device == "cpu":  # the anchors are CPU numbers
            metrics[f"{name}_speedup_vs_reference"] = round(shape.anchor_s / s, 2)
    record = append_result(
        "cqn_update",
        metrics,
        device=args.device,
        threads=torch.get_num_threads(),
        updates=updates,
        warmup=warmup,
        quick=args.quick,
        compile=args.compile,
        precision=args.precision,
        keep_freed_memory=tuned_allocator,
        process_per_shape=True,
        # The compiled encoder kernels (ROBOLEARN_FUSED_KERNELS=0 measures without them).
        cpu_kernels=args.device == "cpu" and kernels.extension() is not None,
        torch=torch.__version__,
        shapes={n: SHAPES[n].__dict__ for n in args.shapes},
    )
    print(f"device {args.device}, {args.precision}, threads {torch.get_num_threads()}, "
          f"{updates} timed updates, "
          f"keep_freed_memory {tuned_allocator}, cpu kernels {record['context']['cpu_kernels']}")
    for key, value in metrics.items():
        print(f"{key:36s} {value:10.4f}")
    return record


if __name__ == "__main__":
    main()
