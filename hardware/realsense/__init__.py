"""Intel RealSense cameras through pyrealsense2."""

from hardware.realsense.driver import RealsenseCamera

__all__ = ["RealsenseCamera"]
