"""Universal Robots e-series arms through ur-rtde."""

from robolearn.hardware.ur.driver import URArm

__all__ = ["URArm"]
