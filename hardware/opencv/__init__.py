"""USB/UVC cameras and video files through OpenCV."""

from robolearn.hardware.opencv.driver import OpenCVCamera

__all__ = ["OpenCVCamera"]
