"""RealSense camera with a fake pyrealsense2: stream setup, serial choice, capture stamps,
aligned depth, latest-frame semantics."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
import zmq

from robolearn.actor.env import DriverError, RobotEnv
from robolearn.config import load_config
from robolearn.config.hardware import RealsenseCameraConfig
from robolearn.errors import ConfigError, DeviceNotConnected, StaleFrame
from robolearn.hardware.base import Frame
from robolearn.hardware.realsense import RealsenseCamera
from robolearn.hardware.server import DriverServer
from robolearn.hardware.sim import SimArm
from robolearn.learn.observation import obs_spec_for
from robolearn.protocol import Subscriber
from robolearn.sim import PandaSim
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
        assert isinstance(frame, Frame) and frame.image.shape == (24, 32, 3)
        assert frame.depth_mm is not None and frame.depth_mm.dtype == np.uint16
        assert frame.depth_mm.shape == (24, 32)
        # The aligned ramp (501 + column), halved to 32 columns by nearest neighbour: the
        # depth published is the one aligned to colour, never the raw sensor's.
        np.testing.assert_array_equal(frame.depth_mm[5], 501 + 2 * np.arange(32))
        names = world.names()
        first = names.index("align.process")
        assert names[first + 1:first + 3] == ["aligned_depth.get_depth_frame",
                                              "aligned_depth.get_data"]
        assert not any(n.startswith("raw_depth") for n in names)
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


def test_without_depth_nothing_is_aligned_or_read() -> None:
    world = World()
    with make(world) as cam:
        frame = cam.wait_frame(2.0)
    assert frame is not None and frame.depth_mm is None
    assert [c for c in world.calls if c[0] == "config.enable_stream"] == [
        ("config.enable_stream", ("color", 0, 64, 48, "rgb8", 30), {})]
    assert not any("align" in n or "depth" in n for n in world.names())


def test_driver_server_publishes_aligned_depth(sock_dir: Path) -> None:
    ctx = zmq.Context()
    address = f"ipc://{sock_dir}/rs"
    cam = make(World(), depth=True)
    server = DriverServer(ctx, name="rs", cameras=(cam,), frames_address=address)
    sub = Subscriber(ctx, address, types=("camera_frame",))
    stop = threading.Event()
    cam.connect()
    thread = threading.Thread(target=server.serve, args=(stop,), daemon=True)
    thread.start()
    try:
        msg = sub.wait_new("camera_frame", timeout_s=10.0, key="front_cam")
        assert msg is not None
        assert msg.arrays["image"].shape == (24, 32, 3)
        np.testing.assert_array_equal(msg.arrays["depth_mm"][0], 501 + 2 * np.arange(32))
    finally:
        stop.set()
        thread.join(5)
        cam.close()
        sub.close()
        server.close()
        ctx.term()


@pytest.mark.parametrize("driver_depth", [True, False])
def test_actor_observation_carries_depth_when_configured(write_config, sock_dir: Path,
                                                         driver_depth: bool) -> None:
    """Sim arm + RealSense (fake SDK) behind real driver servers; the actor's RobotEnv reads
    `front_cam_depth_mm` beside the image because the camera config says depth, and says
    so clearly when the camera's driver sends none."""
    cam_address = f"ipc://{sock_dir}/rs"
    cfg = load_config(write_config(cameras=[{
        "kind": "realsense", "name": "front_cam", "address": cam_address, "width": 64,
        "height": 48, "output_width": 32, "output_height": 24, "depth": True}]))
    ctx = zmq.Context()
    sim = PandaSim("reach", image_size=(24, 32), cameras=("front",), render=False)
    sim.reset(0)
    arm = SimArm(sim, max_step_m=0.05)
    cam = make(World(), depth=driver_depth)
    servers = [
        DriverServer(ctx, name="arm", arm=arm, state_address=cfg.robot.state_address,
                     command_address=cfg.robot.command_address,
                     security=lambda address: cfg.socket_security(address, "driver")),
        DriverServer(ctx, name="rs", cameras=(cam,), frames_address=cam_address,
                     security=cfg.socket_security(cam_address, "camera-front_cam")),
    ]
    stop = threading.Event()
    arm.connect()
    cam.connect()
    threads = [threading.Thread(target=s.serve, args=(stop,), daemon=True) for s in servers]
    for t in threads:
        t.start()
    env = RobotEnv(cfg, ctx)
    try:
        env.wait_ready(timeout_s=10.0)
        if not driver_depth:
            with pytest.raises(DriverError, match="front_cam: configured with depth"):
                env.observe()
            return
        obs = env.observe()
        assert obs["front_cam"].shape == (24, 32, 3)
        assert obs["front_cam_depth_mm"].dtype == np.uint16
        np.testing.assert_array_equal(obs["front_cam_depth_mm"][0], 501 + 2 * np.arange(32))
        assert obs["front_cam_depth_mm"] in env.observation_space["front_cam_depth_mm"]
        # The policy's image space is the published (resized) size, not the stream's.
        assert env.observation_space["front_cam"].shape == obs["front_cam"].shape
        assert obs_spec_for(cfg.model_copy(update={"learner": cfg.learner.model_copy(
            update={"observation": "pixels"})})).image_hw == (24, 32)
    finally:
        env.close()
        stop.set()
        for t in threads:
            t.join(5)
        cam.close()
        for s in servers:
            s.close()
        ctx.term()
