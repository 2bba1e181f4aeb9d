"""`PandaSim`: the MuJoCo Franka Panda with an end-effector controller, tasks and cameras.

Control: every 2 ms physics substep a damped-least-squares differential IK turns the
end-effector error (position + gripper-down orientation with a yaw) into joint velocities,
limited to Franka's published velocity limits and kept inside the published position limits
with a margin. The joint position target is the integral of those velocities; each joint has
a position servo plus a velocity servo (MuJoCo's implicit integrator keeps the stiff gains
stable), with gravity compensated as on the real arm.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

os.environ.setdefault("MUJOCO_GL", "egl")
import mujoco

from robolearn.actionspace import ActionScale, EeCommand, action_to_command
from robolearn.errors import ConfigError
from robolearn.sim import model as scene
from robolearn.sim.tasks import TASK_REGISTRY, TASKS

log = logging.getLogger(__name__)

CAMERAS = ("front", "wrist")
"""The cameras a sim renders unless told otherwise."""
SIM_CAMERAS = ("front", "wrist", "side")
"""Every camera of the scene: `side` looks across the workspace from the robot's right,
the second fixed view that fixes depth along the front camera's line of sight."""
PHYSICS_DT_S = 0.002
_HOLD_BRAKE_S = 0.03  # pure velocity braking after hold() before the position is latched
_LIMIT_MARGIN_RAD = 0.03
_MAX_RENDER_PX = 256
# Gripper-down orientation at yaw 0: hand x = world x, fingers close along world y.
_R_DOWN = np.array([[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, -1.0]])
_YAW_LIMIT_RAD = 2.0

_DEFAULT_SCALE = ActionScale()

# An EGL context works only in the thread that first made it current, so each thread keeps
# its own renderers (a driver thread and a test or replay thread in one process each render).
_RENDERERS = threading.local()
# The renderers alive, with their threads, to close before EGL's own atexit terminates the
# display: freed after that (at interpreter teardown) each prints an ignored EGLError. Weak:
# a thread's renderers still go when the thread does.
_ALL_RENDERERS: list[tuple[weakref.ref[threading.Thread], weakref.ref[mujoco.Renderer]]] = []


def _close_renderers() -> None:
    """At exit: close the renderers of this thread and of threads that ended (one of a
    daemon thread still running may be in use, and stays as it is)."""
    me = threading.current_thread()
    for thread_ref, renderer_ref in _ALL_RENDERERS:
        thread, renderer = thread_ref(), renderer_ref()
        if renderer is not None and (thread is me or thread is None or not thread.is_alive()):
            renderer.close()


def _renderer(height: int, width: int) -> mujoco.Renderer:
    """One offscreen renderer per image size per thread (EGL contexts are not cheap)."""
    cache: dict[tuple[int, int], mujoco.Renderer] = _RENDERERS.__dict__.setdefault("by_size", {})
    key = (height, width)
    if key not in cache:
        r = mujoco.Renderer(scene.shared_model(), height=height, width=width)
        for flag in (
            mujoco.mjtRndFlag.mjRND_SHADOW,
            mujoco.mjtRndFlag.mjRND_REFLECTION,
            mujoco.mjtRndFlag.mjRND_SKYBOX,
            mujoco.mjtRndFlag.mjRND_FOG,
        ):
            r.scene.flags[flag] = False
        cache[key] = r
        if not _ALL_RENDERERS:
            # Registered after EGL's (the first renderer loaded it), so run before it.
            atexit.register(_close_renderers)
        _ALL_RENDERERS[:] = [(t, w) for t, w in _ALL_RENDERERS if w() is not None]
        _ALL_RENDERERS.append((weakref.ref(threading.current_thread()), weakref.ref(r)))
    return cache[key]


def _scene_option() -> mujoco.MjvOption:
    option = mujoco.MjvOption()
    option.geomgroup[:] = [1, 1, 1, 0, 0, 0]  # hide collision proxies and sites
    return option


def _rot_z(yaw: float) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


@dataclass(frozen=True)
class SimState:
    """Measured state of the simulated arm (base frame = world frame, metres, radians)."""

    joint_pos_rad: np.ndarray
    joint_vel_rad_s: np.ndarray
    ee_pos_m: np.ndarray
    ee_quat_wxyz: np.ndarray
    gripper_width_m: float
    time_s: float


class PandaSim:
    """A simulated Franka Panda running one of `TASKS`.

    Args:
        task: one of `TASKS`.
        image_size: (height, width) of rendered images, pixels (at most 256 each).
        cameras: which of "front" and "wrist" `camera_names` lists.
        scale: physical size of a full-scale action.
        control_hz: rate of `step()`; one step advances 1 / control_hz of physics.
        render: False skips renderer creation (fast, headless tests); render() then raises.

    Raises:
        ConfigError: unknown task or camera, or an image size out of range.
    """

    workspace_min_m = np.array([0.25, -0.35, 0.015])
    workspace_max_m = np.array([0.75, 0.35, 0.55])

    def __init__(
        self,
        task: str,
        *,
        image_size: tuple[int, int] = (84, 84),
        cameras: Sequence[str] = CAMERAS,
        scale: ActionScale = _DEFAULT_SCALE,
        control_hz: float = 10.0,
        render: bool = True,
    ) -> None:
        if task not in TASK_REGISTRY:
            raise ConfigError(f"PandaSim: unknown task {task!r}; choose one of {list(TASKS)}")
        bad = [c for c in cameras if c not in SIM_CAMERAS]
        if bad or not cameras:
            raise ConfigError(
                f"PandaSim: unknown cameras {bad or list(cameras)}; choose from "
                f"{list(SIM_CAMERAS)}"
            )
        h, w = (int(image_size[0]), int(image_size[1]))
        if not (8 <= h <= _MAX_RENDER_PX and 8 <= w <= _MAX_RENDER_PX):
            raise ConfigError(
                f"PandaSim: image_size {image_size} out of range 8..{_MAX_RENDER_PX} pixels"
            )
        if not control_hz > 0:
            raise ConfigError(f"PandaSim: control_hz must be > 0, got {control_hz}")
        self._task_name = task
        self._task = TASK_REGISTRY[task]
        self._image_size = (h, w)
        self._cameras = tuple(cameras)
        self.scale = scale
        self.control_hz = float(control_hz)
        self._render_enabled = render

        self.model = scene.shared_model()
        self.data = mujoco.MjData(self.model)
        m = self.model
        self._tcp = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_SITE, "tcp")
        self._arm_qpos = np.array([m.jnt_qposadr[m.joint(f"joint{i}").id] for i in range(1, 8)])
        self._arm_dof = np.array([m.jnt_dofadr[m.joint(f"joint{i}").id] for i in range(1, 8)])
        self._finger_qpos = np.array(
            [m.jnt_qposadr[m.joint(n).id] for n in ("finger_left", "finger_right")]
        )
        self._jacp = np.zeros((3, m.nv))
        self._jacr = np.zeros((3, m.nv))
        self._camera_ids = {c: m.camera(c).id for c in SIM_CAMERAS}
        self._scene_option = _scene_option()

        self._expert = None
        self.reset(seed=0)

    # ------------------------------------------------------------------ pickling
    def __getstate__(self) -> dict[str, object]:
        """A copy of the world for a checkpoint (long benchmarks resume from one): the
        physics state, the controller's targets and the episode RNG travel; the task's
        functions and the scene option are rebuilt on load."""
        state = self.__dict__.copy()
        for name in ("_task", "_expert", "_scene_option"):
            state.pop(name)
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        """Restore a pickled world. The scripted expert starts afresh (its waypoint phase
        is not kept)."""
        self.__dict__.update(state)
        self._task = TASK_REGISTRY[self._task_name]
        self._scene_option = _scene_option()
        self._expert = self._task.make_expert(self)

    # ------------------------------------------------------------------ properties
    @property
    def task(self) -> str:
        return self._task_name

    @property
    def description(self) -> str:
        return self._task.description

    @property
    def camera_names(self) -> tuple[str, ...]:
        return self._cameras

    @property
    def image_size(self) -> tuple[int, int]:
        return self._image_size

    @property
    def ee_target_m(self) -> np.ndarray:
        """The controller's current end-effector position target (inside the workspace box)."""
        return self._target_pos.copy()

    # ------------------------------------------------------------------ episode
    def reset(self, seed: int | None = None) -> None:
        """Arm to home, gripper open, task objects randomised from `seed`, expert reset."""
        self._rng = np.random.default_rng(seed)
        d = self.data
        mujoco.mj_resetData(self.model, d)
        d.qpos[self._arm_qpos] = scene.HOME_Q_RAD
        d.qpos[self._finger_qpos] = scene.GRIPPER_MAX_WIDTH_M / 2
        for name, pos in scene.PARK_POS.items():
            self._place_body(name, pos)
        self._task.reset(self, self._rng)
        mujoco.mj_forward(self.model, d)
        self._q_des = scene.HOME_Q_RAD.copy()
        self._qd_des = np.zeros(7)
        self._target_pos = self.data.site_xpos[self._tcp].copy()
        self._target_yaw = self._measured_yaw()
        self._joint_goal: np.ndarray | None = None
        self._joint_rate: np.ndarray | None = None
        self._brake_until_s = -1.0
        self._gripper_target = scene.GRIPPER_MAX_WIDTH_M
        self._gripper_cmd = scene.GRIPPER_MAX_WIDTH_M
        self._write_ctrl()
        self._expert = self._task.make_expert(self)

    def continue_episode(self, task: str) -> None:
        """Switch to `task` without touching the world (reset-free training): objects, arm
        and gripper stay where the last episode left them; only the success test, the
        description and the scripted expert change.

        Raises:
            ConfigError: unknown task, or one whose scene differs from the current task's
                (its objects were never placed, e.g. reach -> drawer_open).
        """
        new = TASK_REGISTRY.get(task)
        if new is None:
            raise ConfigError(f"PandaSim: unknown task {task!r}; choose one of {list(TASKS)}")
        if new.name != self._task.name and (not new.scene or new.scene != self._task.scene):
            raise ConfigError(
                f"PandaSim: cannot continue from {self._task.name!r} to {task!r} without a "
                "reset: they do not share a scene; use a reset-free pair such as "
                "drawer_open/drawer_close or bin_a_to_b/bin_b_to_a"
            )
        self._task_name = task
        self._task = new
        self._expert = new.make_expert(self)

    def _place_body(self, name: str, pos: np.ndarray, yaw: float = 0.0) -> None:
        """Put a mocap body or the free cube at `pos` with a yaw about z."""
        m, d = self.model, self.data
        body = m.body(name)
        quat = np.array([np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)])
        if m.body_mocapid[body.id] >= 0:
            d.mocap_pos[m.body_mocapid[body.id]] = pos
            d.mocap_quat[m.body_mocapid[body.id]] = quat
        else:
            adr = m.jnt_qposadr[m.body_jntadr[body.id]]
            d.qpos[adr : adr + 3] = pos
            d.qpos[adr + 3 : adr + 7] = quat
            dof = m.jnt_dofadr[m.body_jntadr[body.id]]
            d.qvel[dof : dof + 6] = 0.0

    def set_joint(self, name: str, value: float) -> None:
        """Set a scalar joint (e.g. "drawer_slide") directly; for task initialisation."""
        self.data.qpos[self.model.jnt_qposadr[self.model.joint(name).id]] = value

    def joint_value(self, name: str) -> float:
        return float(self.data.qpos[self.model.jnt_qposadr[self.model.joint(name).id]])

    # ------------------------------------------------------------------ commands
    def apply_command(self, cmd: EeCommand) -> None:
        """Target = measured ee position + delta (clipped to the workspace box), gripper-down
        orientation with yaw, gripper target width from `cmd.gripper_close` (0 open, 1 closed)."""
        delta = np.asarray(cmd.delta_xyz_m, dtype=np.float64).reshape(3)
        if not (
            np.all(np.isfinite(delta))
            and np.isfinite(cmd.delta_yaw_rad)
            and np.isfinite(cmd.gripper_close)
        ):
            raise ValueError(f"PandaSim.apply_command: non-finite command {cmd}")
        ee = self.data.site_xpos[self._tcp]
        self._target_pos = np.clip(ee + delta, self.workspace_min_m, self.workspace_max_m)
        if cmd.delta_yaw_rad != 0.0:
            self._target_yaw = float(
                np.clip(self._measured_yaw() + cmd.delta_yaw_rad, -_YAW_LIMIT_RAD, _YAW_LIMIT_RAD)
            )
        elif self._joint_goal is not None:
            # Back from joint control (homing, replay): hold the yaw the joints left, not the
            # one targeted before the joint motion.
            self._target_yaw = self._measured_yaw()
        close = float(np.clip(cmd.gripper_close, 0.0, 1.0))
        self._gripper_target = (1.0 - close) * scene.GRIPPER_MAX_WIDTH_M
        self._joint_goal = None
        self._joint_rate = None
        self._brake_until_s = -1.0

    def set_ee_target(self, pos_m: np.ndarray, yaw_rad: float | None = None) -> None:
        """Absolute end-effector target (clipped to the workspace box)."""
        self._target_pos = np.clip(
            np.asarray(pos_m, dtype=np.float64), self.workspace_min_m, self.workspace_max_m
        )
        if yaw_rad is not None:
            self._target_yaw = float(np.clip(yaw_rad, -_YAW_LIMIT_RAD, _YAW_LIMIT_RAD))
        self._joint_goal = None
        self._joint_rate = None
        self._brake_until_s = -1.0

    def set_gripper(self, close: float) -> None:
        self._gripper_target = (1.0 - float(np.clip(close, 0.0, 1.0))) * scene.GRIPPER_MAX_WIDTH_M

    def set_joint_targets(self, q: np.ndarray) -> None:
        """Joint-space goal (clipped inside the published limits); reached at the joint
        velocity limits. The next apply_command() returns to end-effector control."""
        q = np.asarray(q, dtype=np.float64).reshape(7)
        if not np.all(np.isfinite(q)):
            raise ValueError(f"PandaSim.set_joint_targets: non-finite target {q.tolist()}")
        self._joint_goal = np.clip(
            q, scene.Q_MIN_RAD + _LIMIT_MARGIN_RAD, scene.Q_MAX_RAD - _LIMIT_MARGIN_RAD
        )
        self._joint_rate = None
        self._brake_until_s = -1.0

    def track_joint_waypoint(self, q: np.ndarray, duration_s: float) -> None:
        """Move the joint target to `q` at constant velocity over `duration_s` (capped at
        the velocity limits), then hold it.

        Joint-mode replay follows a logged joint path with this: the target moves with the
        log instead of approaching it exponentially as `set_joint_targets` does, so the arm
        trails the logged path by the servo lag only. The next apply_command() returns to
        end-effector control.
        """
        if not duration_s > 0:
            raise ValueError(f"PandaSim.track_joint_waypoint: duration_s must be > 0, "
                             f"got {duration_s}")
        self.set_joint_targets(q)
        assert self._joint_goal is not None
        self._joint_rate = np.minimum(np.abs(self._joint_goal - self._q_des) / duration_s,
                                      scene.DQ_MAX_RAD_S)

    def home(self) -> None:
        self.set_joint_targets(scene.HOME_Q_RAD)

    def hold(self) -> None:
        """Stop: brake every joint to zero velocity, then hold the pose reached; the
        gripper keeps its target."""
        self._joint_goal = None
        self._joint_rate = None
        self._brake_until_s = self.data.time + _HOLD_BRAKE_S
        self._q_des = self.data.qpos[self._arm_qpos].copy()
        self._target_pos = np.clip(
            self.data.site_xpos[self._tcp].copy(), self.workspace_min_m, self.workspace_max_m
        )
        self._target_yaw = self._measured_yaw()

    def step(self, action: np.ndarray) -> None:
        self.apply_command(action_to_command(action, self.scale))
        self.advance(1.0 / self.control_hz)

    def advance(self, dt_s: float) -> None:
        """Run physics for `dt_s` seconds (rounded to whole 2 ms substeps, at least one)."""
        n = max(1, round(dt_s / self.model.opt.timestep))
        for _ in range(n):
            self._control_substep()
            mujoco.mj_step(self.model, self.data)

    # ------------------------------------------------------------------ controller
    def _measured_yaw(self) -> float:
        r = self.data.site_xmat[self._tcp].reshape(3, 3)
        return float(np.arctan2(r[1, 0], r[0, 0]))

    def _control_substep(self) -> None:
        d, dt = self.data, self.model.opt.timestep
        q = d.qpos[self._arm_qpos]
        step = scene.GRIPPER_SPEED_M_S * dt  # the hand's finger speed limit
        self._gripper_cmd += float(np.clip(self._gripper_target - self._gripper_cmd, -step, step))
        if self._brake_until_s >= 0.0:
            if d.time < self._brake_until_s:
                # Braking: the position servo follows the measured pose so only the velocity
                # servo acts; this stops faster than a stiff spring back to the hold() pose.
                self._q_des = q.copy()
                self._qd_des = np.zeros(7)
                self._write_ctrl()
                return
            # Stopped: hold the joint pose reached (no IK null-space drift while holding).
            self._brake_until_s = -1.0
            self._joint_goal = q.copy()
            self._q_des = q.copy()
            self._target_pos = np.clip(
                d.site_xpos[self._tcp].copy(), self.workspace_min_m, self.workspace_max_m
            )
            self._target_yaw = self._measured_yaw()
        if self._joint_goal is not None and self._joint_rate is not None:
            # Waypoint tracking: constant velocity toward the goal, never past it.
            step = self._joint_rate * dt
            qd = np.clip(self._joint_goal - self._q_des, -step, step) / dt
        elif self._joint_goal is not None:
            # Proportional approach at half the velocity limits (a gentle replay/homing speed).
            qd = np.clip(
                5.0 * (self._joint_goal - self._q_des),
                -scene.DQ_MAX_RAD_S * 0.5,
                scene.DQ_MAX_RAD_S * 0.5,
            )
        else:
            qd = self._ik_velocity(q)
        # Keep the target inside the published limits with a margin.
        lo = scene.Q_MIN_RAD + _LIMIT_MARGIN_RAD
        hi = scene.Q_MAX_RAD - _LIMIT_MARGIN_RAD
        q_next = np.clip(self._q_des + qd * dt, lo, hi)
        qd = (q_next - self._q_des) / dt
        self._q_des = q_next
        self._qd_des = qd
        self._write_ctrl()

    def _ik_velocity(self, q: np.ndarray) -> np.ndarray:
        m, d = self.model, self.data
        p = d.site_xpos[self._tcp]
        r = d.site_xmat[self._tcp].reshape(3, 3)
        r_des = _rot_z(self._target_yaw) @ _R_DOWN
        e_rot = 0.5 * (
            np.cross(r[:, 0], r_des[:, 0])
            + np.cross(r[:, 1], r_des[:, 1])
            + np.cross(r[:, 2], r_des[:, 2])
        )
        v = 20.0 * (self._target_pos - p)
        speed = np.linalg.norm(v)
        if speed > 1.0:
            v *= 1.0 / speed
        w = np.clip(10.0 * e_rot, -2.0, 2.0)
        mujoco.mj_jacSite(m, d, self._jacp, self._jacr, self._tcp)
        jac = np.vstack([self._jacp[:, self._arm_dof], self._jacr[:, self._arm_dof]])
        jjt = jac @ jac.T + (0.05**2) * np.eye(6)
        j_pinv = jac.T @ np.linalg.solve(jjt, np.eye(6))
        qd = j_pinv @ np.concatenate([v, w])
        # Null space: drift toward the home posture so the elbow stays up and away from limits.
        null = np.eye(7) - j_pinv @ jac
        q_home = scene.HOME_Q_RAD.copy()
        q_home[6] = q[6]  # joint 7 is used by yaw
        qd += null @ (1.0 * (q_home - q))
        over = np.max(np.abs(qd) / (scene.DQ_MAX_RAD_S * 0.9))
        if over > 1.0:
            qd /= over
        return qd

    def _write_ctrl(self) -> None:
        c = self.data.ctrl
        c[0:7] = self._q_des
        c[7:14] = self._qd_des
        c[14] = self._gripper_cmd

    # ------------------------------------------------------------------ observation
    def state(self) -> SimState:
        d = self.data
        quat = np.zeros(4)
        mujoco.mju_mat2Quat(quat, d.site_xmat[self._tcp])
        return SimState(
            joint_pos_rad=d.qpos[self._arm_qpos].copy(),
            joint_vel_rad_s=d.qvel[self._arm_dof].copy(),
            ee_pos_m=d.site_xpos[self._tcp].copy(),
            ee_quat_wxyz=quat,
            gripper_width_m=self.gripper_width(),
            time_s=float(d.time),
        )

    def ee_pos(self) -> np.ndarray:
        return self.data.site_xpos[self._tcp].copy()

    def gripper_width(self) -> float:
        return float(
            np.clip(np.sum(self.data.qpos[self._finger_qpos]), 0.0, scene.GRIPPER_MAX_WIDTH_M)
        )

    def proprio(self) -> np.ndarray:
        """[ee_pos (3), ee_quat_wxyz (4), gripper width (1)] as float32."""
        s = self.state()
        return np.concatenate([s.ee_pos_m, s.ee_quat_wxyz, [s.gripper_width_m]]).astype(np.float32)

    def body_pos(self, name: str) -> np.ndarray:
        return self.data.xpos[self.model.body(name).id].copy()

    def site_pos(self, name: str) -> np.ndarray:
        return self.data.site_xpos[self.model.site(name).id].copy()

    def object_positions(self) -> dict[str, np.ndarray]:
        """World positions of the task's objects (e.g. "cube", "goal", "drawer_handle")."""
        return self._task.object_positions(self)

    def success(self) -> bool:
        return bool(self._task.success(self))

    def expert_action(self) -> np.ndarray:
        """The scripted expert's action for the current state, float32 in [-1, 1]."""
        return self._expert.act(self)

    def render(self, camera: str) -> np.ndarray:
        """RGB image uint8 [H, W, 3] from `camera` (one of those this sim renders)."""
        if camera not in self._cameras:
            raise ConfigError(
                f"PandaSim.render: camera {camera!r} not enabled; choose from {list(self._cameras)}"
            )
        if not self._render_enabled:
            raise ConfigError("PandaSim.render: this sim was built with render=False")
        r = _renderer(*self._image_size)
        r.update_scene(self.data, camera=self._camera_ids[camera], scene_option=self._scene_option)
        return r.render()

    def close(self) -> None:
        """Nothing process-wide is released: the renderer is shared by every sim of this size."""
