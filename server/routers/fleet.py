"""The fleet at a glance: every robot's newest state (from its actor's telemetry, through
the live hub), its practice in the run training now and its open operator requests and
pending preference queries (from the store).

For a run config without a fleet the one robot is listed, named null, so the page works
the same for one robot.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter

from robolearn.protocol.messages import Telemetry as TelemetryRecord
from robolearn.server.control_schemas import FleetRobotState, FleetStatus
from robolearn.server.deps import CurrentUser, DbSession, ServicesDep
from robolearn.server.live import LiveHub, finite, hub_for
from robolearn.server.operator_request_schemas import OperatorRequestPublic
from robolearn.server.routers.control import RobotTarget, robot_targets
from robolearn.server.routers.operator_requests import public_request, queue_of
from robolearn.store import runs
from robolearn.store.episodes import RobotSummary, robot_summaries
from robolearn.store.operator_requests import QueueItem

router = APIRouter(prefix="/api/fleet", tags=["fleet"])

STALE_S = 5.0
"""A robot whose actor sent no telemetry for this long is shown stale. An actor publishes
every control step (10 Hz) and a heartbeat while it holds (e-stop, pause, waiting), so
seconds of silence mean it is dead, hung or unreachable."""
_FIRST_WAIT_S = 1.0  # a hub just started subscribes first


@router.get("")
def fleet_status(user: CurrentUser, services: ServicesDep, db: DbSession) -> FleetStatus:
    """Every robot's state, episode and step, weights and learner health, how long since
    its last telemetry, and its success rate and interventions per robot-hour in the
    newest running run; and the operator's queue (open requests and pending preference
    queries), whole and per robot."""
    targets = robot_targets(services)
    hub = hub_for(services)
    _wait_for_first_telemetry(hub, len(targets))
    running = next((r for r in runs.list_runs(db, newest_first=True)
                    if r.status == "running"), None)
    summaries: dict[str | None, RobotSummary] = {}
    queue: list[QueueItem] = []
    public: list[OperatorRequestPublic] = []
    if running is not None:
        summaries = {s.robot: s for s in robot_summaries(db, running.id)}
        queue, now = queue_of(db, services, running.id, user.id)
        public = [public_request(r, now) for r in queue]
    robots = []
    for t in targets:
        state = _robot_state(t, hub, summaries.get(t.name) if running is not None else None,
                             running is not None)
        # A preference query of clips from several robots (robot null) is on no card of
        # a fleet; the whole queue lists it.
        state.requests = [p for p in public if p.robot == t.name]
        robots.append(state)
    return FleetStatus(
        fleet=bool(services.config.fleet.robots),
        run_id=running.id if running is not None else None,
        run_name=running.name if running is not None else None,
        stale_after_s=STALE_S, open_requests=len(queue), queue=public, robots=robots)


def _wait_for_first_telemetry(hub: LiveHub, robots: int) -> None:
    while (len(hub.latest) < robots
           and time.monotonic() - hub.started_s < _FIRST_WAIT_S):
        time.sleep(0.05)


def _robot_state(target: RobotTarget, hub: LiveHub, summary: RobotSummary | None,
                 run: bool) -> FleetRobotState:
    practice: dict[str, Any] = {}
    if summary is not None:
        practice = {"episodes": summary.episodes, "success_rate": summary.success_rate,
                    "intervention_episodes": summary.intervention_episodes,
                    "robot_hours": round(summary.robot_hours, 6),
                    "interventions_per_robot_hour": summary.interventions_per_robot_hour}
    elif run:  # a run is training, but this robot finished no episode in it yet
        practice = {"episodes": 0, "intervention_episodes": 0, "robot_hours": 0.0}
    cameras = [c.name for c in target.cfg.cameras] if target.cfg.actor.live_fps > 0 else []
    latest = hub.latest.get(target.name)
    if latest is None:
        return FleetRobotState(name=target.name, state="unknown", stale=True,
                               telemetry_age_s=None, cameras=cameras, **practice)
    msg, received_s = latest
    values: dict[str, Any] = finite(TelemetryRecord.from_message(msg).values)
    age_s = time.monotonic() - received_s
    state = str(values.get("state") or "unknown")
    return FleetRobotState(
        name=target.name, state=state, stale=age_s > STALE_S,
        telemetry_age_s=round(age_s, 3), estop=_bool(values.get("estop")),
        paused=_bool(values.get("paused")), takeover=_bool(values.get("takeover")),
        episode=_int(values.get("episode")), step=_int(values.get("episode_step")),
        success=_bool(values.get("success")), success_prob=_float(values.get("success_prob")),
        weights_version=_int(values.get("weights_version")),
        learner_alive=_bool(values.get("learner_alive")),
        waiting_for_operator=state == "operator_request", cameras=cameras, **practice)


# Telemetry is the actor's plain dict (not validated on its hot path): take what has the
# declared type and leave out what does not, rather than fail the whole page.
def _bool(v: Any) -> bool | None:
    return v if isinstance(v, bool) else None


def _int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _float(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None
