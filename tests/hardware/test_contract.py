"""The arm driver contract, run against the sim arm and every vendor driver (fake SDK)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np
import pytest

from robolearn.config.hardware import FrankaRobotConfig, URRobotConfig, XArmRobotConfig
from robolearn.errors import DeviceNotConnected
from robolearn.hardware.base import ArmDriver, ArmState, EeDeltaCommand
from robolearn.hardware.franka import FrankaArm
from robolearn.hardware.registry import get_driver
from robolearn.hardware.sim import SimArm
from robolearn.hardware.ur import URArm
from robolearn.hardware.xarm import XArmArm
from robolearn.sim import PandaSim
from tests.hardware.fakes import World, fake_franka_sdk, fake_ur_sdk, fake_xarm_sdk

KINDS = ["sim", "franka", "ur", "xarm"]
_BOX_TOL_M = 0.01


def make_arm(kind: str) -> ArmDriver:
    common = {"host": "10.0.0.2", "task": "pick_cube", "backoff_s": 0.01}
    if kind == "sim":
        return SimArm(PandaSim("reach", render=False), max_step_m=0.05)
    world = World()
    if kind == "franka":
        return FrankaArm(FrankaRobotConfig(**common, realtime="ignore"),
                         sdk=fake_franka_sdk(world))
    if kind == "ur":
        return URArm(URRobotConfig(**common), sdk=fake_ur_sdk(world))
    return XArmArm(XArmRobotConfig(**common), sdk=fake_xarm_sdk(world))


@pytest.fixture(params=KINDS)
def arm(request: pytest.FixtureRequest) -> Iterator[ArmDriver]:
    driver = make_arm(request.param)
    with driver:
        yield driver


def drive(arm: ArmDriver, delta: np.ndarray, steps: int) -> ArmState:
    """Command `delta` each 10 ms for `steps` iterations, ticking in between."""
    for _ in range(steps):
        arm.command(EeDeltaCommand(delta_xyz_m=delta))
        time.sleep(0.01)
        arm.tick(time.monotonic_ns())
    return arm.read()


@pytest.mark.parametrize("kind", KINDS)
def test_spec_without_hardware_and_registry(kind: str) -> None:
    driver = make_arm(kind)
    spec = driver.spec
    assert spec.kind == kind and spec.num_joints in (6, 7)
    assert np.all(spec.workspace_min_m < spec.workspace_max_m)
    assert 0 < spec.max_step_m <= 0.2 and spec.native_rate_hz > 0
    assert get_driver("sim_arm" if kind == "sim" else kind) is type(driver)
    with pytest.raises(DeviceNotConnected):
        driver.read()


def test_state_is_complete_and_stamped(arm: ArmDriver) -> None:
    arm.tick(time.monotonic_ns())
    s = arm.read()
    assert s.joint_pos_rad.shape == (arm.spec.num_joints,)
    assert s.ee_pos_m.shape == (3,) and s.ee_quat_wxyz.shape == (4,)
    assert np.isclose(np.linalg.norm(s.ee_quat_wxyz), 1.0, atol=1e-6)
    assert np.all(np.isfinite(s.ee_pos_m)) and s.gripper_width_m >= 0
    assert 0 < s.stamp_ns <= time.monotonic_ns() and s.error == ""


def test_command_clips_and_moves_in_the_commanded_direction(arm: ArmDriver) -> None:
    arm.tick(time.monotonic_ns())
    start = arm.read().ee_pos_m
    applied = arm.command(EeDeltaCommand(delta_xyz_m=np.array([-1.0, 0.0, 0.0])))
    assert np.all(np.abs(applied.delta_xyz_m) <= arm.spec.max_step_m + 1e-12)
    assert applied.delta_xyz_m[0] < 0 and applied.delta_xyz_m[1] == 0
    end = drive(arm, np.array([-0.02, 0.0, 0.0]), 30)
    assert end.ee_pos_m[0] < start[0] - 0.005
    assert not end.stopped


def test_workspace_box_holds_against_a_push_out(arm: ArmDriver) -> None:
    end = drive(arm, np.array([0.0, 0.0, 0.05]), 60)
    assert end.ee_pos_m[2] <= arm.spec.workspace_max_m[2] + _BOX_TOL_M
    assert end.error == ""


def test_non_finite_command_moves_nothing(arm: ArmDriver) -> None:
    if isinstance(arm, SimArm):
        pytest.skip("the sim arm relies on the actor's filter for non-finite input")
    applied = arm.command(EeDeltaCommand(delta_xyz_m=np.array([np.nan, 0.0, 0.0])))
    assert np.all(applied.delta_xyz_m == 0)


def test_stop_is_repeatable_and_reported(arm: ArmDriver) -> None:
    drive(arm, np.array([0.01, 0.0, 0.0]), 3)
    arm.stop()
    arm.stop()
    arm.tick(time.monotonic_ns())
    assert arm.read().stopped


def test_home_and_close(arm: ArmDriver) -> None:
    arm.home()
    arm.tick(time.monotonic_ns())
    arm.close()
    with pytest.raises(DeviceNotConnected):
        arm.command(EeDeltaCommand(delta_xyz_m=np.zeros(3)))
