"""The built-in MuJoCo Panda arm and its cameras as drivers."""

from robolearn.hardware.sim.driver import SimArm, SimCamera

__all__ = ["SimArm", "SimCamera"]
