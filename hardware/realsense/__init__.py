"""Intel RealSense cameras through pyrealsense2."""

from hardware.realsense.driver import DepthFrame, RealsenseCamera

__all__ = ["DepthFrame", "RealsenseCamera"]
