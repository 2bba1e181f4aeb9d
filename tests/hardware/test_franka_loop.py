"""The Franka 1 kHz loop's own safety, with the fake pylibfranka (no peer needed): it stops on
its own when commands stop, and a reflex it has not yet reported still refuses motion."""

from __future__ import annotations

import time

import numpy as np
import pytest

from robolearn.errors import DeviceError
from robolearn.hardware.base import EeDeltaCommand
from tests.hardware.fakes import World
from tests.hardware.test_franka import make, wait_until


def test_loop_ramps_to_zero_when_commands_stop_even_without_ticks() -> None:
    world = World()
    with make(world, watchdog_ms=50.0) as arm:
        arm.command(EeDeltaCommand(np.array([0.01, 0.0, 0.0])))
        wait_until(lambda: len(world.writes) > 0 and world.writes[-1][0][0] > 0.0)
        # No tick() from here on: the driver loop is stalled, the thread must act alone.
        wait_until(lambda: len(world.writes) > 20 and world.writes[-1][0] == [0.0] * 6)
        peak = max(w[0][0] for w in world.writes)
        assert peak > 0.0
        assert arm.motion_active()  # at rest, still holding the motion until stop()
        arm.stop()
        wait_until(lambda: not arm.motion_active())


def test_unreported_reflex_refuses_the_next_motion() -> None:
    world = World()
    with make(world) as arm:
        arm.command(EeDeltaCommand(np.array([0.01, 0.0, 0.0])))
        wait_until(lambda: len(world.writes) > 5)
        world.fault = True
        wait_until(lambda: not arm.motion_active())
        starts = world.names().count("start_cartesian_velocity_control")
        # No tick yet, so the base class has not latched the error: the driver itself refuses.
        with pytest.raises(DeviceError, match="clear_error"):
            arm.command(EeDeltaCommand(np.array([0.01, 0.0, 0.0])))
        assert world.names().count("start_cartesian_velocity_control") == starts
        arm.tick(time.monotonic_ns())
        assert "cartesian_reflex" in arm.read().error
