"""Intel RealSense cameras through pyrealsense2."""

from robolearn.hardware.realsense.driver import RealsenseCamera

__all__ = ["RealsenseCamera"]
