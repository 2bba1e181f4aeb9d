"""A Gymnasium environment over the drivers, reached only through the wire protocol.

Observations: one uint8 HxWx3 image per camera plus `proprio` (float32: end-effector
position (3), orientation wxyz (4), gripper width (1)). Each observation also carries
`joint_pos` (float32, the arm's measured joint positions in radians, as many as the configured
arm has) for the episode record (joint-mode replay follows it; policies do not read it). A
camera configured with `depth: true` also adds `<camera>_depth_mm` (uint16 HxW millimetres
aligned to its image, 0 = no reading). Every key is in `observation_space`, with the finite
bounds of `robolearn.envs.spaces` (shared with the in-process `robolearn/<Task>-v0` envs), so
the env passes Gymnasium's `check_env`. Actions: the normalised end-effector
delta + gripper of `robolearn.actionspace`. `step()` sends the filtered command and then
waits for the next tick of the fixed-rate scheduler, so an agent written against Gymnasium
runs at the robot's rate with no extra code. The same class drives the sim and a real rig.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import zmq
from gymnasium.envs.registration import EnvSpec

from robolearn.actionspace import EeCommand
from robolearn.actor.scheduler import RateScheduler
from robolearn.config import RunConfig, SimRobotConfig
from robolearn.config.sockets import ACTOR, identity
from robolearn.envs import ROBOT_ID
from robolearn.envs.spaces import (
    DIRECTION_DIM,
    PROPRIO_DIM,  # noqa: F401 - re-exported: the actor's callers import it from here
    STATE_DIMS,
    arm_joint_count,
    depth_space,
    image_space,
    joint_space,
    proprio_space,
    state_space,
)
from robolearn.errors import ConfigError, PeerTimeout, RobolearnError, StaleFrame
from robolearn.protocol import Message, Requester, Subscriber
from robolearn.protocol.messages import ArmState, CameraFrame, Reply
from robolearn.protocol.observation import Observation
from robolearn.safety import FilterResult, SafetyFilter

log = logging.getLogger(__name__)


class DriverError(RobolearnError):
    """A driver refused or failed a command the actor needs."""


@dataclass(frozen=True)
class StepTiming:
    """Per-step timing, all in nanoseconds of time.monotonic_ns()."""

    wake_ns: int  # when the tick started (observation read)
    jitter_ns: int  # wake time minus the tick's deadline
    period_ns: int  # wake time minus the previous wake time
    latency_ns: int  # observation read -> command sent
    max_frame_age_ns: int  # oldest image used in this step's observation


def proprio_from_state(state: ArmState) -> np.ndarray:
    return np.concatenate([
        state.ee_pos_m, state.ee_quat_wxyz, [state.gripper_width_m]
    ]).astype(np.float32)


class RobotEnv(gym.Env):
    metadata = {"render_modes": []}  # noqa: RUF012 - gymnasium's convention

    def __init__(self, cfg: RunConfig, ctx: zmq.Context[Any] | None = None, *,
                 sender: str | None = None) -> None:
        """Args:
            cfg: the run config (drivers' addresses, cameras, limits).
            ctx: the ZeroMQ context to open sockets in; None: the env makes its own and
                terminates it on close() (`gym.make("robolearn/Robot-v0", cfg=cfg)`).
            sender: the wire identity of this env's commands; None: the actor's (its
                robot's, in a fleet).
        """
        super().__init__()
        # A driver runs in real time, so no two episodes match: say so, as gym.make would,
        # so check_env judges this env as what it is (`robolearn/Robot-v0`).
        self.spec = EnvSpec(ROBOT_ID, entry_point=f"{__name__}:RobotEnv", nondeterministic=True,
                            kwargs={"cfg": cfg, "sender": sender})
        self._own_ctx = ctx is None
        ctx = zmq.Context() if ctx is None else ctx
        self._ctx = ctx
        self._closed = False
        self.cfg = cfg
        self.scale = cfg.actor.action_scale
        self.camera_names = tuple(c.name for c in cfg.cameras)
        # Cameras whose frames must carry aligned depth (only RealSense has the setting).
        self.depth_cameras = frozenset(c.name for c in cfg.cameras if getattr(c, "depth", False))
        self.safety = SafetyFilter(cfg.safety, self.scale)
        self.scheduler = RateScheduler(cfg.actor.control_hz, cfg.actor.realtime_priority)
        self._max_age_ns = int(cfg.actor.max_obs_age_ms * 1e6)
        self._cmd_timeout_s = cfg.actor.command_timeout_s
        robot = cfg.robot
        self._state_sub = Subscriber(ctx, robot.state_address, types=("arm_state",),
                                     security=cfg.socket_security(robot.state_address, "actor"))
        frame_addresses: dict[str, str] = {}
        for c in cfg.cameras:
            if c.kind != "sim":
                frame_addresses[c.name] = c.address
            elif isinstance(robot, SimRobotConfig):
                frame_addresses[c.name] = robot.frames_address
            else:  # the config refuses this pairing; never subscribe to nothing
                raise ConfigError(f"camera {c.name!r} is rendered by the sim, but the robot "
                                  f"is {robot.kind!r}")
        self._frame_subs: dict[str, Subscriber] = {}
        for address in sorted(set(frame_addresses.values())):
            self._frame_subs[address] = Subscriber(
                ctx, address, types=("camera_frame",),
                security=cfg.socket_security(address, "actor"))
        self._cam_address = frame_addresses
        self._cmd = Requester(ctx, robot.command_address,
                              identity(cfg, ACTOR) if sender is None else sender,
                              security=cfg.socket_security(robot.command_address, "actor"))
        self.description = ""
        # The actor's own e-stop latch, set by its control thread the instant an operator
        # presses e-stop: from then on nothing is sent, even before the driver's state
        # shows the latch.
        self.local_estop = threading.Event()
        self._last_state: ArmState | None = None
        # Appended to obs["state"] when set: reset-free runs put the direction one-hot here,
        # so the one shared policy (and the learner) knows which way it is going.
        self.state_suffix: np.ndarray | None = None
        self.last_timing: StepTiming | None = None
        self._obs_read_ns = 0
        self._sent_ns = 0
        self._max_frame_age_ns = 0

        sizes = {c.name: c.image_hw for c in cfg.cameras}
        spaces: dict[str, gym.Space[Any]] = {
            name: image_space(h, w) for name, (h, w) in sizes.items()
        }
        for name in sorted(self.depth_cameras):
            spaces[f"{name}_depth_mm"] = depth_space(*sizes[name])
        spaces["proprio"] = proprio_space()
        spaces["joint_pos"] = joint_space(
            arm_joint_count(cfg.robot.kind, getattr(cfg.robot, "model", None)))
        if cfg.actor.observe_state:
            spaces["state"] = state_space(
                STATE_DIMS[cfg.robot.task], DIRECTION_DIM if cfg.reset_free.enabled else 0)
        self.observation_space = gym.spaces.Dict(spaces)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (self.scale.action_dim,), np.float32)

    # -- wire helpers -------------------------------------------------------------------
    def request(self, command: str, body: dict[str, Any] | None = None,
                arrays: dict[str, np.ndarray] | None = None,
                timeout_s: float | None = None) -> Message:
        """Send an arm_command and return the driver's reply (ok or not).

        Raises:
            PeerTimeout: the driver did not answer in time.
        """
        return self._cmd.request("arm_command", {"command": command, **(body or {})}, arrays,
                                 timeout_s=timeout_s or self._cmd_timeout_s)

    def _poll(self) -> None:
        self._state_sub.poll()
        for sub in self._frame_subs.values():
            sub.poll()

    def latest_state(self) -> ArmState | None:
        self._state_sub.poll()
        msg = self._state_sub.latest("arm_state")
        return None if msg is None else ArmState.from_message(msg)

    def _latest_frame(self, camera: str) -> CameraFrame | None:
        msg = self._frame_subs[self._cam_address[camera]].latest("camera_frame", key=camera)
        return None if msg is None else CameraFrame.from_message(msg)

    def wait_ready(self, timeout_s: float = 30.0, newer_than_ns: int = 0) -> None:
        """Wait until state and every camera have produced a message newer than a time.

        Raises:
            StaleFrame: something stayed silent for timeout_s (names what).
        """
        deadline = time.monotonic() + timeout_s
        while True:
            self._poll()
            missing = []
            st = self._state_sub.latest("arm_state")
            if st is None or ArmState.from_message(st).stamp_ns <= newer_than_ns:
                missing.append(f"arm state ({self.cfg.robot.state_address})")
            for name in self.camera_names:
                f = self._latest_frame(name)
                if f is None or f.stamp_ns <= newer_than_ns:
                    missing.append(f"camera {name} ({self._cam_address[name]})")
            if not missing:
                return
            if time.monotonic() > deadline:
                raise StaleFrame(
                    f"no data within {timeout_s:.0f} s from: {', '.join(missing)}; are the "
                    "drivers running (`robolearn driver CONFIG`) at these addresses?"
                )
            time.sleep(0.005)

    def observe(self) -> dict[str, np.ndarray]:
        """The newest observation; refuses data older than actor.max_obs_age_ms.

        Raises:
            StaleFrame: state or a camera frame is too old or missing.
        """
        self._poll()
        now = time.monotonic_ns()
        msg = self._state_sub.latest("arm_state")
        state = None if msg is None else ArmState.from_message(msg)
        if state is None or now - state.stamp_ns > self._max_age_ns:
            raise StaleFrame(f"arm state is stale or missing (limit "
                             f"{self.cfg.actor.max_obs_age_ms:.0f} ms)")
        images: dict[str, np.ndarray] = {}
        depth: dict[str, np.ndarray] = {}
        oldest = 0
        for name in self.camera_names:
            f = self._latest_frame(name)
            if f is None:
                raise StaleFrame(f"camera {name}: no frame yet")
            age = now - f.stamp_ns
            if age > self._max_age_ns:
                raise StaleFrame(f"camera {name}: newest frame is {age / 1e6:.0f} ms old, "
                                 f"limit {self.cfg.actor.max_obs_age_ms:.0f} ms")
            oldest = max(oldest, age)
            # A copy: the subscriber keeps the frame as its latest, and two observations
            # may see the same one; what an env returns is the caller's to keep.
            images[name] = f.image.copy()
            if name in self.depth_cameras:
                if f.depth_mm is None:
                    raise DriverError(f"camera {name}: configured with depth but its frames "
                                      "carry none; is its driver running this config?")
                depth[name] = f.depth_mm.copy()
        privileged = None
        if self.cfg.actor.observe_state:
            if state.object_state is None:
                raise DriverError("actor.observe_state is set but the robot sends no "
                                  "object_state (only the sim has privileged state)")
            privileged = state.object_state.astype(np.float32)
            if self.state_suffix is not None:
                privileged = np.concatenate([privileged, self.state_suffix])
        self._last_state = state
        self._obs_read_ns = now
        self._max_frame_age_ns = oldest
        return Observation(images=images, proprio=proprio_from_state(state),
                           joint_pos=np.asarray(state.joint_pos_rad, dtype=np.float32),
                           depth_mm=depth, privileged=privileged).flat()

    @property
    def driver_estop(self) -> bool:
        """Whether the driver's newest state shows its e-stop latched."""
        st = self.latest_state()
        return bool(st is not None and st.estop)

    @property
    def estop_latched(self) -> bool:
        return self.local_estop.is_set() or self.driver_estop

    @property
    def task_success(self) -> bool:
        st = self._last_state
        return bool(st is not None and st.task_success)

    # -- gymnasium ----------------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        super().reset(seed=seed)
        msg = self.request("reset", {"seed": seed}, timeout_s=max(self._cmd_timeout_s, 5.0))
        reply = Reply.from_message(msg)
        data = reply.data or {}
        if not reply.ok:
            raise DriverError(f"driver refused reset: {reply.reason} {data}")
        self.description = str(data.get("description", ""))
        obs = self.start_from(msg.sent_ns)
        return obs, {"description": self.description, "success": self.task_success}

    def start_from(self, newer_than_ns: int, timeout_s: float = 5.0) -> dict[str, np.ndarray]:
        """Wait for data newer than a time (a reset, a task switch, a pause), restart the
        scheduler's clock and return a fresh observation.

        A busy machine can let state age past actor.max_obs_age_ms between the wait and the
        read; that is waited out too, so only drivers silent for `timeout_s` end the run.

        Raises:
            StaleFrame: no fresh state or frame within `timeout_s` (names what is silent).
        """
        deadline = time.monotonic() + timeout_s
        self.wait_ready(timeout_s=timeout_s, newer_than_ns=newer_than_ns)
        while True:
            try:
                obs = self.observe()
                break
            except StaleFrame:
                if time.monotonic() > deadline:
                    raise
                self.wait_ready(timeout_s=max(deadline - time.monotonic(), 0.1),
                                newer_than_ns=time.monotonic_ns() - self._max_age_ns // 2)
        self.scheduler.start()
        return obs

    def send(self, action: object,
             state: ArmState | None = None) -> tuple[FilterResult, Reply | None]:
        """Filter an action against the newest state and send it; never raises on bad input.

        Args:
            action: a policy action (anything; the safety filter handles bad input).
            state: the arm state to filter against; default the last observation's. Scripted
                motions that do not observe (letting go before homing) pass a fresh one.

        Returns the filter result and the driver's reply (None if nothing was sent or the
        driver timed out — the watchdog then stops the arm).
        """
        state = state if state is not None else self._last_state
        if state is None:
            raise StaleFrame("send() before any observation; call reset() first")
        result = self.safety.filter(action, state.ee_pos_m,
                                    estop=state.estop or self.local_estop.is_set())
        self._sent_ns = time.monotonic_ns()
        if result.command is None:
            return result, None
        reply = self._send_command(result.command)
        return result, reply

    def _send_command(self, cmd: EeCommand) -> Reply | None:
        body = {"gripper_close": float(cmd.gripper_close)}
        if self.scale.use_yaw:
            body["delta_yaw_rad"] = float(cmd.delta_yaw_rad)
        try:
            reply = Reply.from_message(self.request(
                "ee_delta", body, {"delta_xyz_m": np.asarray(cmd.delta_xyz_m, dtype=np.float64)}))
        except PeerTimeout:
            log.warning("driver did not acknowledge a command within %.0f ms",
                        self._cmd_timeout_s * 1e3)
            return None
        if not reply.ok:
            log.debug("driver refused command: %s", reply.reason)
        return reply

    def step(
        self, action: object
    ) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        result, reply = self.send(action)
        latency = self._sent_ns - self._obs_read_ns
        frame_age = self._max_frame_age_ns
        with self.scheduler.on_time():
            wake = self.scheduler.wait_next()
            obs = self.observe()
        self.last_timing = StepTiming(
            wake_ns=wake, jitter_ns=self.scheduler.last_jitter_ns,
            period_ns=self.scheduler.last_period_ns, latency_ns=latency,
            max_frame_age_ns=frame_age,
        )
        success = self.task_success
        reward = 1.0 if success else 0.0
        terminated = success and self.cfg.actor.end_on_success
        info = {
            "action": result.action,
            "filter_reasons": result.reasons,
            "sent": result.command is not None and reply is not None and reply.ok,
            "success": success,
            "estop": self.local_estop.is_set() or bool(
                self._last_state is not None and self._last_state.estop),
        }
        return obs, reward, terminated, False, info

    def close(self) -> None:
        """Close the sockets (and the context, if the env made it); a second call is a no-op."""
        if self._closed:
            return
        self._closed = True
        for sock in (self._state_sub, self._cmd, *self._frame_subs.values()):
            sock.close()
        if self._own_ctx:
            self._ctx.term()
