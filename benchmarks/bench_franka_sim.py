"""Franka driver against the franka-sim protocol peer: connect time, state rate, 1 kHz loop
health and how much of the driver's own loop survives beside it.

    python -m benchmarks.bench_franka_sim

Needs `make franka-sim` (the server's venv and pylibfranka). Starts one server (holding the
same host lock as the tests), connects the FrankaArm driver, reads idle, then moves 2 cm
along +x while ticking the driver loop, and homes. Ratios are reported against the arm's own
clock (1 ms per state frame) so they mean the same on any machine; results are appended to
benchmarks/results.jsonl.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.results import append_result
from robolearn.config.hardware import FrankaRobotConfig
from robolearn.hardware.base import EeDeltaCommand
from robolearn.hardware.franka import FrankaArm
from tests.hardware.franka_sim_server import (
    HOST,
    FrankaSimServer,
    _HostLock,
    ensure_model,
    missing_reason,
)

PERIOD_S = 0.1


def _measure(idle_reads: int) -> dict[str, float]:
    cfg = FrankaRobotConfig(host=HOST, task="bench", realtime="ignore",
                            workspace_min_m=(0.35, -0.25, 0.45),
                            workspace_max_m=(0.75, 0.25, 0.85), home_xyz_m=(0.52, 0.0, 0.68),
                            max_speed_m_s=0.1)
    arm = FrankaArm(cfg, command_period_s=PERIOD_S)
    t0 = time.perf_counter()
    arm.connect()
    connect_s = time.perf_counter() - t0
    try:
        r0, w0 = arm.robot_time_s, time.perf_counter()
        for _ in range(idle_reads):
            arm.tick(time.monotonic_ns())
        idle_wall_s = time.perf_counter() - w0
        idle_robot_s = arm.robot_time_s - r0
        # Moving: the actor's 10 Hz commands, the driver loop ticking with 1 ms sleeps.
        start = arm.read().ee_pos_m
        ticks, w0, r0 = 0, time.perf_counter(), arm.robot_time_s
        while arm.read().ee_pos_m[0] - start[0] < 0.02:
            arm.command(EeDeltaCommand(np.array([0.05, 0.0, 0.0])))
            end = time.monotonic() + PERIOD_S
            while time.monotonic() < end:
                arm.tick(time.monotonic_ns())
                ticks += 1
                time.sleep(0.001)
        move_wall_s = time.perf_counter() - w0
        move_robot_s = arm.robot_time_s - r0
        success = arm.command_success_rate
        arm.stop()
        while arm.motion_active():
            time.sleep(0.01)
        arm.home()
        while arm.motion_active():
            arm.tick(time.monotonic_ns())
            time.sleep(0.001)
        arm.tick(time.monotonic_ns())
        home_err_m = float(np.max(np.abs(arm.read().ee_pos_m - np.array(cfg.home_xyz_m))))
        error = arm.read().error
    finally:
        arm.close()
    return {
        "connect_ms": connect_s * 1e3,
        "idle_state_hz": idle_reads / idle_wall_s,
        "idle_robot_s_per_wall_s": idle_robot_s / idle_wall_s,
        "moving_driver_ticks_hz": ticks / move_wall_s,
        "moving_robot_s_per_wall_s": move_robot_s / move_wall_s,
        "command_success_rate": success,
        "home_error_mm": home_err_m * 1e3,
        "reflex": float(bool(error)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idle-reads", type=int, default=1000)
    args = parser.parse_args()
    reason = missing_reason()
    if reason is not None:
        raise SystemExit(reason)
    lock = _HostLock()
    lock.acquire()
    server = FrankaSimServer(ensure_model(Path(tempfile.mkdtemp())),
                             ("--enforce-motion-limits",))
    try:
        server.start()
        metrics = _measure(args.idle_reads)
    finally:
        server.stop()
        lock.release()
    record = append_result("franka_sim", metrics, idle_reads=args.idle_reads)
    print(record)


if __name__ == "__main__":
    main()
