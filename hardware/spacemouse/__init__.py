from robolearn.hardware.spacemouse.mapping import deadzone, to_action
from robolearn.hardware.spacemouse.teleop import SpaceMouseTeleop, TeleopTick

__all__ = ["SpaceMouseTeleop", "TeleopTick", "deadzone", "to_action"]
