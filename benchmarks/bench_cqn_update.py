"""CQN learner speed: seconds per `CQNAgent.update` on random uint8 data.

    python -m benchmarks.bench_cqn_update --quick

Shapes: "rlbench" is the reference RLBench setting (4 cameras × 84×84, frame stack 8,
batch 256 online + 256 demo, proprio 8, action dim 8); "small" is 2 cameras 84×84, frame
stack 1, batch 256, no demo batch; "state" (opt-in, `--shapes state`) is bench_learning's
state-based agent (14 low-dim values, batch 256 + 256 demo, action dim 4). Anchors are the
authors' reference agent measured on the 2-core CPU development machine (torch, 2 threads;
none for "state"). `--critic-streams` picks the critic layout (learner.cqn.critic_streams:
the reference's separate value and advantage streams, or one shared trunk). Also reported:
the update's FLOPs (torch's counter), the throughput they imply, and a dense fp32 matmul's
throughput on the same device (the practical ceiling). Results are appended to
benchmarks/results.jsonl.

"pretrained" is the small shape's two cameras on frozen EfficientNet-Lite0 features
(CQNConfig.encoder "pretrained" at its defaults: 128 px, stride 16, uint8), batch 256 + 256;
"pretrained_h256" the same at hidden 256 and batch 128 + 128, sized for a 10 Hz robot. Their
batches hold random stored features, as the replay hands them. For these shapes also: the
fraction of the matmul ceiling reached, the frozen model's ms per camera frame (what the actor
pays per camera and step, and the learner per frame received), the bytes a camera frame takes
in the replay, and the replay slots that fit in 24 GiB with the features and with pixels.

Each shape is measured in a fresh process, as a learner trains one shape: measured after the
RLBench shape in the same process (its freed heap kept, see `keep_freed_memory`), the small
shape took 0.935 s per update against 0.869 s on its own.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Literal

import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.results import append_result
from robolearn.config.cqn import CQNConfig
from robolearn.learn.batch import Batch, ObsSpec
from robolearn.learn.cqn import CQNAgent, kernels
from robolearn.learn.cqn.cpu import keep_freed_memory
from robolearn.learn.cqn.pretrained import PretrainedFeatures
from robolearn.learn.replay import ReplayBuffer

REPLAY_BUDGET_BYTES = 24 * 2**30  # a learner host's memory for the replay, to size capacity


@dataclass(frozen=True)
class Shape:
    cameras: int
    image: int
    frame_stack: int
    batch: int
    demo_batch: int
    low_dim: int
    action_dim: int
    anchor_s: float | None  # reference agent, 2-core CPU, 2 threads
    encoder: Literal["scratch", "pretrained"] = "scratch"  # CQNConfig.encoder
    hidden: int = 512  # CQNConfig.hidden_dim


SHAPES = {
    "rlbench": Shape(4, 84, 8, 256, 256, 8, 8, anchor_s=28.6),
    "small": Shape(2, 84, 1, 256, 0, 8, 8, anchor_s=2.64),
    "pretrained": Shape(2, 84, 1, 256, 256, 8, 8, anchor_s=None, encoder="pretrained"),
    "pretrained_h256": Shape(2, 84, 1, 128, 128, 8, 8, anchor_s=None, encoder="pretrained",
                             hidden=256),
    "state": Shape(0, 0, 1, 256, 256, 14, 4, anchor_s=None),
}
DEFAULT_SHAPES = [name for name in SHAPES if name != "state"]  # "state" is opt-in


def random_batch(spec: ObsSpec, size: int, demo: int, action_dim: int, device: str,
                 frame_encoder: PretrainedFeatures | None = None) -> Batch:
    """Random uint8 images [B, V, 3·S, H, W]; with `frame_encoder`, random stored features
    [B, V, S·C, h, w] of its dtype in their place, as its replay would hand them."""
    rgb_shape = spec.rgb_shape
    if frame_encoder is not None:
        c, h, w = frame_encoder.frame_shape
        rgb_shape = (len(spec.cameras), spec.frame_stack * c, h, w)

    def rgb() -> torch.Tensor | None:
        if not spec.pixels:
            return None
        if frame_encoder is not None and frame_encoder.dtype.itemsize == 2:  # fp16
            return torch.randn(size, *rgb_shape).half()
        return torch.randint(0, 256, (size, *rgb_shape), dtype=torch.uint8)

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
    shape: Shape, updates: int, warmup: int, device: str, compile: bool, precision: str = "fp32",
    critic_streams: str = "separate",
) -> tuple[float, float]:
    """(seconds per update, GFLOP per update as counted by torch's FLOP counter)."""
    cfg = CQNConfig(
        frame_stack=shape.frame_stack, batch_size=shape.batch, demo_batch_size=shape.demo_batch,
        encoder=shape.encoder, hidden_dim=shape.hidden,
        precision=precision, critic_streams=critic_streams,  # type: ignore[arg-type]
    )
    names = tuple(f"cam{i}" for i in range(shape.cameras))
    spec = ObsSpec(names, (shape.image, shape.image), shape.frame_stack, shape.low_dim)
    agent = CQNAgent(cfg, spec, shape.action_dim, device=device, compile=compile)
    batch = random_batch(spec, shape.batch + shape.demo_batch, shape.demo_batch,
                         shape.action_dim, device, agent.frame_encoder)

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


def frame_costs(shape: Shape, frames: int = 40) -> dict[str, float]:
    """The pretrained path's per-frame numbers at `shape` (CQNConfig defaults otherwise):
    the frozen model's ms per camera frame (one frame per pass on one thread, as
    `PretrainedFeatures` runs it in the actor and in the learner), bytes per camera frame
    kept in the replay, and replay slots in 24 GiB with those features and with pixels."""
    cfg = CQNConfig(encoder="pretrained", frame_stack=shape.frame_stack)
    names = tuple(f"cam{i}" for i in range(shape.cameras))
    spec = ObsSpec(names, (shape.image, shape.image), shape.frame_stack, shape.low_dim)
    frozen = PretrainedFeatures(spec.image_hw, stride=cfg.pretrained_stride,
                                input_size=cfg.pretrained_input_size, dtype=cfg.feature_dtype)
    images = torch.randint(0, 256, (frames, 3, *spec.image_hw), dtype=torch.uint8).numpy()
    frozen.encode(images[:2])  # warm-up
    start = time.perf_counter()
    for i in range(frames):
        frozen.encode(images[i : i + 1])
    encode_ms = (time.perf_counter() - start) / frames * 1e3
    features = ReplayBuffer(spec, shape.action_dim, 2, frame_encoder=frozen).slot_nbytes()
    pixels = ReplayBuffer(spec, shape.action_dim, 2).slot_nbytes()
    channels, height, width = frozen.frame_shape
    return {
        "encode_ms_per_camera_frame": round(encode_ms, 2),
        "feature_channels": channels, "feature_h": height, "feature_w": width,
        "bytes_per_camera_frame": frozen.nbytes_per_frame(),
        "replay_bytes_per_slot": features,
        "replay_slots_in_24gib": REPLAY_BUDGET_BYTES // features,
        "pixel_replay_bytes_per_slot": pixels,
        "pixel_replay_slots_in_24gib": REPLAY_BUDGET_BYTES // pixels,
    }


def frame_costs_in_fresh_process(name: str) -> dict[str, float]:
    """`frame_costs` for SHAPES[name] in a new process (as each update shape is measured)."""
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
        return pool.submit(frame_costs, SHAPES[name]).result()


def measure_in_fresh_process(
    name: str, updates: int, warmup: int, device: str, compile: bool, precision: str,
    threads: int, tuned_allocator: bool, critic_streams: str = "separate",
) -> tuple[float, float]:
    """`seconds_per_update` for SHAPES[name] in a new process with the same settings."""
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
        return pool.submit(_measure, name, updates, warmup, device, compile, precision,
                           threads, tuned_allocator, critic_streams).result()


def _measure(
    name: str, updates: int, warmup: int, device: str, compile: bool, precision: str,
    threads: int, tuned_allocator: bool, critic_streams: str,
) -> tuple[float, float]:
    if tuned_allocator:
        keep_freed_memory()
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    return seconds_per_update(SHAPES[name], updates, warmup, device, compile, precision,
                              critic_streams)


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
    parser.add_argument("--shapes", nargs="*", default=DEFAULT_SHAPES, choices=list(SHAPES))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--compile", action="store_true", help="torch.compile the encoder")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                        help="CQN network precision (the reference anchors are fp32)")
    parser.add_argument("--critic-streams", choices=["separate", "shared"], default="separate",
                        help="critic layout (learner.cqn.critic_streams); the reference anchors "
                        "are 'separate'")
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

    # The machine is shared: its load says how far the timings below can be trusted.
    load_before = [round(x, 2) for x in os.getloadavg()]
    peak = peak_gflops(args.device)
    metrics: dict[str, float] = {"matmul_peak_gflops": round(peak, 1)}
    for name in args.shapes:
        shape = SHAPES[name]
        s, gflop = measure_in_fresh_process(
            name, updates, warmup, args.device, args.compile, args.precision,
            torch.get_num_threads(), tuned_allocator, args.critic_streams)
        metrics[f"{name}_s_per_update"] = round(s, 4)
        metrics[f"{name}_gflop_per_update"] = round(gflop, 1)
        metrics[f"{name}_gflops_achieved"] = round(gflop / s, 1)
        metrics[f"{name}_matmul_ceiling_fraction"] = round(gflop / s / peak, 3)
        if args.device == "cpu" and shape.anchor_s is not None:  # the anchors: CPU numbers
            metrics[f"{name}_speedup_vs_reference"] = round(shape.anchor_s / s, 2)
        if shape.encoder == "pretrained":
            metrics[f"{name}_updates_per_s"] = round(1 / s, 2)
            if args.device == "cpu":  # the frozen model's cost where the actor runs it
                metrics |= {f"{name}_{k}": v for k, v in frame_costs_in_fresh_process(name).items()}
    record = append_result(
        "cqn_update",
        metrics,
        load_avg_before=load_before,
        load_avg_after=[round(x, 2) for x in os.getloadavg()],
        device=args.device,
        threads=torch.get_num_threads(),
        updates=updates,
        warmup=warmup,
        quick=args.quick,
        compile=args.compile,
        precision=args.precision,
        critic_streams=args.critic_streams,
        keep_freed_memory=tuned_allocator,
        process_per_shape=True,
        # The compiled encoder kernels (ROBOLEARN_FUSED_KERNELS=0 measures without them).
        cpu_kernels=args.device == "cpu" and kernels.extension() is not None,
        torch=torch.__version__,
        shapes={n: SHAPES[n].__dict__ for n in args.shapes},
    )
    print(f"device {args.device}, {args.precision}, critic {args.critic_streams}, "
          f"threads {torch.get_num_threads()}, {updates} timed updates, "
          f"keep_freed_memory {tuned_allocator}, cpu kernels {record['context']['cpu_kernels']}")
    for key, value in metrics.items():
        print(f"{key:36s} {value:10.4f}")
    return record


if __name__ == "__main__":
    main()
