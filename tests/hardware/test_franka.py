"""Franka driver with a fake pylibfranka: the 1 kHz velocity loop, its ramp and finish,
gripper, reflex recovery and reconnect."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np
import pytest

from robolearn.config.hardware import FrankaRobotConfig
from robolearn.hardware.base import EeDeltaCommand
from robolearn.hardware.franka import FrankaArm
from tests.hardware.fakes import World, fake_franka_sdk

HOST = "172.16.0.2"


def make(world: World, **overrides: object) -> FrankaArm:
    cfg = FrankaRobotConfig(host=HOST, task="pick_cube", **overrides)  # type: ignore[arg-type]
    return FrankaArm(cfg, command_period_s=0.1, sdk=fake_franka_sdk(world), sleep=lambda s: None)


def wait_until(cond: Callable[[], bool], timeout_s: float = 3.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.005)


def test_connect_and_realtime_setting() -> None:
    world = World()
    with make(world, realtime="ignore"):
        assert world.calls[:2] == [("Robot", (HOST, "kIgnore"), {}), ("Gripper", (HOST,), {})]
    world = World()
    with make(world):
        assert world.calls[0] == ("Robot", (HOST, "kEnforce"), {})


def test_velocity_ramps_within_the_acceleration_limit_and_finishes_on_stop() -> None:
    world = World()
    with make(world, max_accel_m_s2=1.0, max_speed_m_s=0.2) as arm:
        arm.command(EeDeltaCommand(np.array([0.02, 0.0, 0.0])))
        assert world.last("start_cartesian_velocity_control")[0] == ("CartesianImpedance",)
        wait_until(lambda: len(world.writes) > 30)
        vx = np.array([w[0][0] for w in world.writes])
        assert np.all(np.diff(vx) <= 1.0 * 0.001 + 1e-12)  # never faster than the ramp
        assert np.all(vx <= 0.2 + 1e-12)
        arm.stop()
        wait_until(lambda: not arm.motion_active())
        last_v, finished = world.writes[-1]
        assert finished and last_v == [0.0] * 6
        assert world.names().count("start_cartesian_velocity_control") == 1


def test_gripper_grasps_and_opens_on_its_worker() -> None:
    world = World()
    with make(world, grasp_force_n=30.0, gripper_speed_m_s=0.05) as arm:
        arm.command(EeDeltaCommand(np.zeros(3), 0.0, 1.0))
        arm.wait_gripper()
        assert world.last("Gripper.grasp")[0] == (0.0, 0.05, 30.0, 0.005, 0.08)
        arm.command(EeDeltaCommand(np.zeros(3), 0.0, 0.0))
        arm.wait_gripper()
        assert world.last("Gripper.move")[0] == (0.08, 0.05)
        arm.stop()


def test_width_moves_while_a_blocking_gripper_call_runs() -> None:
    # libfranka's Gripper.move blocks until the fingers stop; a width frozen at its old value
    # meanwhile would read as "already still" to the reset-free let-go.
    def width(arm: FrankaArm) -> float:
        arm.tick(time.monotonic_ns())  # what the driver server's loop does every period
        return arm.read().gripper_width_m

    world = World()
    world.gripper_gate = threading.Event()
    with make(world, gripper_speed_m_s=0.1) as arm:
        arm.command(EeDeltaCommand(np.zeros(3), 0.0, 1.0))  # grasp (not gated): width 0.03
        arm.wait_gripper()
        assert width(arm) == pytest.approx(0.03)
        arm.command(EeDeltaCommand(np.zeros(3), 0.0, 0.0))  # open, blocked on the gate
        wait_until(lambda: "Gripper.move" in world.names())
        widths = []
        for _ in range(3):
            time.sleep(0.05)
            widths.append(width(arm))
        assert 0.03 < widths[0] < widths[1] < widths[2] < 0.08  # opening at about 0.1 m/s
        time.sleep(0.5)
        assert width(arm) == pytest.approx(0.08)  # at the target, call running
        world.gripper_gate.set()
        arm.wait_gripper()
        assert width(arm) == pytest.approx(0.08)  # the gripper's own reading
        arm.stop()


def test_reflex_is_reported_and_recovered() -> None:
    world = World()
    with make(world) as arm:
        arm.command(EeDeltaCommand(np.array([0.01, 0.0, 0.0])))
        wait_until(lambda: len(world.writes) > 5)
        world.fault = True
        wait_until(lambda: not arm.motion_active())
        arm.tick(time.monotonic_ns())
        assert "cartesian_reflex" in arm.read().error
        arm.clear_error()
        assert "automatic_error_recovery" in world.names() and arm.read().error == ""
        arm.command(EeDeltaCommand(np.array([0.01, 0.0, 0.0])))
        assert world.names().count("start_cartesian_velocity_control") == 2
        arm.stop()


def test_network_loss_reconnects() -> None:
    world = World()
    with make(world, backoff_s=0.2) as arm:
        arm.command(EeDeltaCommand(np.array([0.01, 0.0, 0.0])))
        wait_until(lambda: len(world.writes) > 5)
        world.connected = False
        wait_until(lambda: not arm.motion_active())
        t0 = time.monotonic_ns()
        arm.tick(t0)
        assert not arm.connected and arm.read().error.startswith("disconnected")
        world.connected = True
        arm.tick(t0 + 300_000_000)
        assert arm.connected and world.names().count("Robot") == 2


def test_home_converges_and_finishes() -> None:
    world = World()
    world.pos_m = np.array([0.5, 0.05, 0.25])
    with make(world, max_speed_m_s=0.5, max_accel_m_s2=5.0) as arm:
        arm.home()
        wait_until(lambda: not arm.motion_active(), timeout_s=5.0)
        assert np.allclose(world.pos_m, [0.45, 0.0, 0.30], atol=0.004)
        assert world.writes[-1][1] is True


@pytest.mark.parametrize("kind", ["franka"])
def test_spec_rate(kind: str) -> None:
    assert make(World()).spec.native_rate_hz == 1000.0
