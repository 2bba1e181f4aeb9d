"""Sim speed: control steps per second, physics only and physics + rendering both cameras.

    python -m benchmarks.bench_sim --quick

One control step is 1/10 s of physics (50 substeps of 2 ms with the IK controller) driven by
the task's scripted expert; "render" adds one front and one wrist frame per step. Results
are appended to benchmarks/results.jsonl.
"""

from __future__ import annotations

import argparse
import time

from benchmarks.results import append_result
from robolearn.sim import TASKS, PandaSim


def _steps_per_s(sim: PandaSim, steps: int, render: bool) -> float:
    sim.reset(0)
    start = time.perf_counter()
    for i in range(steps):
        if i and i % 60 == 0:
            sim.reset(i)  # keep the expert busy (not idling at success)
        sim.step(sim.expert_action())
        if render:
            for camera in sim.camera_names:
                sim.render(camera)
    return steps / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few steps, two tasks (smoke run)")
    parser.add_argument("--steps", type=int, default=None, help="control steps per measurement")
    parser.add_argument("--tasks", nargs="*", default=None, choices=TASKS, help="tasks to measure")
    args = parser.parse_args(argv)
    steps = args.steps or (20 if args.quick else 150)
    tasks = args.tasks or (["reach", "pick_cube"] if args.quick else list(TASKS))
    metrics: dict[str, float] = {}
    for size in (84, 128):
        for task in tasks:
            sim = PandaSim(task, image_size=(size, size))
            metrics[f"{task}_physics_steps_per_s"] = round(
                _steps_per_s(sim, steps, render=False), 1
            )
            metrics[f"{task}_{size}px_render_steps_per_s"] = round(
                _steps_per_s(sim, steps, render=True), 1
            )
    record = append_result(
        "sim",
        metrics,
        steps=steps,
        quick=args.quick,
        control_hz=10.0,
        physics_dt_s=0.002,
        cameras=["front", "wrist"],
    )
    for key, value in metrics.items():
        print(f"{key:45s} {value:8.1f}")
    return record


if __name__ == "__main__":
    main()
