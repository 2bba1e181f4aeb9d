"""Run one driver process: the robot (for the sim: the arm and its cameras) or one camera.

Example:
    robolearn driver configs/sim_pick_cube.yaml
    robolearn driver configs/sim_pick_cube.yaml --camera front   # an opencv camera of the config
"""

from __future__ import annotations

import argparse
import logging
import threading

from robolearn.cli.common import add_config_args, config_from_args, stop_on_signals
from robolearn.config import OpenCVCameraConfig, RunConfig
from robolearn.config.sockets import DRIVER, camera_identity
from robolearn.errors import ConfigError

log = logging.getLogger(__name__)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("driver", help="run a driver process (robot or one camera)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(p)
    p.add_argument("--camera", help="serve this camera of the config instead of the robot")
    p.set_defaults(func=main)


def run_robot(cfg: RunConfig, stop: threading.Event) -> None:
    """Serve the configured robot (and, for the sim, its cameras) until `stop` is set."""
    import zmq

    from robolearn.hardware.server import DriverServer
    from robolearn.hardware.sim import SimArm, SimCamera
    from robolearn.sim import PandaSim

    robot = cfg.robot
    if robot.kind != "sim":
        run_vendor_arm(cfg, stop)
        return
    sims = cfg.sim_cameras
    size = (sims[0].height, sims[0].width) if sims else (84, 84)
    sim = PandaSim(robot.task, image_size=size, cameras=tuple(c.name for c in sims) or ("front",),
                   scale=cfg.actor.action_scale, control_hz=cfg.actor.control_hz,
                   render=bool(sims))
    sim.reset(cfg.actor.seed)
    arm = SimArm(sim, name=robot.name, max_step_m=cfg.safety.max_step_m,
                 max_yaw_step_rad=cfg.safety.max_yaw_step_rad)
    cams = tuple(SimCamera(sim, c.name, fps=c.fps) for c in sims)
    ctx = zmq.Context()
    server = DriverServer(
        ctx, name=robot.name, arm=arm, cameras=cams,
        state_address=robot.state_address, command_address=robot.command_address,
        frames_address=robot.frames_address if cams else None,
        state_hz=robot.state_hz, watchdog_ms=robot.watchdog_ms, safety=cfg.safety,
        security=lambda address: cfg.socket_security(address, DRIVER),
    )
    try:
        with arm:
            for c in cams:
                c.connect()
            server.serve(stop)
    finally:
        server.close()
        ctx.term()


def run_vendor_arm(cfg: RunConfig, stop: threading.Event) -> None:
    """Serve a real arm (franka, ur, xarm) through its vendor driver until `stop` is set."""
    import zmq

    from robolearn.hardware.registry import get_driver
    from robolearn.hardware.server import DriverServer

    robot = cfg.robot
    arm = get_driver(robot.kind)(robot, command_period_s=1.0 / cfg.actor.control_hz)
    ctx = zmq.Context()
    server = DriverServer(
        ctx, name=robot.name, arm=arm, state_address=robot.state_address,
        command_address=robot.command_address, state_hz=robot.state_hz,
        watchdog_ms=robot.watchdog_ms, safety=cfg.safety,
        security=lambda address: cfg.socket_security(address, DRIVER),
    )
    try:
        with arm:
            server.serve(stop)
    finally:
        server.close()
        ctx.term()


def run_camera(cfg: RunConfig, name: str, stop: threading.Event) -> None:
    import zmq

    from robolearn.config.hardware import RealsenseCameraConfig
    from robolearn.hardware.base import CameraDriver
    from robolearn.hardware.opencv import OpenCVCamera
    from robolearn.hardware.server import DriverServer

    cams = {c.name: c for c in cfg.cameras}
    cam_cfg = cams.get(name)
    if cam_cfg is None:
        raise ConfigError(f"no camera {name!r} in the config; cameras: {sorted(cams)}")
    if isinstance(cam_cfg, RealsenseCameraConfig):
        from robolearn.hardware.realsense import RealsenseCamera

        cam: CameraDriver = RealsenseCamera(cam_cfg)
    elif isinstance(cam_cfg, OpenCVCameraConfig):
        cam = OpenCVCamera(cam_cfg.name, cam_cfg.source, width=cam_cfg.width,
                           height=cam_cfg.height, fps=cam_cfg.fps, exposure=cam_cfg.exposure,
                           loop=cam_cfg.loop, intrinsics=cam_cfg.intrinsics)
    else:
        raise ConfigError(f"camera {name!r} is a sim camera: it is served by the robot process")
    ctx = zmq.Context()
    server = DriverServer(ctx, name=name, cameras=(cam,), frames_address=cam_cfg.address,
                          security=cfg.socket_security(cam_cfg.address, camera_identity(name)))
    try:
        with cam:
            server.serve(stop)
    finally:
        server.close()
        ctx.term()


def main(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    stop = stop_on_signals()
    if args.camera:
        run_camera(cfg, args.camera, stop)
    else:
        run_robot(cfg, stop)
    return 0
