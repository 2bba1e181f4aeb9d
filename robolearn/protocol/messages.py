"""The message types robolearn processes exchange. Field names are the contract: drivers, the
actor and the server code against them. Importing this module registers them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from robolearn.protocol.schema import ArraySpec, FieldSpec, MessageSpec, register
from robolearn.protocol.views import View, view_of

F64 = npt.NDArray[np.float64]
F32 = npt.NDArray[np.float32]
U8 = npt.NDArray[np.uint8]
Arrays = Mapping[str, npt.NDArray[Any]]
TelemetryValue = int | float | bool | str | None

ARM_COMMANDS = frozenset({
    "ee_delta", "home", "stop", "clear_error", "estop", "estop_release", "reset",
    "expert_action", "status", "continue_task",
})
"""Values of `arm_command.command`. Which optional fields each needs is the driver's check.
Any other value is refused on arrival ("bad_choice"), before a driver sees it."""

# Each spec below is followed by its view (robolearn.protocol.views): consumers read
# `ArmState.from_message(msg).ee_pos_m`, never `msg.body[...]`. A view's fields are the
# spec's names, checked at import.

TELEMETRY_VALUE_TYPES = (int, float, bool, str, None)

ARM_STATE = register(MessageSpec(
    "arm_state",
    fields={
        "stamp_ns": FieldSpec(int),
        "gripper_width_m": FieldSpec(float),
        "stopped": FieldSpec(bool),
        "estop": FieldSpec(bool),
        # Who latched it: the authenticated identity (and the operator it relayed for).
        "estop_by": FieldSpec(str, required=False),
        "error": FieldSpec(str),  # "" when there is no error
        "watchdog_tripped": FieldSpec(bool),
        "task": FieldSpec(str, required=False),
        "task_success": FieldSpec(bool, required=False),
    },
    arrays={
        "joint_pos_rad": ArraySpec("float64", (None,)),
        "joint_vel_rad_s": ArraySpec("float64", (None,)),
        "ee_pos_m": ArraySpec("float64", (3,)),
        "ee_quat_wxyz": ArraySpec("float64", (4,)),
        # Privileged world state (the sim's object positions); real arms never send it.
        "object_state": ArraySpec("float64", (None,), required=False),
    },
))


@view_of(ARM_STATE)
class ArmState(View):
    """An arm driver's state stream."""

    stamp_ns: int
    gripper_width_m: float
    stopped: bool
    estop: bool
    error: str
    watchdog_tripped: bool
    joint_pos_rad: F64
    joint_vel_rad_s: F64
    ee_pos_m: F64
    ee_quat_wxyz: F64
    estop_by: str | None = None
    task: str | None = None
    task_success: bool | None = None
    object_state: F64 | None = None

CAMERA_FRAME = register(MessageSpec(
    "camera_frame",
    fields={
        "camera": FieldSpec(str),
        "stamp_ns": FieldSpec(int),
        "frame_index": FieldSpec(int),
    },
    arrays={
        "image": ArraySpec("uint8", (None, None, 3)),  # H, W, RGB
        # Depth aligned to `image` pixel for pixel (RealSense with depth on), H, W: uint16
        # millimetres along the optical axis, 0 = no reading. Integer millimetres are what
        # the sensor measures (z16), at half the bytes of float32 metres and with no NaN.
        # Optional, so frames without depth (and senders that predate it) stay valid.
        "depth_mm": ArraySpec("uint16", (None, None), required=False,
                              leading_dims_of="image"),
    },
))


@view_of(CAMERA_FRAME)
class CameraFrame(View):
    """One camera frame."""

    camera: str
    stamp_ns: int
    frame_index: int
    image: U8
    depth_mm: npt.NDArray[np.uint16] | None = None

ARM_COMMAND = register(MessageSpec(
    "arm_command",
    fields={
        "command": FieldSpec(str, choices=ARM_COMMANDS),
        "delta_yaw_rad": FieldSpec(float, required=False, finite=True),
        "gripper_close": FieldSpec(float, required=False, finite=True),
        "seed": FieldSpec((int, None), required=False),
        "reason": FieldSpec(str, required=False),
        # continue_task: the next reset-free episode's task (the world is not reset).
        "task": FieldSpec(str, required=False),
    },
    arrays={
        "delta_xyz_m": ArraySpec("float64", (3,), required=False, finite=True),
    },
))


@view_of(ARM_COMMAND)
class ArmCommand(View):
    """A command to an arm driver; which optional parts a command needs is the driver's
    check."""

    command: str
    delta_yaw_rad: float | None = None
    gripper_close: float | None = None
    seed: int | None = None
    reason: str | None = None
    task: str | None = None
    delta_xyz_m: F64 | None = None

REPLY = register(MessageSpec(
    "reply",
    fields={
        "ok": FieldSpec(bool),
        "reason": FieldSpec(str),
        "request_seq": FieldSpec(int),  # -1 when the request was unreadable
        "data": FieldSpec(dict, required=False),  # free-form msgpack values
    },
    free_arrays=True,
))


@view_of(REPLY)
class Reply(View):
    """A request's answer. `data` is free-form (None when absent)."""

    ok: bool
    reason: str
    request_seq: int
    arrays: Arrays
    data: dict[str, Any] | None = None

TELEMETRY = register(MessageSpec(
    "telemetry",
    fields={
        "kind": FieldSpec(str),
        "values": FieldSpec(dict, values=TELEMETRY_VALUE_TYPES),
    },
    free_arrays=True,
))


@view_of(TELEMETRY)
class Telemetry(View):
    """A telemetry record: scalar values of one kind."""

    kind: str
    values: dict[str, TelemetryValue]
    arrays: Arrays

TRANSITION = register(MessageSpec(
    "transition",
    fields={
        "episode": FieldSpec(str),  # unique per actor episode, e.g. "<actor>-<run>-<index>"
        "step": FieldSpec(int),  # 0-based index of the action in the episode
        "reward": FieldSpec(float, finite=True),
        "terminated": FieldSpec(bool),  # the task succeeded: no bootstrap past this step
        "truncated": FieldSpec(bool),  # the episode ended otherwise (step limit, abort)
        "intervention": FieldSpec(bool),  # an operator had taken over the robot
        "recorded": FieldSpec(bool),  # an episode_stored with its store id will follow
        "task": FieldSpec(str),
    },
    arrays={
        "action": ArraySpec("float32", (None,), finite=True),
        "next_low_dim": ArraySpec("float32", (None,), finite=True),
        # Only on step 0: the observation before the first action.
        "low_dim": ArraySpec("float32", (None,), required=False, finite=True),
    },
    # Camera images: "rgb_<camera>" (step 0) and "next_rgb_<camera>", uint8 [H, W, 3].
    free_arrays=True,
))


@view_of(TRANSITION)
class Transition(View):
    """One actor step for the learner. Camera images are in `arrays`, named
    "rgb_<camera>" (step 0 only) and "next_rgb_<camera>"; read them with `images`."""

    episode: str
    step: int
    reward: float
    terminated: bool
    truncated: bool
    intervention: bool
    recorded: bool
    task: str
    action: F32
    next_low_dim: F32
    arrays: Arrays
    low_dim: F32 | None = None

    def images(self, cameras: Sequence[str], prefix: str = "next_rgb_") -> dict[str, U8]:
        """The named cameras' images under a prefix ("rgb_" or "next_rgb_").

        Raises:
            KeyError: a camera has no image under that prefix.
        """
        return {c: self.arrays[prefix + c] for c in cameras}

EPISODE_STORED = register(MessageSpec(
    "episode_stored",
    fields={
        "episode": FieldSpec(str),
        "episode_id": FieldSpec(int),  # the store's id, so a resumed learner finds it
    },
    arrays={},
))


@view_of(EPISODE_STORED)
class EpisodeStored(View):
    """The store id of a recorded episode."""

    episode: str
    episode_id: int

REWARD_REQUEST = register(MessageSpec(
    "reward_request",
    fields={
        "episode": FieldSpec(str),  # the actor's episode key (as in transition)
        "step": FieldSpec(int),  # 0-based index of the action whose result is scored
        "task": FieldSpec(str),  # the episode's task text (CLIP's goal prompt)
    },
    # "frame_<camera>": uint8 [H, W, 3], the observation the action led to;
    # "input_<name>": float32 [N], the preference model's per-step inputs.
    free_arrays=True,
))


@view_of(REWARD_REQUEST)
class RewardRequest(View):
    """A step to score; its frames and inputs are in `arrays` ("frame_<camera>",
    "input_<name>")."""

    episode: str
    step: int
    task: str
    arrays: Arrays

REWARD_VALUES = register(MessageSpec(
    "reward_values",
    fields={
        "source": FieldSpec(str),  # the shaping source the worker runs
        # ready: model loaded, requests welcome. values: `step` and `value` of `episode`.
        # failed: the worker cannot go on; `error` says why (it exits after sending).
        "status": FieldSpec(str, choices=frozenset({"ready", "values", "failed"})),
        "episode": FieldSpec(str, required=False),
        "error": FieldSpec(str, required=False),
    },
    arrays={
        "step": ArraySpec("int64", (None,), required=False),
        "value": ArraySpec("float32", (None,), required=False, finite=True,
                           leading_dims_of="step"),
    },
))


@view_of(REWARD_VALUES)
class RewardValues(View):
    """A reward worker's status or values (`step` and `value` with status "values")."""

    source: str
    status: str
    episode: str | None = None
    error: str | None = None
    step: npt.NDArray[np.int64] | None = None
    value: F32 | None = None

EPISODE_REWARDS = register(MessageSpec(
    "episode_rewards",
    fields={
        "episode": FieldSpec(str),  # the actor's episode key (as in transition)
        "missing": FieldSpec(int),  # steps whose worker value never came (delta 0 there)
    },
    # [T] per transition: sum of weight * value of the worker-run shaping terms, to add to
    # the transition's reward (which carried the inline part only).
    arrays={"reward_delta": ArraySpec("float32", (None,), finite=True)},
))


@view_of(EPISODE_REWARDS)
class EpisodeRewards(View):
    """Worker-run shaping to add to an episode's transition rewards."""

    episode: str
    missing: int
    reward_delta: F32

WEIGHTS = register(MessageSpec(
    "weights",
    fields={
        "session": FieldSpec(str),  # new per learner process: versions restart with it
        "version": FieldSpec(int),
        "update_step": FieldSpec(int),
        "env_steps": FieldSpec(int),
        # True while the learner's demo head start (learner.pretrain_updates) runs: an actor
        # set to wait for it keeps the robot still until a version says False.
        "pretraining": FieldSpec(bool, required=False),
        # [[name, dtype, shape, byte offset], ...] of the tensors packed into `blob`.
        "layout": FieldSpec(list),
    },
    # One uint8 blob reshaped to rows of 8192 bytes: a parameter tensor can be larger than the
    # per-dimension cap, the blob's rows never are.
    arrays={"blob": ArraySpec("uint8", (None, 8192))},
))


@view_of(WEIGHTS)
class Weights(View):
    """A learner's published policy weights. `layout` arrives as a tuple of rows."""

    session: str
    version: int
    update_step: int
    env_steps: int
    layout: Sequence[Any]
    blob: U8
    pretraining: bool | None = None

LEARNER_STATES = frozenset({"starting", "pretraining", "training", "failed", "stopped"})
"""Values of `learner_status.state`. failed: the learner stopped on an error (`error`)."""

LEARNER_STATUS = register(MessageSpec(
    "learner_status",
    fields={
        # Sent about once a second on the weights socket, so an actor can tell a learner
        # that died (silence) from one that is merely slow to publish new weights.
        "session": FieldSpec(str),  # as in weights
        "state": FieldSpec(str, choices=LEARNER_STATES),
        "version": FieldSpec(int),  # newest weights version published
        "update_step": FieldSpec(int),
        "env_steps": FieldSpec(int),
        "error": FieldSpec(str, required=False),  # why, when state is failed
        # Updates per env step (UTD) held over the learner's recent window (utd_window_s):
        # utd_held = utd_window_updates / utd_window_env_steps (None: no step came), against
        # its target learner.utd (None: none); utd_behind when it trains flat out and still
        # holds less (robolearn.learn.metrics.UtdReport). Absent from older learners.
        "utd_target": FieldSpec((float, None), required=False, finite=True),
        "utd_held": FieldSpec((float, None), required=False, finite=True),
        "updates_per_s": FieldSpec(float, required=False, finite=True),
        "env_steps_per_s": FieldSpec(float, required=False, finite=True),
        "utd_window_s": FieldSpec(float, required=False, finite=True),
        "utd_window_updates": FieldSpec(int, required=False),
        "utd_window_env_steps": FieldSpec(int, required=False),
        "updates_owed": FieldSpec(int, required=False),
        "utd_behind": FieldSpec(bool, required=False),
        # A fleet's learner: per robot, {transitions, transitions_per_s, episodes,
        # successes, intervention_episodes, env_steps, last_seen_s} (robolearn.learn.fleet).
        "robots": FieldSpec(dict, required=False),
    },
    arrays={},
))


@view_of(LEARNER_STATUS)
class LearnerStatus(View):
    """A learner's heartbeat; the UTD fields are absent from older learners."""

    session: str
    state: str
    version: int
    update_step: int
    env_steps: int
    error: str | None = None
    utd_target: float | None = None
    utd_held: float | None = None
    updates_per_s: float | None = None
    env_steps_per_s: float | None = None
    utd_window_s: float | None = None
    utd_window_updates: int | None = None
    utd_window_env_steps: int | None = None
    updates_owed: int | None = None
    utd_behind: bool | None = None
    robots: dict[str, Any] | None = None

FILE_REQUEST = register(MessageSpec(
    "file_request",
    fields={
        # One camera's MP4 of a complete episode, read from the recording host's store:
        # `length` bytes from `offset` (length 0: only the size).
        "episode_id": FieldSpec(int),
        "camera": FieldSpec(str),
        "offset": FieldSpec(int),
        "length": FieldSpec(int),
    },
    arrays={},
))


@view_of(FILE_REQUEST)
class FileRequest(View):
    """A service asking a robot host for part of an episode video it recorded."""

    episode_id: int
    camera: str
    offset: int
    length: int


ACTOR_COMMANDS = frozenset({
    "estop", "release_estop", "pause", "resume", "takeover", "teleop", "status",
})
"""Values of `actor_command.command`: operator control of a running actor."""

ACTOR_COMMAND = register(MessageSpec(
    "actor_command",
    fields={
        "command": FieldSpec(str, choices=ACTOR_COMMANDS),
        "active": FieldSpec(bool, required=False),  # takeover: start (True) or stop (False)
        "operator": FieldSpec(str, required=False),  # who asked, for the actor's log
        "reason": FieldSpec(str, required=False),
    },
    # teleop: the operator's action in the policy's normalised space, [-1, 1] per dimension.
    arrays={"action": ArraySpec("float32", (None,), required=False, finite=True)},
))


@view_of(ACTOR_COMMAND)
class ActorCommand(View):
    """Operator control of a running actor."""

    command: str
    active: bool | None = None
    operator: str | None = None
    reason: str | None = None
    action: F32 | None = None

LIVE_JPEG_ROW_BYTES = 1024
"""Row length of live_frame's `jpeg` array. A JPEG is a byte string longer than one array
dimension may be (MAX_DIM), so it travels zero-padded in rows of this many bytes; `jpeg_size`
says where it ends. Short rows keep the padding (at most one row) small."""

LIVE_FRAME = register(MessageSpec(
    "live_frame",
    fields={
        "camera": FieldSpec(str),
        "width": FieldSpec(int),
        "height": FieldSpec(int),
        "episode": FieldSpec(int),  # the actor's episode index in this run
        "step": FieldSpec(int),  # step within the episode
        "stamp_ns": FieldSpec(int),  # monotonic capture time of the observation, ns
        "jpeg_size": FieldSpec(int),  # bytes of JPEG in `jpeg` before the padding
    },
    arrays={"jpeg": ArraySpec("uint8", (None, LIVE_JPEG_ROW_BYTES))},
))


@view_of(LIVE_FRAME)
class LiveFrame(View):
    """A JPEG of one camera for the browser, zero-padded into rows of `jpeg`."""

    camera: str
    width: int
    height: int
    episode: int
    step: int
    stamp_ns: int
    jpeg_size: int
    jpeg: U8
