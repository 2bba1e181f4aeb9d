"""xArm driver: the exact xarm-python-sdk calls for connect, move, stop, gripper, errors,
reconnect."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from robolearn.config.hardware import XArmRobotConfig
from robolearn.errors import DeviceError, DeviceNotConnected
from robolearn.hardware.base import EeDeltaCommand
from robolearn.hardware.xarm import XArmArm
from tests.hardware.fakes import World, fake_xarm_sdk

HOST = "10.0.0.3"


def make(world: World, **overrides: object) -> XArmArm:
    cfg = XArmRobotConfig(host=HOST, task="pick_cube", **overrides)  # type: ignore[arg-type]
    return XArmArm(cfg, command_period_s=0.1, sdk=fake_xarm_sdk(world), sleep=lambda s: None)


def test_connect_enables_cartesian_velocity_mode_and_the_gripper() -> None:
    world = World()
    with make(world) as arm:
        assert world.calls[0] == ("XArmAPI", (HOST,), {"is_radian": True, "do_not_open": True})
        assert world.names()[1:] == ["connect", "clean_warn", "clean_error", "motion_enable",
                                     "set_mode", "set_state", "set_gripper_mode",
                                     "set_gripper_enable"]
        assert world.last("set_mode")[0] == (5,)
        assert arm.spec.num_joints == 7
        assert np.allclose(arm.read().ee_pos_m, [0.45, 0.0, 0.30])
    assert world.names()[-2:] == ["vc_set_cartesian_velocity", "disconnect"]


def test_move_sends_mm_per_s_with_a_controller_side_duration() -> None:
    world = World()
    with make(world, watchdog_ms=120) as arm:
        arm.command(EeDeltaCommand(np.array([0.01, 0.0, -0.002]), 0.0, 1.0))
        args, kwargs = world.last("vc_set_cartesian_velocity")
        assert np.allclose(args[0], [100.0, 0.0, -20.0, 0.0, 0.0, 0.0])
        assert kwargs == {"is_radian": True, "is_tool_coord": False, "duration": 0.12}
        assert world.last("set_gripper_position") == ((0.0,), {"wait": False})
        arm.stop()
        args, kwargs = world.last("vc_set_cartesian_velocity")
        assert args[0] == [0.0] * 6 and kwargs["duration"] == 0


def test_home_switches_to_position_mode_and_back() -> None:
    world = World()
    with make(world) as arm:
        arm.home()
        assert world.names()[-3:] == ["set_mode", "set_state", "set_position"]
        assert world.last("set_mode")[0] == (0,)
        kwargs = world.last("set_position")[1]
        assert kwargs["x"] == pytest.approx(450.0) and kwargs["roll"] == math.pi
        assert kwargs["wait"] is False and kwargs["is_radian"] is True
        arm.command(EeDeltaCommand(np.array([0.01, 0.0, 0.0])))
        assert world.names()[-4:] == ["set_mode", "set_state", "vc_set_cartesian_velocity",
                                      "set_gripper_position"]
        assert world.last("set_mode")[0] == (5,)


def test_error_code_latches_until_cleared() -> None:
    world = World()
    with make(world) as arm:
        world.fault = True
        arm.tick(time.monotonic_ns())
        assert arm.read().error == "xarm error code 31"
        with pytest.raises(DeviceError):
            arm.command(EeDeltaCommand(np.zeros(3)))
        n = len(world.calls)
        arm.clear_error()
        assert world.names()[n:] == ["clean_warn", "clean_error", "motion_enable", "set_mode",
                                     "set_state"]
        assert arm.read().error == ""


def test_reconnect_recreates_the_api_object() -> None:
    world = World()
    with make(world, backoff_s=0.5) as arm:
        world.connected = False
        t0 = time.monotonic_ns()
        arm.tick(t0)
        assert "disconnect" in world.names() and not arm.connected
        with pytest.raises(DeviceNotConnected):
            arm.home()
        world.connected = True
        n = world.names().count("XArmAPI")
        arm.tick(t0 + 600_000_000)
        assert world.names().count("XArmAPI") == n + 1 and arm.connected
