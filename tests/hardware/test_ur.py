"""UR driver: the exact ur-rtde calls for connect, move, stop, gripper, errors, reconnect."""

from __future__ import annotations

import importlib.util
import math
import time

import numpy as np
import pytest

from robolearn.config.hardware import URRobotConfig
from robolearn.errors import ConfigError, DeviceError, DeviceNotConnected
from robolearn.hardware.base import EeDeltaCommand
from robolearn.hardware.ur import URArm
from tests.hardware.fakes import World, fake_ur_sdk

HOST = "10.0.0.2"


def make(world: World, sleeps: list[float] | None = None, **overrides: object) -> URArm:
    cfg = URRobotConfig(host=HOST, task="pick_cube", **overrides)  # type: ignore[arg-type]
    return URArm(cfg, command_period_s=0.1, sdk=fake_ur_sdk(world),
                 sleep=(sleeps.append if sleeps is not None else lambda s: None))


def test_connect_opens_every_interface_and_arms_the_rtde_watchdog() -> None:
    world = World()
    with make(world):
        assert world.names() == ["recv.__init__", "ctrl.__init__", "dash.__init__",
                                 "dash.connect", "io.__init__", "ctrl.setWatchdog"]
        assert world.calls[0][1] == (HOST, 500.0)
        assert world.last("ctrl.setWatchdog")[0] == (10.0,)
    assert world.names()[-5:] == ["ctrl.speedStop", "ctrl.disconnect", "recv.disconnect",
                                  "io.disconnect", "dash.disconnect"]


def test_connect_retries_with_exponential_backoff_then_fails_clearly() -> None:
    world = World(fail_connects=2)
    sleeps: list[float] = []
    with make(world, sleeps, backoff_s=0.5):
        pass
    assert sleeps == [0.5, 1.0]
    world = World(fail_connects=10)
    sleeps = []
    with pytest.raises(DeviceNotConnected, match=r"arm \(ur at 10.0.0.2\).*3 attempts"):
        make(world, sleeps, connect_attempts=3).connect()
    assert sleeps == [0.5, 1.0]


def test_move_is_one_speedl_within_the_speed_limit() -> None:
    world = World()
    with make(world, max_speed_m_s=0.1) as arm:
        applied = arm.command(EeDeltaCommand(np.array([0.003, -0.5, 0.0]), 0.02, 0.0))
        # 0.1 m/s over a 0.1 s period: at most 10 mm per command.
        assert np.allclose(applied.delta_xyz_m, [0.003, -0.01, 0.0])
        xd, acc, t = world.last("ctrl.speedL")[0]
        assert np.allclose(xd, [0.03, -0.1, 0.0, 0.0, 0.0, 0.2]) and acc == 0.8 and t == 0.0


def test_stop_and_gripper_calls() -> None:
    world = World()
    with make(world) as arm:
        arm.command(EeDeltaCommand(np.zeros(3), 0.0, 1.0))
        assert world.last("io.setToolDigitalOut")[0] == (0, True)
        n = world.names().count("io.setToolDigitalOut")
        arm.command(EeDeltaCommand(np.zeros(3), 0.0, 0.98))  # within the deadband: not re-sent
        assert world.names().count("io.setToolDigitalOut") == n
        arm.stop()
        assert world.last("ctrl.speedStop")[0] == (2.0,)
        arm.home()
        pose, speed, acc, asynchronous = world.last("ctrl.moveL")[0]
        assert pose == [0.45, 0.0, 0.3, math.pi, 0.0, 0.0] and asynchronous is True
        assert (speed, acc) == (0.25, 0.8)


def test_protective_stop_latches_until_cleared_through_the_dashboard() -> None:
    world = World()
    with make(world) as arm:
        arm.command(EeDeltaCommand(np.array([0.01, 0, 0])))
        world.fault = True
        arm.tick(time.monotonic_ns())
        assert arm.read().error == "protective_stop" and arm.read().stopped
        with pytest.raises(DeviceError, match="clear_error"):
            arm.command(EeDeltaCommand(np.array([0.01, 0, 0])))
        n = len(world.calls)
        arm.clear_error()
        assert world.names()[n:] == ["dash.closeSafetyPopup", "dash.unlockProtectiveStop",
                                     "ctrl.isProgramRunning", "ctrl.reuploadScript"]
        assert arm.read().error == ""
        arm.command(EeDeltaCommand(np.array([0.01, 0, 0])))
        world.estop = True
        arm.tick(time.monotonic_ns())
        with pytest.raises(DeviceError, match="emergency stop"):
            arm.clear_error()


def test_watchdog_stops_a_silent_actor() -> None:
    world = World()
    with make(world, watchdog_ms=100) as arm:
        arm.command(EeDeltaCommand(np.array([0.01, 0, 0])))
        n = world.names().count("ctrl.speedStop")
        arm.tick(time.monotonic_ns() + 50_000_000)
        assert world.names().count("ctrl.speedStop") == n
        arm.tick(time.monotonic_ns() + 150_000_000)
        assert world.names().count("ctrl.speedStop") == n + 1 and arm.watchdog_trips == 1


def test_lost_link_reconnects_with_backoff_and_stays_stopped() -> None:
    world = World()
    with make(world, backoff_s=0.5) as arm:
        arm.command(EeDeltaCommand(np.array([0.01, 0, 0])))
        world.connected = False
        t0 = time.monotonic_ns()
        arm.tick(t0)
        assert arm.read().error.startswith("disconnected") and not arm.connected
        with pytest.raises(DeviceNotConnected, match="reconnecting"):
            arm.command(EeDeltaCommand(np.zeros(3)))
        world.connected = True
        world.fail_connects = 1
        n = world.names().count("recv.__init__")
        arm.tick(t0 + 100_000_000)  # before the first backoff: no attempt
        assert world.names().count("recv.__init__") == n
        arm.tick(t0 + 600_000_000)  # first attempt fails; next one due 1 s later
        assert world.names().count("recv.__init__") == n + 1 and not arm.connected
        arm.tick(t0 + 1_000_000_000)
        assert world.names().count("recv.__init__") == n + 1
        arm.tick(t0 + 1_700_000_000)
        assert arm.connected and arm.reconnects == 1
        assert arm.read().stopped and arm.read().error == ""


@pytest.mark.skipif(importlib.util.find_spec("rtde_control") is not None,
                    reason="ur-rtde is installed here")
def test_missing_sdk_names_the_extra() -> None:
    arm = URArm(URRobotConfig(host=HOST, task="pick_cube"))
    with pytest.raises(ConfigError, match=r"pip install -e \.\[ur\]"):
        arm.connect()
