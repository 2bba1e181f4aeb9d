"""The calibration board scene served as a driver: a hand-posed arm and its cameras behind
the real `hardware.server.DriverServer`, so live calibration is tested over the wire."""

from __future__ import annotations

import threading
import time
from typing import Literal

import mujoco
import numpy as np

from calibration.sim import BoardScene
from hardware.base import (
    ArmDriver,
    ArmSpec,
    ArmState,
    CameraDriver,
    CameraSpec,
    EeDeltaCommand,
    Frame,
)
from robolearn.config.hardware import CharucoBoardConfig
from robolearn.errors import DeviceError, DeviceNotConnected, StaleFrame
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
