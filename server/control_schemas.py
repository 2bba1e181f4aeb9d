"""Bodies of the control routes (e-stop, pause, takeover, teleop) and the live bridge.

Kept apart from server/schemas.py so the control path (written against the actor's wire
interface) can change without touching the resource schemas; the conventions are the same.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from server.schemas import Request, Response

Unit = Annotated[float, Field(ge=-1.0, le=1.0, allow_inf_nan=False)]


class ControlStatus(Response):
    """The actor's state after a command."""

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


class ActorState(Response):
    """Whether the actor answers and, if it does, its state."""

    reachable: bool = Field(description="false: the actor did not answer (not running?).")
    status: ControlStatus | None = None
    driver_estop: bool | None = Field(
        None, description="When the actor does not answer: the arm driver's own e-stop latch "
        "(null: the driver did not answer either).")


class EstopRequest(Request):
    reason: Annotated[str, Field(max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$")] = ""


class TakeoverRequest(Request):
    active: bool = Field(description="true: the operator's teleop actions drive the robot; "
                         "false: the policy drives again.")


class TeleopRequest(Request):
    action: list[Unit] = Field(
        min_length=4, max_length=5,
        description="Policy-space action: dx, dy, dz[, dyaw], gripper (-1 open .. 1 closed), "
        "each in [-1, 1]. Applies until replaced; stale after actor.teleop_stale_ms.")
