"""RealSense camera with a fake pyrealsense2: stream setup, serial choice, capture stamps,
aligned depth, latest-frame semantics."""

from __future__ import annotations

import time

import numpy as np
import pytest

from hardware.realsense import DepthFrame, RealsenseCamera
from robolearn.config.hardware import RealsenseCameraConfig
from robolearn.errors import ConfigError, DeviceNotConnected, StaleFrame
from tests.hardware.fakes import World, fake_realsense_sdk


def make(world: World, serials: tuple[str, ...] = ("123",), **overrides: object
         ) -> RealsenseCamera:
    cfg = RealsenseCameraConfig(name="front_cam", address="ipc:///tmp/x", width=64,
                                height=48, fps=30, output_width=32, output_height=24,
                                **overrides)  # type: ignore[arg-type]
    return RealsenseCamera(cfg, sdk=fake_realsense_sdk(world, serials, stamp_age_ms=40.0,
                                                       now_ms=1e6),
                           wall_clock_ms=lambda: 1e6)


def test_streams_selected_device_with_capture_stamps_and_depth() -> None:
    world = World()
    with make(world, ("111", "222"), serial="222", depth=True) as cam:
        assert world.calls[:4] == [
            ("config", (), {}), ("config.enable_device", ("222",), {}),
            ("config.enable_stream", ("color", 0, 64, 48, "rgb8", 30), {}),
            ("config.enable_stream", ("depth", 0, 64, 48, "z16", 30), {}),
        ]
        assert ("align", ("color",), {}) in world.calls
        before = time.monotonic_ns()
        frame = cam.wait_frame(2.0)
        assert isinstance(frame, DepthFrame) and frame.image.shape == (24, 32, 3)
        assert frame.depth_mm is not None and frame.depth_mm.dtype == np.uint16
        assert frame.depth_mm.shape == (24, 32)
        # Stamped 40 ms before arrival, not at arrival.
        assert frame.stamp_ns <= before + 20_000_000 - 30_000_000
        assert cam.poll(time.monotonic_ns()) is None or cam.poll(0) is None
        with pytest.raises(StaleFrame):
            cam.latest(max_age_ms=5.0)
        assert cam.latest(max_age_ms=500.0).camera == "front_cam"
    assert world.names()[-1] == "pipeline.stop"


def test_serial_choice_errors() -> None:
    with pytest.raises(ConfigError, match="2 RealSense cameras"):
        make(World(), ("111", "222")).connect()
    with pytest.raises(DeviceNotConnected, match="no camera with serial 999"):
        make(World(), ("111",), serial="999").connect()
    with pytest.raises(DeviceNotConnected, match="before connect"):
        make(World()).latest(100.0)
