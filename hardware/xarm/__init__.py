"""UFACTORY xArm 5/6/7 and Lite 6 through xarm-python-sdk."""

from robolearn.hardware.xarm.driver import XArmArm

__all__ = ["XArmArm"]
