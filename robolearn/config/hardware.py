"""Config models of real hardware: Franka, UR and xArm arms, RealSense cameras, SpaceMouse.

Every real arm states its own workspace box and speed limits: the driver enforces them as a
second line behind the actor's safety filter, so a bug upstream (or a wrong action scale)
still cannot drive the arm out of its box or faster than the rig allows.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from robolearn.config.base import Frozen


class RealArmConfig(Frozen):
    """Fields every real arm shares (the vendor configs add their own)."""

    name: str = Field("arm", description="Operator-facing id of the arm.")
    host: str = Field(description="IP address or hostname of the robot controller.")
    task: str = Field(
        pattern=r"^[a-z][a-z0-9_]{0,63}$",
        description="Task name stored with every episode, demo and checkpoint (e.g. "
        "pick_cube); episodes of one task train one policy, so keep it stable per task.",
    )
    state_address: str = Field(
        "tcp://127.0.0.1:5551", description="PUB address where the driver streams arm state."
    )
    command_address: str = Field(
        "tcp://127.0.0.1:5552", description="ROUTER address where the driver takes commands."
    )
    state_hz: float = Field(
        100.0, gt=0, le=1000,
        description="State publish rate, Hz. The driver reads the arm every loop iteration "
        "(its native rate) and publishes the newest state at this rate.",
    )
    watchdog_ms: float = Field(
        150.0, gt=0, le=2000,
        description="Both the driver and its server stop the arm when no motion command "
        "arrived for this long, ms. Keep it just above one control period.",
    )
    workspace_min_m: tuple[float, float, float] = Field(
        (0.30, -0.30, 0.02),
        description="Lower corner of the box the TCP must stay in (robot base frame), m. "
        "Teach it with `robolearn calibrate workspace`; too large lets the arm hit the table.",
    )
    workspace_max_m: tuple[float, float, float] = Field(
        (0.75, 0.30, 0.45), description="Upper corner of the TCP box (robot base frame), m."
    )
    max_step_m: float = Field(
        0.05, gt=0, le=0.2, description="Largest TCP translation per command per axis, m."
    )
    max_speed_m_s: float = Field(
        0.25, gt=0, le=1.0,
        description="Largest TCP speed the driver commands, m/s (per axis). Lower it for a "
        "first run on a new rig.",
    )
    max_yaw_rate_rad_s: float = Field(0.6, gt=0, le=3.0, description="Largest yaw rate, rad/s.")
    home_xyz_m: tuple[float, float, float] = Field(
        (0.45, 0.0, 0.30),
        description="TCP position `home` moves to (gripper pointing down), base frame, m. "
        "Must lie inside the workspace box.",
    )
    connect_attempts: int = Field(
        5, ge=1, le=100, description="Connection attempts before connect() gives up."
    )
    backoff_s: float = Field(
        0.5, gt=0, le=10, description="First reconnect delay, s; doubles per failed attempt."
    )
    max_backoff_s: float = Field(8.0, gt=0, le=120, description="Longest reconnect delay, s.")

    @model_validator(mode="after")
    def _check_box(self) -> RealArmConfig:
        lo, hi = self.workspace_min_m, self.workspace_max_m
        if any(a >= b for a, b in zip(lo, hi, strict=True)):
            raise ValueError(f"workspace_min_m {lo} must be below workspace_max_m {hi} on "
                             "every axis")
        if any(not a <= h <= b for a, h, b in zip(lo, self.home_xyz_m, hi, strict=True)):
            raise ValueError(f"home_xyz_m {self.home_xyz_m} lies outside the workspace box "
                             f"{lo}..{hi}")
        return self


class FrankaRobotConfig(RealArmConfig):
    """A Franka Panda or FR3 through pylibfranka (extra: `pip install -e .[franka]`)."""

    kind: Literal["franka"] = "franka"
    realtime: Literal["enforce", "ignore"] = Field(
        "enforce",
        description="libfranka's real-time check: 'enforce' needs a PREEMPT_RT kernel (the "
        "normal setup); 'ignore' for a simulator or a non-RT test PC.",
    )
    max_accel_m_s2: float = Field(
        1.0, gt=0, le=10,
        description="TCP acceleration limit of the 1 kHz velocity ramp, m/s^2 (as a vector). "
        "The arm aborts with an acceleration-discontinuity reflex if commands jump faster.",
    )
    max_jerk_m_s3: float = Field(
        100.0, gt=0, le=1000,
        description="TCP jerk limit of the 1 kHz velocity ramp, m/s^3 (rad/s^3 for yaw). The "
        "arm checks the joint jerk its inverse kinematics implies (5000 rad/s^3 on the FR3, "
        "several times the TCP jerk near the usual poses): too high aborts motions with "
        "cartesian_motion_generator_joint_acceleration_discontinuity, lower only adds lag.",
    )
    gripper: bool = Field(True, description="A Franka Hand is attached.")
    gripper_speed_m_s: float = Field(0.1, gt=0, le=0.2, description="Finger speed, m/s.")
    grasp_force_n: float = Field(
        20.0, gt=0, le=70, description="Grasp force when closing on an object, N."
    )


class URRobotConfig(RealArmConfig):
    """A Universal Robots e-series arm through ur-rtde (extra: `pip install -e .[ur]`)."""

    kind: Literal["ur"] = "ur"
    rtde_frequency_hz: float = Field(
        500.0, gt=0, le=500, description="RTDE rate: 500 for e-series, 125 for CB3."
    )
    acceleration_m_s2: float = Field(
        0.8, gt=0, le=5, description="speedL/moveL acceleration, m/s^2."
    )
    gripper_tool_output: int | None = Field(
        0, ge=0, le=1,
        description="Tool digital output that closes the gripper (on = closed); None: no "
        "gripper.",
    )


class XArmRobotConfig(RealArmConfig):
    """A UFACTORY xArm 5/6/7 or Lite 6 through xarm-python-sdk (`pip install -e .[xarm]`)."""

    kind: Literal["xarm"] = "xarm"
    model: Literal["xarm5", "xarm6", "xarm7", "lite6"] = Field(
        "xarm7", description="Arm model: sets the number of joints."
    )
    gripper: bool = Field(True, description="The UFACTORY gripper is attached.")
    gripper_open_pos: float = Field(850.0, description="Gripper position when open (SDK units).")
    gripper_closed_pos: float = Field(0.0, description="Gripper position when closed.")


class CameraIntrinsics(Frozen):
    """A camera's calibrated intrinsics, scaled to the frames it publishes. Filled in from the
    newest stored `robolearn calibrate intrinsics` result when a run starts; not written by
    hand."""

    width: int = Field(gt=0, description="Image width these intrinsics describe, px.")
    height: int = Field(gt=0, description="Image height these intrinsics describe, px.")
    fx: float = Field(gt=0, description="Focal length along x, px.")
    fy: float = Field(gt=0, description="Focal length along y, px.")
    cx: float = Field(description="Principal point x, px.")
    cy: float = Field(description="Principal point y, px.")
    dist_coeffs: tuple[float, ...] = Field(
        (), description="OpenCV distortion coefficients (k1 k2 p1 p2 k3), unitless."
    )
    version: int = Field(ge=1, description="Stored calibration version they come from.")


class RealsenseCameraConfig(Frozen):
    """An Intel RealSense camera through pyrealsense2 (`pip install -e .[realsense]`)."""

    kind: Literal["realsense"] = "realsense"
    name: str = Field(description="Operator-facing camera id, e.g. front_cam.")
    serial: str | None = Field(
        None, description="Serial number to open; None takes the only connected camera "
        "(an error when several are connected)."
    )
    address: str = Field(description="PUB address where this camera streams frames.")
    width: int = Field(640, ge=16, le=1920, description="Colour stream width, px.")
    height: int = Field(480, ge=16, le=1080, description="Colour stream height, px.")
    fps: int = Field(30, ge=1, le=90, description="Stream rate, frames/s (a mode the camera has).")
    output_width: int = Field(84, ge=16, le=1920, description="Published width after resize, px.")
    output_height: int = Field(84, ge=16, le=1080, description="Published height, px.")
    depth: bool = Field(False, description="Also stream depth aligned to the colour image.")
    intrinsics: CameraIntrinsics | None = Field(
        None, description="Set at run start from the newest stored intrinsics calibration."
    )

    @property
    def image_hw(self) -> tuple[int, int]:
        """(height, width) of the published frames (after resize), what the policy sees."""
        return self.output_height, self.output_width


class SpaceMouseConfig(Frozen):
    """A 3Dconnexion SpaceMouse as a takeover device (`pip install -e .[spacemouse]`)."""

    device_index: int = Field(0, ge=0, description="Which connected SpaceMouse to open.")
    deadzone: float = Field(
        0.08, ge=0, lt=1,
        description="Axis values below this magnitude count as zero, so a resting hand does "
        "not drift the arm.",
    )
    gain: float = Field(
        1.0, gt=0, le=1.0,
        description="Scale of axis values (after the deadzone) to actions: 1 lets a full push "
        "command a full-scale action (actor.action_scale per step); lower it for fine work.",
    )
    rate_hz: float = Field(
        20.0, gt=0, le=100,
        description="Teleop messages per second. Keep it above the actor's control rate and "
        "well above 1000 / actor.teleop_stale_ms, or the actor sees stale input and holds.",
    )
    frame_yaw_deg: float = Field(
        0.0, ge=-180, le=180,
        description="Direction of the SpaceMouse's forward push (away from the operator) in "
        "the robot base frame, degrees counter-clockwise from the base +x axis seen from "
        "above. 0: the operator stands behind the base looking along +x; 180: the operator "
        "faces the robot. Wrong: the arm moves in a rotated direction.",
    )
    invert_yaw: bool = Field(
        False, description="Flip the sign of the twist axis (yaw actions only)."
    )
    gripper_button: int = Field(
        0, ge=0, le=31,
        description="Button index that toggles the gripper (open <-> closed) on each press.",
    )
    takeover_button: int = Field(
        1, ge=0, le=31,
        description="Button index that starts a takeover on one press and ends it on the next.",
    )

    @model_validator(mode="after")
    def _distinct_buttons(self) -> SpaceMouseConfig:
        if self.gripper_button == self.takeover_button:
            raise ValueError(f"gripper_button and takeover_button are both "
                             f"{self.gripper_button}; give each its own button")
        return self


class CharucoBoardConfig(Frozen):
    """A printable ChArUco calibration board. Measure the printed squares: the true square
    length sets the scale of every translation a calibration recovers."""

    squares_x: int = Field(7, ge=3, le=30, description="Chessboard squares along x.")
    squares_y: int = Field(5, ge=3, le=30, description="Chessboard squares along y.")
    square_length_m: float = Field(
        0.04, gt=0.002, le=0.5, description="Printed square side, m (measure the print)."
    )
    marker_length_m: float = Field(
        0.03, gt=0.001, le=0.5, description="Printed ArUco marker side, m (< square side)."
    )
    dictionary: Literal["DICT_4X4_50", "DICT_4X4_100", "DICT_5X5_100", "DICT_6X6_250"] = Field(
        "DICT_4X4_50",
        description="ArUco dictionary; 4x4 has the largest bits, best for low-resolution "
        "cameras. It must hold squares_x * squares_y / 2 markers.",
    )

    @model_validator(mode="after")
    def _check(self) -> CharucoBoardConfig:
        if self.marker_length_m >= self.square_length_m:
            raise ValueError(f"marker_length_m {self.marker_length_m} must be smaller than "
                             f"square_length_m {self.square_length_m}")
        capacity = int(self.dictionary.rsplit("_", 1)[1])
        if self.squares_x * self.squares_y // 2 > capacity:
            raise ValueError(f"{self.dictionary} holds {capacity} markers; a "
                             f"{self.squares_x}x{self.squares_y} board needs "
                             f"{self.squares_x * self.squares_y // 2}")
        return self
