"""The calibration board scene served as a driver: a hand-posed arm and its cameras behind
the real `hardware.server.DriverServer`, so live calibration is tested over the wire."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import mujoco
import numpy as np
import zmq

from robolearn.calibration.detect import BoardDetector
from robolearn.calibration.sim import BoardScene
from robolearn.config import RunConfig
from robolearn.config.hardware import CharucoBoardConfig
from robolearn.errors import DeviceError, DeviceNotConnected, StaleFrame
from robolearn.hardware.base import (
    ArmDriver,
    ArmSpec,
    ArmState,
    CameraDriver,
    CameraSpec,
    EeDeltaCommand,
    Frame,
)
from robolearn.hardware.server import DriverServer
from robolearn.protocol import Subscriber
from robolearn.sim.model import HOME_Q_RAD


class BoardSceneArm(ArmDriver):
    """The board scene's arm as a driver, for rehearsing and testing live calibration.

    It is posed, not commanded, the way an operator hand-guides a real arm between views:
    `pose_to(q)` from any thread, applied on the next `tick` of the serving loop. The scene
    (and its GL context) is created in `connect()`, so on the thread that serves it.

    Args:
        board, mount, board_pos_m, width, height: as for `BoardScene`.
        name: the arm's operator-facing id.
    """

    def __init__(self, board: CharucoBoardConfig, *, mount: Literal["world", "hand"] = "world",
                 board_pos_m: tuple[float, float, float] = (0.5, 0.0, 0.001),
                 width: int = 640, height: int = 480, name: str = "arm") -> None:
        self.mount = mount
        self.board_pos_m = board_pos_m
        self.width, self.height = width, height
        self.board = board
        self.name = name
        self.scene: BoardScene | None = None
        self._lock = threading.Lock()
        self._pending: np.ndarray | None = None

    @property
    def spec(self) -> ArmSpec:
        return ArmSpec(name=self.name, kind="calibration_sim", num_joints=7,
                       workspace_min_m=np.array([0.2, -0.5, 0.0]),
                       workspace_max_m=np.array([0.8, 0.5, 0.8]), max_step_m=0.0,
                       native_rate_hz=1000.0)

    def connect(self) -> None:
        self.scene = BoardScene(self.board, mount=self.mount, board_pos_m=self.board_pos_m,
                                width=self.width, height=self.height)

    def close(self) -> None:
        if self.scene is not None:
            self.scene.close()
            self.scene = None

    def _scene(self) -> BoardScene:
        if self.scene is None:
            raise DeviceNotConnected(f"{self.name} (calibration sim): used before connect()")
        return self.scene

    def pose_to(self, q_rad: np.ndarray) -> None:
        """Move the arm to these joint angles at the next tick (thread-safe)."""
        with self._lock:
            self._pending = np.asarray(q_rad, dtype=np.float64).copy()

    def tick(self, now_ns: int) -> None:
        with self._lock:
            q, self._pending = self._pending, None
        if q is not None:
            self._scene().set_arm(q)

    def read(self) -> ArmState:
        scene = self._scene()
        t = scene.tcp_pose()
        quat = np.zeros(4)
        mujoco.mju_mat2Quat(quat, t[:3, :3].reshape(-1))
        return ArmState(
            joint_pos_rad=scene.data.qpos[scene._arm_qpos].copy(),
            joint_vel_rad_s=np.zeros(7), ee_pos_m=t[:3, 3].copy(), ee_quat_wxyz=quat,
            gripper_width_m=0.0, stamp_ns=time.monotonic_ns(), stopped=True,
        )

    def command(self, cmd: EeDeltaCommand) -> EeDeltaCommand:
        raise DeviceError(f"{self.name} (calibration sim): posed by hand (pose_to), it takes "
                          "no motion commands")

    def stop(self) -> None:
        """Nothing moves on its own here."""

    def home(self) -> None:
        self.pose_to(HOME_Q_RAD)


class BoardSceneCamera(CameraDriver):
    """A camera of a `BoardSceneArm`'s scene, rendered at `fps` by the serving loop."""

    def __init__(self, arm: BoardSceneArm, name: str, *, fps: float = 10.0) -> None:
        self.arm = arm
        self.name = name
        self.fps = fps
        self._period_ns = int(1e9 / fps)
        self._next_ns = 0
        self._index = 0
        self._last: Frame | None = None

    @property
    def spec(self) -> CameraSpec:
        return CameraSpec(name=self.name, kind="calibration_sim", width=self.arm.width,
                          height=self.arm.height, fps=self.fps)

    def connect(self) -> None:
        """The arm's connect() builds the scene."""

    def close(self) -> None:
        """The arm owns the scene."""

    def poll(self, now_ns: int) -> Frame | None:
        if now_ns < self._next_ns:
            return None
        self._next_ns = max(self._next_ns + self._period_ns, now_ns)
        self._index += 1
        self._last = Frame(self.name, self.arm._scene().render(self.name), now_ns, self._index)
        return self._last

    def wait_frame(self, timeout_s: float) -> Frame | None:
        deadline = time.monotonic_ns() + int(timeout_s * 1e9)
        while time.monotonic_ns() < deadline:
            frame = self.poll(time.monotonic_ns())
            if frame is not None:
                return frame
            time.sleep(0.001)
        return None

    def latest(self, max_age_ms: float) -> Frame:
        frame = self._last
        if frame is None or (time.monotonic_ns() - frame.stamp_ns) / 1e6 > max_age_ms:
            raise StaleFrame(f"{self.name} (calibration sim): no frame newer than "
                             f"{max_age_ms:.0f} ms")
        return frame


@contextmanager
def serve_board_scene(cfg: RunConfig, board: CharucoBoardConfig, *,
                      board_pos_m: tuple[float, float, float],
                      cameras: tuple[str, ...] = ("wrist",),
                      fps: float = 10.0) -> Iterator[BoardSceneArm]:
    """The board scene's arm and `cameras` behind a real DriverServer on the config's sim
    addresses, served on a thread of its own until the block ends."""
    arm = BoardSceneArm(board, board_pos_m=board_pos_m)
    cams = tuple(BoardSceneCamera(arm, name, fps=fps) for name in cameras)
    ctx = zmq.Context()
    server = DriverServer(ctx, name="arm", arm=arm, cameras=cams,
                          state_address=cfg.robot.state_address,
                          command_address=cfg.robot.command_address,
                          frames_address=cfg.robot.frames_address, state_hz=50.0,
                          safety=cfg.safety,
                          security=lambda address: cfg.socket_security(address, "driver"))
    stop = threading.Event()

    def serve() -> None:
        with arm:  # the scene and its GL context live on this thread
            server.serve(stop)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield arm
    finally:
        stop.set()
        thread.join(timeout=10)
        server.close()
        ctx.term()


def board_poses(count: int, board: CharucoBoardConfig,
                board_pos_m: tuple[float, float, float]) -> tuple[list[np.ndarray], np.ndarray]:
    """Joint configurations whose wrist view holds at least 12 corners of the board at
    `board_pos_m`, and the true tcp_from_camera."""
    scene = BoardScene(board, board_pos_m=board_pos_m)
    detector = BoardDetector(board)
    rng = np.random.default_rng(0)
    spread = np.array([0.6, 0.6, 0.5, 0.6, 1.0, 1.0, 1.0]) * 0.3
    qs = []
    for _ in range(80):
        q = HOME_Q_RAD + rng.uniform(-1, 1, 7) * spread
        scene.set_arm(q)
        d = detector.detect(scene.render("wrist"))
        if d is not None and d.count >= 12:
            qs.append(q)
        if len(qs) == count:
            break
    truth = np.linalg.inv(scene.tcp_pose()) @ scene.camera_pose("wrist")
    scene.close()
    assert len(qs) == count
    return qs, truth


def wait_posed(state: Subscriber, q: np.ndarray) -> None:
    """Until the arm's published joint angles are `q` (the pose took effect)."""
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline:
        msg = state.wait_new("arm_state", timeout_s=1.0)
        if msg is not None and np.allclose(msg.arrays["joint_pos_rad"], q):
            return
    raise AssertionError("the arm never reached the pose")
