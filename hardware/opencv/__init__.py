"""USB/UVC cameras and video files through OpenCV."""

from hardware.opencv.driver import OpenCVCamera

__all__ = ["OpenCVCamera"]
