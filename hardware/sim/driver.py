"""The MuJoCo Panda as an arm driver, and its cameras as camera drivers.

All of them share one `PandaSim`, so the cameras see the world the arm moves in. Physics
advances in real time: `SimArm.tick()` steps the simulation by the wall-clock time elapsed
since the previous tick, which is what a real arm does whether or not anyone commands it.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from robolearn.actionspace import EeCommand
from robolearn.errors import DeviceNotConnected
from robolearn.hardware.base import (
    ArmDriver,
    ArmSpec,
    ArmState,
    CameraDriver,
    CameraSpec,
    EeDeltaCommand,
    Frame,
    fresh,
)
from robolearn.hardware.registry import driver
from robolearn.sim import PandaSim

log = logging.getLogger(__name__)

# A stalled loop (a slow render, a GC pause) advances physics by at most this much at once,
# so the sim never jumps far ahead of what the controller was told.
_MAX_TICK_S = 0.05


def object_state(sim: PandaSim) -> np.ndarray:
    """The task's object positions, concatenated in name order (a fixed layout per task)."""
    positions = sim.object_positions()
    return np.concatenate([np.asarray(positions[k], dtype=np.float64).ravel()
                           for k in sorted(positions)])


@driver("sim_arm")
class SimArm(ArmDriver):
    def __init__(
        self,
        sim: PandaSim,
        *,
        name: str = "arm",
        max_step_m: float = 0.05,
        max_yaw_step_rad: float = 0.25,
    ) -> None:
        self._sim = sim
        self._name = name
        self._max_step_m = max_step_m
        self._max_yaw_step_rad = max_yaw_step_rad
        self._connected = False
        self._last_tick_ns: int | None = None
        self._stopped = True
        self._gripper_close = 0.0

    @property
    def sim(self) -> PandaSim:
        return self._sim

    @property
    def spec(self) -> ArmSpec:
        return ArmSpec(
            name=self._name,
            kind="sim",
            num_joints=7,
            workspace_min_m=np.asarray(self._sim.workspace_min_m, dtype=np.float64),
            workspace_max_m=np.asarray(self._sim.workspace_max_m, dtype=np.float64),
            max_step_m=self._max_step_m,
            native_rate_hz=1000.0,
        )

    @property
    def description(self) -> str:
        return self._sim.description

    def connect(self) -> None:
        self._connected = True
        self._last_tick_ns = time.monotonic_ns()

    def close(self) -> None:
        self._connected = False

    def _require(self) -> None:
        if not self._connected:
            raise DeviceNotConnected(
                f"{self._name} (sim): used before connect(); open the driver with `with`"
            )

    def tick(self, now_ns: int) -> None:
        self._require()
        assert self._last_tick_ns is not None
        dt_s = (now_ns - self._last_tick_ns) / 1e9
        if dt_s <= 0:
            return
        if dt_s > _MAX_TICK_S:
            log.debug("%s: loop stalled %.1f ms; advancing %.0f ms", self._name,
                      dt_s * 1e3, _MAX_TICK_S * 1e3)
            dt_s = _MAX_TICK_S
        self._sim.advance(dt_s)
        self._last_tick_ns = now_ns

    def read(self) -> ArmState:
        self._require()
        s = self._sim.state()
        return ArmState(
            joint_pos_rad=np.asarray(s.joint_pos_rad, dtype=np.float64),
            joint_vel_rad_s=np.asarray(s.joint_vel_rad_s, dtype=np.float64),
            ee_pos_m=np.asarray(s.ee_pos_m, dtype=np.float64),
            ee_quat_wxyz=np.asarray(s.ee_quat_wxyz, dtype=np.float64),
            gripper_width_m=float(s.gripper_width_m),
            stamp_ns=time.monotonic_ns(),
            stopped=self._stopped,
            task=self._sim.task,
            task_success=bool(self._sim.success()),
            object_state=object_state(self._sim),
        )

    def command(self, cmd: EeDeltaCommand) -> EeDeltaCommand:
        self._require()
        delta = np.clip(np.asarray(cmd.delta_xyz_m, dtype=np.float64),
                        -self._max_step_m, self._max_step_m)
        ee = np.asarray(self._sim.state().ee_pos_m, dtype=np.float64)
        target = np.clip(ee + delta, self._sim.workspace_min_m, self._sim.workspace_max_m)
        applied = target - ee
        yaw = float(np.clip(cmd.delta_yaw_rad, -self._max_yaw_step_rad, self._max_yaw_step_rad))
        grip = float(np.clip(cmd.gripper_close, 0.0, 1.0))
        self._sim.apply_command(EeCommand(delta_xyz_m=applied, delta_yaw_rad=yaw,
                                          gripper_close=grip))
        self._stopped = False
        self._gripper_close = grip
        return EeDeltaCommand(delta_xyz_m=applied, delta_yaw_rad=yaw, gripper_close=grip)

    def stop(self) -> None:
        self._require()
        self._sim.hold()
        self._stopped = True

    def home(self) -> None:
        self._require()
        self._sim.home()

    def reset_task(self, seed: int | None) -> None:
        self._require()
        self._sim.reset(seed)
        self._stopped = True
        self._last_tick_ns = time.monotonic_ns()

    def continue_task(self, task: str) -> None:
        self._require()
        self._sim.continue_episode(task)

    def expert_action(self) -> np.ndarray | None:
        return np.asarray(self._sim.expert_action(), dtype=np.float32)


@driver("sim_camera")
class SimCamera(CameraDriver):
    """Renders one sim camera at its configured rate, on demand from the server loop."""

    def __init__(self, sim: PandaSim, name: str, *, fps: float = 30.0) -> None:
        self._sim = sim
        self._name = name
        self._period_ns = int(1e9 / fps)
        self._fps = fps
        self._next_ns = 0
        self._index = 0
        self._last: Frame | None = None
        self._connected = False

    @property
    def spec(self) -> CameraSpec:
        h, w = self._sim.image_size
        return CameraSpec(name=self._name, kind="sim", width=w, height=h, fps=self._fps)

    def connect(self) -> None:
        self._connected = True

    def close(self) -> None:
        self._connected = False

    def _render(self, now_ns: int) -> Frame:
        image = self._sim.render(self._name)
        self._index += 1
        self._last = Frame(camera=self._name, image=image, stamp_ns=now_ns,
                           frame_index=self._index)
        return self._last

    def poll(self, now_ns: int) -> Frame | None:
        if not self._connected:
            raise DeviceNotConnected(f"{self._name} (sim camera): poll() before connect()")
        if now_ns < self._next_ns:
            return None
        # Drift-free: the next frame is due one period after this one was due, unless the
        # loop fell a whole period behind.
        self._next_ns = max(self._next_ns + self._period_ns, now_ns)
        return self._render(now_ns)

    def wait_frame(self, timeout_s: float) -> Frame | None:
        deadline = time.monotonic_ns() + int(timeout_s * 1e9)
        while True:
            now = time.monotonic_ns()
            frame = self.poll(now)
            if frame is not None:
                return frame
            if now >= deadline:
                return None
            time.sleep(min((self._next_ns - now) / 1e9, (deadline - now) / 1e9))

    def latest(self, max_age_ms: float) -> Frame:
        return fresh(self._last, max_age_ms, f"{self._name} (sim camera)")


