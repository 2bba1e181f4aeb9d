"""Bodies of the operator-request routes (reset-free training asking a person for help).

Kept apart from server/schemas.py, as the control bodies are, so this resource can change
without touching the shared schema module; the conventions are the same.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import Field

from server.schemas import Request, Response


class OperatorRequestPublic(Response):
    id: int
    run_id: int
    kind: str = Field(description="Why the robot asked: no_progress, workspace_limit, "
                      "repeated_failures.")
    reason: str = Field(description="What the actor saw, in words.")
    status: Literal["open", "resolved", "dismissed"]
    resolution: Literal["human_reset", "takeover", "dismiss"] | None
    created_at: dt.datetime
    resolved_at: dt.datetime | None
    user_id: int | None = Field(description="Who resolved or dismissed it.")


class OperatorRequestResolve(Request):
    resolution: Literal["human_reset", "takeover"] = Field(
        description="human_reset: you put the scene back by hand; takeover: you will drive "
        "the arm out of trouble (take over in the control panel). Training resumes either way.")


class HelpRatesPublic(Response):
    """Human attention a run needed, per hour of recorded robot time."""

    run_id: int
    robot_hours: float
    requests: int
    human_resets: int
    interventions: int
    requests_per_hour: float | None
    human_resets_per_hour: float | None
    interventions_per_hour: float | None
