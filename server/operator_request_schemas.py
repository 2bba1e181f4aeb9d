"""Bodies of the operator-request routes (reset-free training asking a person for help).

Kept apart from server/schemas.py, as the control bodies are, so this resource can change
without touching the shared schema module; the conventions are the same.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import Field

from robolearn.server.schemas import Request, Response


class OperatorRequestPublic(Response):
    """A robot's request for help, or (in the queue, source `preference_query`) a pending
    preference query waiting for an answer."""

    id: int = Field(description="The operator request's id; for source preference_query, "
                    "the preference query's id (another sequence: use `key` to tell items "
                    "apart).")
    source: Literal["operator_request", "preference_query"] = Field(
        "operator_request", description="operator_request: resolve or dismiss it here; "
        "preference_query: answer it on the Preferences page (`ui_link`).")
    key: str = Field("", description="Unique across sources: `operator_request:ID` or "
                     "`preference_query:ID`.")
    run_id: int
    robot: str | None = Field(description="The fleet robot that asked; null: the run's one "
                              "robot, or a preference query whose clips come from several "
                              "robots (see `robots`).")
    robots: list[str] = Field(default_factory=list, description="The named robots it "
                              "concerns: the one that asked, or the robots whose clips a "
                              "preference query shows (two: a mixed pair).")
    ui_link: str | None = Field(None, description="Where the web UI opens it (a hash "
                                "route, e.g. #/preferences?query=ID); null: act on the "
                                "robot (take over, reset by hand) and resolve it.")
    kind: str = Field(description="Why the robot asked: no_progress, workspace_limit, "
                      "repeated_failures (stuck), uncertain_takeover (the learner asks for a "
                      "takeover), preference (a preference query).")
    priority: int = Field(description="0 stuck, 1 takeover, 2 preference: lower is more "
                          "urgent; the queue orders by priority, then age.")
    reason: str = Field(description="What the actor saw, in words.")
    status: Literal["open", "resolved", "dismissed"]
    resolution: Literal["human_reset", "takeover", "dismiss"] | None
    created_at: dt.datetime
    resolved_at: dt.datetime | None
    user_id: int | None = Field(description="Who resolved or dismissed it.")
    waited_s: float = Field(description="How long the robot waited for a person, s: until "
                            "it was answered, or until now while open (a preference query: "
                            "since it was made).")


class RequestQueue(Response):
    """The operator's one queue across robots."""

    run_id: int | None = Field(description="The run whose open requests these are; null: "
                               "no run is running (the queue is empty).")
    requests: list[OperatorRequestPublic] = Field(
        description="Open requests and pending preference queries (not leased to another "
        "operator), the one to take first first: priority, then age.")
    priorities: dict[str, str] = Field(
        description="Each known kind's priority class (stuck, takeover, preference); an "
        "unknown kind counts as stuck.")


class OperatorRequestResolve(Request):
    resolution: Literal["human_reset", "takeover"] = Field(
        description="human_reset: you put the scene back by hand; takeover: you will drive "
        "the arm out of trouble (take over in the control panel). Training resumes either way.")


class WaitsPublic(Response):
    """How long answered items of one kind waited for a person."""

    answered: int = Field(description="How many were answered (closed).")
    mean_s: float | None = Field(description="Mean wait, s; null: none answered.")
    p50_s: float | None = Field(description="Median wait, s.")
    max_s: float | None = Field(description="Longest wait, s.")


class HelpRatesPublic(Response):
    """Human attention a run needed, per hour of recorded robot time, and how long it waited
    for it."""

    run_id: int
    robot_hours: float
    requests: int
    human_resets: int
    interventions: int
    requests_per_hour: float | None
    human_resets_per_hour: float | None
    interventions_per_hour: float | None
    request_waits: WaitsPublic = Field(description="Closed operator requests: opened to "
                                       "resolved or dismissed.")
    preference_waits: WaitsPublic = Field(description="Answered preference queries: made to "
                                          "answered (the live answer; undone ones do not "
                                          "count).")
