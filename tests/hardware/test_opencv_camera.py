"""The OpenCV camera driver, with a video file as its source (how a USB camera is tested
without one), alone and as a driver process serving frames over the wire."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import zmq

from robolearn.config import load_config
from robolearn.errors import DeviceNotConnected, StaleFrame
from robolearn.hardware.opencv import OpenCVCamera
from robolearn.protocol import Subscriber


def make_video(path: Path, n: int = 20, size: tuple[int, int] = (96, 64)) -> Path:
    w, h = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (w, h))
    for i in range(n):
        frame = np.zeros((h, w, 3), np.uint8)
        frame[:, :, 2] = 20 + (i * 7) % 230  # red channel (BGR) grows frame by frame
        writer.write(frame)
    writer.release()
    return path


def test_reads_resizes_and_converts_to_rgb(tmp_path: Path) -> None:
    video = make_video(tmp_path / "v.avi")
    with OpenCVCamera("front", str(video), width=48, height=32, fps=100, loop=False) as cam:
        frames = [cam.wait_frame(2.0) for _ in range(5)]
    assert all(f is not None for f in frames)
    img = frames[0].image
    assert img.shape == (32, 48, 3) and img.dtype == np.uint8
    assert img[..., 0].mean() > img[..., 2].mean()  # red is channel 0 after BGR->RGB
    idx = [f.frame_index for f in frames]
    assert idx == sorted(set(idx))  # each wait returns a new frame
    reds = [f.image[..., 0].mean() for f in frames]
    assert reds == sorted(reds)


def test_latest_refuses_stale_frames(tmp_path: Path) -> None:
    video = make_video(tmp_path / "v.avi", n=3)
    with OpenCVCamera("front", str(video), fps=100, loop=False) as cam:
        assert cam.wait_frame(2.0) is not None
        time.sleep(0.3)  # the 3-frame file has ended: no fresh frames
        with pytest.raises(StaleFrame, match="ms old"):
            cam.latest(max_age_ms=100)
        assert cam.ended


def test_missing_source_is_a_clear_error(tmp_path: Path) -> None:
    cam = OpenCVCamera("front", str(tmp_path / "missing.avi"))
    with pytest.raises(DeviceNotConnected, match="cannot open"):
        cam.connect()
    with pytest.raises(DeviceNotConnected):
        cam.poll(0)


def test_camera_driver_process_streams_frames(tmp_path: Path, write_config) -> None:
    video = make_video(tmp_path / "v.avi", n=30)
    cfg = write_config(cameras=[{"kind": "opencv", "name": "usb", "source": str(video),
                                 "address": f"ipc://{tmp_path}/usb", "width": 40,
                                 "height": 30, "fps": 30}])
    # A camera-only process needs no robot; the sim robot in the config is not started.
    proc = subprocess.Popen([sys.executable, "-m", "robolearn.cli.main", "driver", str(cfg),
                             "--camera", "usb"])
    ctx = zmq.Context()
    address = f"ipc://{tmp_path}/usb"
    sub = Subscriber(ctx, address, types=("camera_frame",),
                     security=load_config(cfg).socket_security(address, "operator"))
    try:
        msg = sub.wait_new("camera_frame", timeout_s=20.0, key="usb")
        assert msg is not None
        assert msg.arrays["image"].shape == (30, 40, 3)
        second = sub.wait_new("camera_frame", timeout_s=5.0, key="usb")
        assert second is not None and second.body["frame_index"] > msg.body["frame_index"]
    finally:
        sub.close()
        ctx.term()
        proc.terminate()
        assert proc.wait(10) == 0
