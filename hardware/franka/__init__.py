"""Franka Panda / FR3 arms through pylibfranka (the official libfranka bindings)."""

from robolearn.hardware.franka.driver import FrankaArm

__all__ = ["FrankaArm"]
