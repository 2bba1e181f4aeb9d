"""Bodies of the control routes (e-stop, pause, takeover, teleop) and the live bridge.

Kept apart from server/schemas.py so the control path (written against the actor's wire
interface) can change without touching the resource schemas; the conventions are the same.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from robolearn.server.operator_request_schemas import OperatorRequestPublic
from robolearn.server.schemas import Request, Response

Unit = Annotated[float, Field(ge=-1.0, le=1.0, allow_inf_nan=False)]


class RobotEstop(Response):
    """One robot's answer to an e-stop."""

    robot: str | None = Field(description="The fleet robot; None: the run's one robot.")
    estop_latched: bool = Field(description="true: its actor or its arm driver confirmed the "
                                "latch; false: NOT confirmed (see error).")
    via: Literal["actor", "driver"] | None = Field(
        description="Who confirmed it: its actor, or (the actor did not answer) its arm "
        "driver; null when nobody did.")
    episode: int = Field(-1, description="The actor's episode (-1: unknown).")
    step: int = Field(-1, description="Steps taken in that episode (-1: unknown).")
    error: str | None = Field(None, description="Why the latch is not confirmed.")


class ControlStatus(Response):
    """The actor's state after a command (for a fleet e-stop of every robot: all of them
    together, and each in `robots`)."""

    estop_latched: bool
    paused: bool
    takeover: bool
    episode: int = Field(description="The actor's current episode index (-1 before any).")
    step: int = Field(description="Steps taken in that episode.")
    via: Literal["actor", "driver"] = Field(
        "actor", description="driver: the actor did not answer and the e-stop went to the arm "
        "driver directly (episode and step are then unknown, -1).")
    audit_error: str | None = Field(
        None, description="Set when the command took effect but its audit entry could not "
        "be written (e.g. the data disk is full): what was not recorded.")
    robot: str | None = Field(
        None, description="The fleet robot this is the state of; None: the run's one robot, "
        "or every robot of a fleet (an e-stop of all: see `robots`).")
    robots: list[RobotEstop] = Field(
        default_factory=list, description="E-stop only: each robot's answer (in a fleet "
        "every robot's unless one was named). The e-stop answers 200 only when every one "
        "latched; otherwise 503 with these in the body beside `detail`.")


class EstopFailure(Response):
    """An e-stop not confirmed for at least one robot: which ones latched and which not."""

    detail: str
    robots: list[RobotEstop] = Field(default_factory=list)


class ActorState(Response):
    """Whether the actor answers and, if it does, its state."""

    reachable: bool = Field(description="false: the actor did not answer (not running?).")
    status: ControlStatus | None = None
    driver_estop: bool | None = Field(
        None, description="When the actor does not answer: the arm driver's own e-stop latch "
        "(null: the driver did not answer either).")


class EstopRequest(Request):
    reason: Annotated[str, Field(max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$")] = ""
    robot: str | None = Field(
        None, description="Stop only this fleet robot (same as `?robot=`); left out: every "
        "robot of the run.")


class TakeoverRequest(Request):
    active: bool = Field(description="true: the operator's teleop actions drive the robot; "
                         "false: the policy drives again.")


class TeleopRequest(Request):
    action: list[Unit] = Field(
        min_length=4, max_length=5,
        description="Policy-space action: dx, dy, dz[, dyaw], gripper (-1 open .. 1 closed), "
        "each in [-1, 1]. Applies until replaced; stale after actor.teleop_stale_ms.")


class FleetRobotState(Response):
    """One robot as operators watch it: its actor's newest telemetry and its practice in the
    run training now."""

    name: str | None = Field(description="The fleet robot; None: the run's one robot.")
    state: str = Field(description="The actor's state from its newest telemetry: running, "
                       "estop, paused, policy_fault, waiting_for_weights, operator_request, "
                       "...; `unknown` before any telemetry came.")
    stale: bool = Field(description="No telemetry for more than `stale_after_s` (or none "
                        "yet): the actor may be dead or unreachable; the state is old news.")
    telemetry_age_s: float | None = Field(description="Seconds since its last telemetry "
                                          "reached this service; null: none yet.")
    estop: bool | None = None
    paused: bool | None = None
    takeover: bool | None = None
    episode: int | None = Field(None, description="The actor's episode index.")
    step: int | None = Field(None, description="Step within that episode.")
    success: bool | None = Field(None, description="Whether its last step succeeded.")
    success_prob: float | None = None
    weights_version: int | None = Field(None, description="The learner weights it acts "
                                        "with (null: none received).")
    learner_alive: bool | None = None
    waiting_for_operator: bool = Field(
        False, description="The actor is paused on an operator request (reset-free "
        "training got stuck): it holds until the request is answered.")
    requests: list[OperatorRequestPublic] = Field(
        default_factory=list, description="Its open operator requests and the pending "
        "preference queries of its clips in the running run, the one to take first first "
        "(priority, then age); each says how long it waited.")
    cameras: list[str] = Field(default_factory=list, description="Its live camera names.")
    episodes: int | None = Field(None, description="Complete non-demo episodes in the run "
                                 "(null: no run is training).")
    success_rate: float | None = None
    intervention_episodes: int | None = None
    robot_hours: float | None = None
    interventions_per_robot_hour: float | None = None


class FleetStatus(Response):
    """Every robot of the run config, for the Fleet page."""

    fleet: bool = Field(description="false: the run config has one robot and no fleet.")
    run_id: int | None = Field(description="The newest running run (the practice numbers "
                               "come from it); null when none is running.")
    run_name: str | None = None
    stale_after_s: float = Field(description="Telemetry older than this marks a robot stale.")
    open_requests: int = Field(0, description="The run's open operator requests, every "
                               "robot's, and its pending preference queries (GET "
                               "/api/operator-requests/queue lists them in order).")
    queue: list[OperatorRequestPublic] = Field(
        default_factory=list, description="That whole queue, the one to take first first "
        "(priority, then age), including preference queries whose clips come from several "
        "robots (on no robot's card).")
    robots: list[FleetRobotState]
