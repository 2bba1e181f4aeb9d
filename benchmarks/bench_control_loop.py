"""Control-loop timing: period jitter and observation-to-command latency, p50/p99.

Starts the sim driver as its own process (arm + two cameras, as `robolearn up` does), runs
the actor in this process with a random policy and recording off, for N steps at each rate.

    python -m benchmarks.bench_control_loop            # 2,000 steps at 10 Hz and at 30 Hz
    python -m benchmarks.bench_control_loop --quick    # 300 steps each

Jitter is wake-up time minus the tick's deadline (drift-free schedule); latency is the time
from reading the newest observation to sending the command (policy + safety filter + send).
Floor (issue 2): p99 jitter <= 2 ms at 10 Hz on a 2-core machine.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
from pathlib import Path

import zmq

from benchmarks.results import append_result
from robolearn.actor.loop import Actor
from robolearn.config import parse_config
from robolearn.processes import ProcessGroup


def run_rate(rate_hz: float, steps: int, size: int, sock_dir: Path) -> dict[str, float]:
    cfg = parse_config({
        "name": f"bench_loop_{rate_hz:g}hz",
        "data_dir": str(sock_dir / "data"),
        "robot": {"task": "reach", "state_address": f"ipc://{sock_dir}/state",
                  "command_address": f"ipc://{sock_dir}/cmd",
                  "frames_address": f"ipc://{sock_dir}/frames",
                  "watchdog_ms": max(120.0, 1.5e3 / rate_hz)},
        "cameras": [{"kind": "sim", "name": n, "width": size, "height": size,
                     "fps": max(rate_hz, 10.0)} for n in ("front", "wrist")],
        "actor": {"control_hz": rate_hz, "episode_steps": steps, "record": False,
                  "end_on_success": False, "policy": {"kind": "random"},
                  "telemetry_address": f"ipc://{sock_dir}/telemetry",
                  "control_address": f"ipc://{sock_dir}/control"},
    })
    group = ProcessGroup(cfg, log_level="warning")
    ctx = zmq.Context()
    try:
        group.start_drivers()
        actor = Actor(cfg, ctx)
        try:
            summary = actor.run(threading.Event(), episodes=1)
        finally:
            actor.close()
    finally:
        ctx.term()
        group.stop()
    out = summary.timing_ms()
    out["steps"] = summary.steps
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=2000, help="steps per rate")
    p.add_argument("--rates", type=float, nargs="+", default=[10.0, 30.0], help="Hz")
    p.add_argument("--size", type=int, default=84, help="camera image size, px")
    p.add_argument("--quick", action="store_true", help="300 steps per rate")
    args = p.parse_args()
    steps = 300 if args.quick else args.steps
    metrics: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="rl-bench-") as tmp:
        for rate in args.rates:
            d = Path(tmp) / f"r{rate:g}"
            d.mkdir()
            metrics[f"{rate:g}hz"] = run_rate(rate, steps, args.size, d)
            print(f"{rate:g} Hz: {metrics[f'{rate:g}hz']}")
    floor_ok = metrics.get("10hz", {}).get("jitter_p99_ms", float("inf")) <= 2.0
    rec = append_result("control_loop", metrics, cameras=2, image_size=args.size,
                        steps_per_rate=steps, floor_p99_jitter_10hz_ms=2.0,
                        floor_met=floor_ok)
    print(rec)


if __name__ == "__main__":
    main()
