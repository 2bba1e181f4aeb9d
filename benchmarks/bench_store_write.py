"""Episode-writing hot path of the store: `add_step` per step and `finish` per episode.

Method: a fresh SQLite store in a temporary folder; each episode has two 84x84 cameras, a
7-d proprio, a 4-d action and three scalars per step, as the actor records them. `add_step`
runs in the control loop (validation plus a copy of every array), so it is timed per call;
`finish` (npz + one MP4 per camera, fsync, one transaction) is timed per episode, once with
the real encoders and once with no-op file writers to isolate the store's own work.

    python -m benchmarks.bench_store_write              # 30 episodes x 100 steps
    python -m benchmarks.bench_store_write --quick      # 6 episodes x 50 steps
    python -m benchmarks.bench_store_write --no-append  # print only (A/B runs)
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np

from benchmarks.results import append_result
from robolearn.store import Store

CAMERAS = ["front", "wrist"]


def _no_npz(file: BinaryIO, arrays: Mapping[str, np.ndarray]) -> None:
    file.write(b"")


def _no_video(path: Path, frames: Sequence[np.ndarray], fps: float) -> None:
    path.write_bytes(b"")


def _episodes(store: Store, episodes: int, steps: int, size: int,
              rng: np.random.Generator) -> tuple[list[float], list[float]]:
    run_id = store.create_run("bench_store_write", {})
    frames = [{c: rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for c in CAMERAS}
              for _ in range(8)]
    proprio = rng.normal(size=7).astype(np.float32)
    action = rng.uniform(-1, 1, size=4).astype(np.float32)
    add_us: list[float] = []
    finish_ms: list[float] = []
    for _ in range(episodes):
        writer = store.begin_episode(run_id, "reach", CAMERAS)
        for t in range(steps):
            start = time.perf_counter()
            writer.add_step(frames[t % len(frames)], proprio, action, 0.5, False,
                            stamp_ns=t, scalars={"success_prob": 0.1, "q_value": 1.0,
                                                 "latency_ms": 2.0})
            add_us.append((time.perf_counter() - start) * 1e6)
        start = time.perf_counter()
        writer.finish(frames[0], proprio, "timeout")
        finish_ms.append((time.perf_counter() - start) * 1e3)
    return add_us, finish_ms


def _summary(values: list[float]) -> dict[str, float]:
    array = np.asarray(values)
    return {"p50": float(np.percentile(array, 50)), "p99": float(np.percentile(array, 99)),
            "mean": float(array.mean())}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--episodes", type=int, default=30)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--size", type=int, default=84, help="image side in pixels")
    p.add_argument("--quick", action="store_true", help="6 episodes x 50 steps")
    p.add_argument("--no-append", action="store_true", help="print, do not append a result")
    args = p.parse_args()
    episodes, steps = (6, 50) if args.quick else (args.episodes, args.steps)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        with Store.open(Path(tmp) / "real") as store:
            add_us, finish_ms = _episodes(store, episodes, steps, args.size, rng)
        with Store.open(Path(tmp) / "noop", npz_writer=_no_npz,
                        video_writer=_no_video) as store:
            add_noop_us, finish_noop_ms = _episodes(store, episodes, steps, args.size, rng)
    metrics = {
        "add_step_us": _summary(add_us + add_noop_us),
        "finish_ms": _summary(finish_ms),
        "finish_no_files_ms": _summary(finish_noop_ms),
    }
    context = {"episodes": episodes, "steps": steps, "cameras": len(CAMERAS),
               "image_size": args.size}
    if args.no_append:
        print(json.dumps({"metrics": metrics, "context": context}))
    else:
        print(json.dumps(append_result("store_write", metrics, **context)))


if __name__ == "__main__":
    main()
