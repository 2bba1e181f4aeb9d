"""Run configuration: pydantic models loaded from YAML.

A run config names the robot, its cameras, the network addresses every process uses, the
actor's loop and safety limits, and where data goes. Processes find each other only through
these addresses. Models are frozen and forbid unknown keys, so a typo is an error, not a
silently ignored setting.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Annotated, Literal, get_args

from pydantic import Field, ModelWrapValidatorHandler, model_validator

from robolearn.actionspace import ActionScale
from robolearn.config.base import Frozen
from robolearn.config.cqn import CQNConfig
from robolearn.config.fleet import FleetConfig, resolve_fleet
from robolearn.config.hardware import (
    CameraIntrinsics,
    FrankaRobotConfig,
    RealsenseCameraConfig,
    SpaceMouseConfig,
    URRobotConfig,
    XArmRobotConfig,
)
from robolearn.config.reset_free import ResetFreeConfig
from robolearn.config.rewards import RewardsConfig
from robolearn.config.server import ServerConfig
from robolearn.config.tracking import TrackingConfig
from robolearn.protocol.observation import camera_name_problem
from robolearn.protocol.security import SocketSecurity

log = logging.getLogger(__name__)

TaskName = Literal["reach", "push_cube", "pick_cube", "drawer_open", "drawer_close",
                   "bin_a_to_b", "bin_b_to_a"]


class SecurityConfig(Frozen):
    """ZeroMQ transport security for every socket of the run.

    Every socket, loopback included, is CURVE-encrypted and admits only the run's own
    processes, each with its own key pair (see robolearn.config.sockets for who may
    connect where).
    """

    keys_dir: Path | None = Field(
        None,
        description="Directory of the run's CURVE key pairs (one per process identity); "
        "None = <data_dir>/keys. `robolearn up` creates them for a run on one machine; for "
        "processes on other hosts use `robolearn keys create` and `robolearn keys export`.",
    )
    insecure: bool = Field(
        False,
        description="Turn authentication and encryption off: any process that can reach a "
        "port, on this machine or (for non-loopback binds) the network, can release the "
        "e-stop and move the robot. Only for a bench with no robot attached.",
    )


class SimRobotConfig(Frozen):
    """The built-in MuJoCo Panda; one process serves the arm and its cameras."""

    kind: Literal["sim"] = "sim"
    name: str = Field("arm", description="Operator-facing id of the arm.")
    task: TaskName = Field("pick_cube", description="Sim task: scene, success test, expert.")
    state_address: str = Field(
        "tcp://127.0.0.1:5551", description="PUB address where the driver streams arm state."
    )
    command_address: str = Field(
        "tcp://127.0.0.1:5552", description="ROUTER address where the driver takes commands."
    )
    frames_address: str = Field(
        "tcp://127.0.0.1:5553", description="PUB address where the sim cameras stream frames."
    )
    state_hz: float = Field(100.0, gt=0, le=1000, description="State publish rate, Hz.")
    watchdog_ms: float = Field(
        120.0,
        gt=0,
        description="Stop the arm when no motion command arrived for this long, ms. Keep it "
        "just above one control period: larger lets a dead actor's last command run longer.",
    )


class SimCameraConfig(Frozen):
    """A camera rendered by the sim robot process (published on robot.frames_address)."""

    kind: Literal["sim"] = "sim"
    name: Literal["front", "wrist", "side"] = Field(
        description="Which sim camera: front (facing the robot), wrist (on the hand), side "
        "(across the workspace from the robot's right).")
    width: int = Field(84, ge=16, le=1024, description="Image width, px.")
    height: int = Field(84, ge=16, le=1024, description="Image height, px.")
    fps: float = Field(30.0, gt=0, le=120, description="Render rate, frames/s.")

    @property
    def image_hw(self) -> tuple[int, int]:
        """(height, width) of the published frames, what the policy sees."""
        return self.height, self.width


class OpenCVCameraConfig(Frozen):
    """A USB/UVC camera or a video file through cv2.VideoCapture, in its own process."""

    kind: Literal["opencv"] = "opencv"
    name: str = Field(description="Operator-facing camera id, e.g. wrist_cam.")
    source: str | int = Field(description="Device index, /dev/videoN, or a video file path.")
    address: str = Field(description="PUB address where this camera streams frames.")
    width: int = Field(84, ge=16, le=4096, description="Output width after resize, px.")
    height: int = Field(84, ge=16, le=4096, description="Output height after resize, px.")
    fps: float = Field(30.0, gt=0, le=240, description="Requested capture rate, frames/s.")
    exposure: float | None = Field(None, description="Manual exposure (driver units); None=auto.")
    loop: bool = Field(True, description="For a video file: start over at the end.")

    @property
    def image_hw(self) -> tuple[int, int]:
        """(height, width) of the published frames, what the policy sees."""
        return self.height, self.width
    intrinsics: CameraIntrinsics | None = Field(
        None, description="Set at run start from the newest stored intrinsics calibration."
    )


RobotConfig = Annotated[
    SimRobotConfig | FrankaRobotConfig | URRobotConfig | XArmRobotConfig,
    Field(discriminator="kind"),
]
CameraConfig = Annotated[
    SimCameraConfig | OpenCVCameraConfig | RealsenseCameraConfig, Field(discriminator="kind")
]


class SafetyConfig(Frozen):
    """Limits the actor's safety filter enforces before any command leaves the actor."""

    workspace_min_m: tuple[float, float, float] = Field(
        (0.30, -0.30, 0.02), description="Lower corner of the end-effector box (base frame), m."
    )
    workspace_max_m: tuple[float, float, float] = Field(
        (0.75, 0.30, 0.45), description="Upper corner of the end-effector box (base frame), m."
    )
    max_step_m: float = Field(
        0.05, gt=0, le=0.2, description="Largest end-effector translation per axis per step, m."
    )
    max_yaw_step_rad: float = Field(0.25, gt=0, le=1.0, description="Largest yaw per step, rad.")

    @model_validator(mode="after")
    def _box_not_empty(self) -> SafetyConfig:
        corners = (*self.workspace_min_m, *self.workspace_max_m)
        if not all(math.isfinite(v) for v in corners):
            raise ValueError(
                f"workspace_min_m {self.workspace_min_m} and workspace_max_m "
                f"{self.workspace_max_m} must be finite numbers: a NaN or infinite corner "
                "leaves the arm without a box"
            )
        if any(lo >= hi for lo, hi in zip(self.workspace_min_m, self.workspace_max_m, strict=True)):
            raise ValueError(
                f"workspace_min_m {self.workspace_min_m} must be below workspace_max_m "
                f"{self.workspace_max_m} on every axis"
            )
        return self


class PolicyConfig(Frozen):
    kind: Literal["expert", "random", "zero", "cqn"] = Field(
        "expert",
        description="expert: the sim task's scripted expert (sim only); random: uniform "
        "actions; zero: hold still; cqn: the learner's CQN policy (weights arrive from the "
        "learner; until the first arrive, or from `checkpoint`).",
    )
    seed: int = Field(0, description="Seed of the random policy and of CQN exploration.")
    checkpoint: Path | None = Field(
        None, description="cqn: start from this learner checkpoint instead of untrained."
    )
    eval_mode: bool = Field(False, description="cqn: greedy actions, no exploration noise.")


class AskTakeoverConfig(Frozen):
    """The learner asks a person to take over where its critic is unsure of the return (an
    `uncertain_takeover` operator request): a cqn policy only, outside evaluation episodes."""

    enabled: bool = Field(
        False,
        description="Open an uncertain_takeover request when the critic stays unsure, and "
        "hold the arm until a person takes over or answers it. Needs a cqn policy and a "
        "store (actor.record); the actor refuses to start otherwise.",
    )
    threshold: float = Field(
        1.0, ge=0.0,
        description="Uncertainty above which a step counts as unsure: the std of the critic's "
        "C51 return distribution at the chosen action (finest level, mean over action "
        "dimensions), in return units of learner.cqn.v_min..v_max. An untrained critic gives "
        "the uniform std, about 0.29 x (v_max - v_min) = 1.18 with the defaults; too low asks "
        "at every step, at or above that value never asks.",
    )
    consecutive_steps: int = Field(
        10, ge=1,
        description="Unsure policy steps in a row before asking (1 s at 10 Hz). A step an "
        "operator drove, an e-stop, a fault or an episode end starts the count again; too few "
        "asks on single noisy values.",
    )
    cooldown_s: float = Field(
        60.0, ge=0.0,
        description="After a request is answered (or the operator took over), no new one for "
        "this long, s, so one hard stretch does not flood the operator's queue.",
    )
    request_poll_s: float = Field(
        0.2, gt=0.0, le=10.0,
        description="While holding on the request, how often the actor checks the database "
        "for its answer (and the control state for a takeover), s.",
    )


class ActorConfig(Frozen):
    control_hz: float = Field(10.0, gt=0, le=100, description="Fixed control rate, Hz.")
    episode_steps: int = Field(100, ge=1, description="Steps before an episode is truncated.")
    episodes: int | None = Field(
        None, ge=1, description="Stop after this many episodes; None runs until stopped."
    )
    seed: int = Field(0, description="Seed of the first episode; episode k uses seed + k.")
    end_on_success: bool = Field(True, description="End an episode at the first success.")
    telemetry_address: str = Field(
        "tcp://127.0.0.1:5560", description="PUB address of actor telemetry (timing, reward)."
    )
    control_address: str = Field(
        "tcp://127.0.0.1:5561",
        description="ROUTER address where the actor takes operator commands (e-stop, pause, "
        "takeover, teleop). Anyone who can reach it can move the robot: keep it on loopback "
        "or behind CURVE keys.",
    )
    files_address: str = Field(
        "tcp://127.0.0.1:5562",
        description="ROUTER address where a run across hosts serves this robot's episode "
        "videos to the service (`robolearn files`); only the service may connect.",
    )
    live_fps: float = Field(
        10.0, ge=0, le=60,
        description="Most JPEG live frames per second per camera on the telemetry address; 0 "
        "sends none. A thread of the actor encodes them, off the path from an observation to "
        "its command; it drops a camera's frame when a newer one comes first.",
    )
    live_jpeg_quality: int = Field(
        75, ge=10, le=95, description="JPEG quality of live frames (higher: larger frames)."
    )
    teleop_stale_ms: float = Field(
        300.0, gt=0, le=5000,
        description="During a takeover, an operator action older than this is stale and the "
        "arm holds still (zero motion) until a fresh one arrives, ms. Too large lets a frozen "
        "browser keep the arm moving; too small stutters on a slow network.",
    )
    takeover_timeout_ms: float = Field(
        1500.0, gt=0, le=60_000,
        description="Deadman: a takeover ends by itself (the policy drives again; the UI and "
        "the log say why) when the operator's client sent nothing for this long, ms. The web "
        "UI sends its action several times a second while taking over; a closed browser or a "
        "lost network stops that. Must exceed teleop_stale_ms.",
    )
    estop_timeout_s: float = Field(
        0.5, gt=0, le=5.0,
        description="How long the actor waits for the driver to confirm an e-stop or release, "
        "s. The actor stops commanding motion at once either way; without a confirmation the "
        "operator is told the e-stop is NOT confirmed and should use the hardware e-stop.",
    )
    command_timeout_s: float = Field(
        0.05, gt=0, le=1.0, description="Wait for a driver's command reply, s."
    )
    max_obs_age_ms: float = Field(
        250.0, gt=0, description="Refuse to act on a camera frame or state older than this, ms."
    )
    realtime_priority: int = Field(
        10, ge=0, le=99,
        description="SCHED_FIFO priority of the control thread while it waits for a tick and "
        "reads the observation (the policy's compute stays at normal priority); keeps ticks "
        "on time while the learner and drivers load the machine. Needs root, CAP_SYS_NICE or "
        "an rtprio limit (ulimit -r); without them the loop runs at normal priority and says "
        "so once. 0: never real-time.",
    )
    record: bool = Field(True, description="Store every episode (npz + MP4 + DB rows).")
    eval_every: int | None = Field(
        None, ge=1,
        description="cqn policy: every N-th episode is a greedy evaluation episode (stored "
        "with policy 'cqn-eval', not sent to the learner); None: never.",
    )
    observe_state: bool = Field(
        False,
        description="Add the sim's privileged object positions to each observation as "
        "obs['state'] (and store them): for state-based learning in the sim. Real arms have "
        "no such signal; the actor refuses to start if the robot does not send it.",
    )
    action_scale: ActionScale = Field(
        default_factory=ActionScale, description="Physical size of a full-scale action."
    )
    policy: PolicyConfig = Field(default_factory=PolicyConfig)
    ask_takeover: AskTakeoverConfig = Field(default_factory=AskTakeoverConfig)


class LearnerConfig(Frozen):
    """The CQN learner process (`robolearn learner`), started by `robolearn up` if enabled."""

    enabled: bool = Field(False, description="Start the learner with the run.")
    transitions_address: str = Field(
        "tcp://127.0.0.1:5570", description="PULL address where the learner takes transitions."
    )
    weights_address: str = Field(
        "tcp://127.0.0.1:5571", description="PUB address where the learner publishes weights."
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="auto: CUDA when available, else CPU."
    )
    observation: Literal["pixels", "state"] = Field(
        "pixels",
        description="pixels: camera images + proprio; state: proprio + the sim's object "
        "positions + each object's offset from the end effector (needs actor.observe_state; "
        "sim only).",
    )
    capacity: int = Field(100_000, ge=100, description="Online replay capacity, transitions.")
    demo_capacity: int = Field(50_000, ge=100, description="Demo replay capacity.")
    min_transitions: int = Field(
        200, ge=1, description="Start updating once online + demo transitions reach this."
    )
    utd: float | None = Field(
        1.0, gt=0,
        description="Updates per environment step (UTD ratio) the learner aims to hold: "
        "utd updates for every step an actor sends (demos count once, at start). A learner "
        "that keeps up waits for the next steps (idle CPU for the other processes); one too "
        "slow for it trains flat out and reports itself behind (held UTD below the target "
        "in learner_status, the learner metrics and the UI). The reference CQN makes 1. "
        "None: no target, train as fast as the device allows. Replaces max_update_ratio "
        "(still read, with a warning).",
    )
    threads: int | None = Field(
        None, ge=1, le=256,
        description="CPU threads of the learner's torch ops (intra-op); None: torch's default "
        "(one per core). On a machine whose cores the drivers, actor and service share, "
        "fewer threads than cores keep a busy learner from starving the control loop.",
    )
    nice: int = Field(
        0, ge=0, le=19,
        description="Lower the learner process's CPU priority by this much (Unix nice). On "
        "a machine that also runs the drivers and the actor, the control loop then gets a "
        "core first when it wakes, and the learner every cycle they leave; 0: same priority. "
        "Too high on a machine busy with other work starves the learner (it reports itself "
        "behind its utd).",
    )
    pretrain_updates: int = Field(
        0, ge=0,
        description="Before practice: this many updates on the stored demonstrations (and "
        "episodes) before the first trained weights are published; a CQN actor holds the "
        "robot still until they arrive instead of acting on an untrained policy. They come on "
        "top of utd's budget. 0: the actor starts at once.",
    )
    publish_every: int = Field(50, ge=1, description="Publish weights every N updates.")
    checkpoint_every: int = Field(1000, ge=1, description="Checkpoint every N updates.")
    metrics_every_s: float = Field(
        5.0, gt=0,
        description="Write a learner metrics row (updates/s, buffer sizes, losses) to the "
        "store every this many seconds, s; the Learning page plots them. Very small values "
        "add a database write per update.",
    )
    checkpoint_dir: Path | None = Field(
        None, description="Where checkpoints go; None = <data_dir>/checkpoints."
    )
    load_from_store: bool = Field(
        True, description="At start, load this task's stored episodes and demos."
    )
    keep_received: bool | None = Field(
        None,
        description="Keep a copy of every stored episode the learner receives under "
        "<data_dir>/learner_episodes (the buffers' layout), and resume from it first: a "
        "learner on a host that does not share the actors' disks then resumes with the same "
        "episodes. Episodes the store lists whose files are on no disk here are passed over "
        "with a warning. None: on when any socket of the run is reachable from other hosts "
        "(not loopback or ipc), as in a run across hosts.",
    )
    seed: int = Field(0, description="Seed of sampling, augmentation and initialisation.")
    cqn: CQNConfig = Field(default_factory=CQNConfig)
    tracking: TrackingConfig = Field(
        default_factory=TrackingConfig,
        description="Experiment trackers (TensorBoard by default, W&B when enabled) that "
        "receive the learner's metrics besides the run's store.",
    )
    keep_checkpoints: int = Field(
        5, ge=1,
        description="Checkpoints kept in checkpoint_dir: after each successful write the "
        "oldest beyond this many are deleted (never the one just written). Each holds the "
        "networks and optimiser (tens to hundreds of MB); too few leaves nothing to fall back "
        "to if the newest is damaged.",
    )
    heartbeat_timeout_s: float = Field(
        5.0, gt=0,
        description="The actor reports the learner dead (telemetry learner_alive false and "
        "an error in its log) after this many seconds without weights or a learner_status "
        "message from it (the learner sends one every second), s. Too small raises false "
        "alarms on a loaded machine; the actor never stops for it.",
    )
    min_demo_steps: int = Field(
        3, ge=1,
        description="An online success, or an operator's intervention segment, enters the "
        "demo buffer only if it has at least this many consecutive steps (it always enters "
        "the online buffer). A real takeover lasts longer than a few control periods; this "
        "keeps stray or forged one-step 'demonstrations' out of the BC losses. 1: every one.",
    )

    @model_validator(mode="before")
    @classmethod
    def _renamed_max_update_ratio(cls, data: object) -> object:
        # max_update_ratio was a cap on the same budget utd now targets: a config that
        # still says it means the same thing.
        if isinstance(data, dict) and "max_update_ratio" in data:
            if "utd" in data:
                raise ValueError("learner: both utd and max_update_ratio are set; "
                                 "max_update_ratio is the old name of utd: keep utd only")
            log.warning("learner.max_update_ratio is now learner.utd (updates per environment "
                        "step); rename it in the config")
            data = {k: v for k, v in data.items() if k != "max_update_ratio"} | {
                "utd": data["max_update_ratio"]}
        return data


class RunConfig(Frozen):
    name: str = Field(description="Run name, shown in the UI and stored with every episode.")
    data_dir: Path = Field(
        Path("data"), description="Where the database and episode files go (created)."
    )
    database_url: str | None = Field(
        None, description="SQLAlchemy URL; None = SQLite file <data_dir>/robolearn.db."
    )
    robot: RobotConfig = Field(default_factory=SimRobotConfig)
    cameras: tuple[CameraConfig, ...] = Field(
        (SimCameraConfig(name="front"), SimCameraConfig(name="wrist"))
    )
    actor: ActorConfig = Field(default_factory=ActorConfig)
    safety: SafetyConfig = Field(default_factory=SafetyConfig)
    security: SecurityConfig = Field(default_factory=SecurityConfig)
    learner: LearnerConfig = Field(default_factory=LearnerConfig)
    rewards: RewardsConfig = Field(
        default_factory=RewardsConfig, description="Reward sources and how they combine."
    )
    server: ServerConfig = Field(
        default_factory=ServerConfig, description="The operator service (REST + live view)."
    )
    reset_free: ResetFreeConfig = Field(
        default_factory=ResetFreeConfig,
        description="Reset-free training: forward/backward tasks, retries, stuck handling.",
    )
    spacemouse: SpaceMouseConfig = Field(
        default_factory=SpaceMouseConfig,
        description="SpaceMouse takeover (`robolearn teleop spacemouse CONFIG`).",
    )
    fleet: FleetConfig = Field(
        default_factory=FleetConfig,
        description="Several robots feeding one learner (robolearn.config.fleet); the robot, "
        "cameras and actor sections are then every robot's template.",
    )
    robot_name: str | None = Field(
        None, description="Set by `robolearn up` on a fleet robot's processes: which robot "
        "of `fleet.robots` this config's robot, cameras and actor sections are.",
    )

    @model_validator(mode="before")
    @classmethod
    def _default_kinds(cls, data: object) -> object:
        # `kind` defaults to the sim, so a short sim config need not spell it out.
        if isinstance(data, dict):
            robot = data.get("robot")
            if isinstance(robot, dict) and "kind" not in robot:
                data = {**data, "robot": {**robot, "kind": "sim"}}
        return data

    @model_validator(mode="wrap")
    @classmethod
    def _resolve_fleet(cls, data: object, handler: ModelWrapValidatorHandler[RunConfig]
                       ) -> RunConfig:
        # Each fleet robot's sockets and seed come from the template with its defaults
        # filled in, so they are resolved on the validated config, then validated again.
        cfg = handler(data)
        if not cfg.fleet.robots:
            return cfg
        dumped = cfg.model_dump(mode="json")
        resolved = resolve_fleet(dumped)
        return cfg if resolved == dumped else handler(resolved)

    @model_validator(mode="after")
    def _check(self) -> RunConfig:
        names = [c.name for c in self.cameras]
        if len(set(names)) != len(names):
            raise ValueError(f"camera names must be unique, got {names}")
        for name in names:
            if (problem := camera_name_problem(name)) is not None:
                raise ValueError(problem)
        if not self.cameras:
            raise ValueError("at least one camera is required")
        if self.robot.kind != "sim" and any(c.kind == "sim" for c in self.cameras):
            raise ValueError("sim cameras need the sim robot (robot.kind: sim)")
        sim_sizes = {(c.width, c.height) for c in self.cameras if c.kind == "sim"}
        if len(sim_sizes) > 1:
            raise ValueError(f"sim cameras must share one image size, got {sorted(sim_sizes)}")
        if self.actor.takeover_timeout_ms <= self.actor.teleop_stale_ms:
            raise ValueError(
                f"actor.takeover_timeout_ms {self.actor.takeover_timeout_ms} must exceed "
                f"actor.teleop_stale_ms {self.actor.teleop_stale_ms}: the arm holds on a stale "
                "action first, and the takeover ends only after that"
            )
        if self.actor.action_scale.xyz_m > self.safety.max_step_m + 1e-12:
            raise ValueError(
                f"actor.action_scale.xyz_m {self.actor.action_scale.xyz_m} exceeds "
                f"safety.max_step_m {self.safety.max_step_m}: full-scale actions would always clip"
            )
        rf = self.reset_free
        if rf.enabled and self.robot.kind == "sim":
            sim_tasks = get_args(TaskName)
            bad = [t for t in (rf.forward_task, rf.backward_task) if t not in sim_tasks]
            if bad:
                raise ValueError(f"reset_free: unknown sim task(s) {bad}; choose from "
                                 f"{list(sim_tasks)}")
            if self.robot.task not in (rf.forward_task, rf.backward_task):
                raise ValueError(
                    f"reset_free: robot.task {self.robot.task!r} must be the forward_task "
                    f"{rf.forward_task!r} or the backward_task {rf.backward_task!r} (the "
                    "direction the run starts with)"
                )
        robot_box = (getattr(self.robot, "workspace_min_m", None),
                     getattr(self.robot, "workspace_max_m", None))
        if robot_box[0] is not None and robot_box[1] is not None and not all(
            rlo <= lo and hi <= rhi for lo, hi, rlo, rhi in zip(
                self.safety.workspace_min_m, self.safety.workspace_max_m, *robot_box,
                strict=True)
        ):
            raise ValueError(
                f"safety box {self.safety.workspace_min_m}..{self.safety.workspace_max_m} "
                f"must lie inside the arm's own workspace box {robot_box[0]}..{robot_box[1]} "
                "(robot.workspace_*): the driver enforces both, so the larger part could "
                "never be reached and the run's box would not be the one the arm obeys"
            )
        addresses = [self.robot.command_address, self.robot.state_address,
                     self.actor.control_address, self.actor.telemetry_address,
                     self.actor.files_address, self.learner.transitions_address,
                     self.learner.weights_address,
                     *(c.address for c in self.cameras if c.kind != "sim")]
        frames = getattr(self.robot, "frames_address", None)
        if frames is not None:
            addresses.append(frames)
        repeated = sorted({a for a in addresses if addresses.count(a) > 1})
        if repeated:
            raise ValueError(f"socket addresses must differ, {repeated} is used twice")
        self._check_fleet()
        if self.learner.observation == "state" and not self.actor.observe_state:
            raise ValueError("learner.observation: state needs actor.observe_state: true")
        if self.learner.observation == "pixels" and self.learner.cqn.frame_stack < 1:
            raise ValueError("learner.cqn.frame_stack must be >= 1")
        return self

    def _check_fleet(self) -> None:
        if self.robot_name is not None and self.robot_name not in self.fleet.names:
            raise ValueError(f"robot_name {self.robot_name!r} is none of fleet.robots "
                             f"{self.fleet.names}")
        from robolearn.config.fleet import robot_sockets

        shared = {self.learner.transitions_address, self.learner.weights_address}
        seen: dict[str, str] = {}
        for name in self.fleet.names:
            for key, address in robot_sockets(self, name).items():
                other = seen.get(address) or ("the learner" if address in shared else None)
                if other is not None:
                    raise ValueError(f"fleet robot {name!r}: {key} {address} is used by "
                                     f"{other} too; give it its own in its `set`")
                seen[address] = f"robot {name!r}"

    def socket_security(self, address: str, me: str) -> SocketSecurity:
        """CURVE settings for the socket at `address` opened by process identity `me`
        ("driver", "actor", "learner", "service", "operator", "camera-<name>"); see
        robolearn.config.sockets."""
        from robolearn.config.sockets import socket_security

        return socket_security(self, address, me)

    @property
    def sim_cameras(self) -> tuple[SimCameraConfig, ...]:
        return tuple(c for c in self.cameras if isinstance(c, SimCameraConfig))
