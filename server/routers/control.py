"""Operator control of the running actors: e-stop, release, pause, resume, takeover, teleop.

Every command goes to an actor over the wire protocol (`ActorControlClient`) and is
answered with the actor's status once the actor confirmed it.

A fleet (`fleet.robots` in the run config) has an actor and a driver per robot, each on its
own sockets (robolearn.config.fleet.robot_views). The e-stop stops every robot unless one is
named; release, pause, resume, takeover, teleop and status act on one robot, named by
`?robot=` (required when the fleet has more than one robot).

The e-stop is special:
- Any logged-in user may press it, viewers included: stopping can never move the robot,
  and whoever sees it about to hit something must be able to stop it (like the red button
  on the rig). Releasing it is for operators and admins.
- Nothing touches the database before the command is sent: the caller is authenticated from
  the in-memory session (or the token's signature) and the audit entry is written after the
  acknowledgement.
- If a robot's actor does not answer, its e-stop goes straight to its arm driver
  (`via: driver`).
- A fleet's robots are stopped concurrently: one dead actor (a 1 s timeout, then its driver)
  does not delay the others. The answer is 200 only when every robot's latch is confirmed;
  otherwise 503, naming the robots that are NOT stopped, with each robot's result.

Teleop actions are not written to the audit log one by one (a gamepad sends ten a second);
the takeover start and stop around them are.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Annotated, Any

import zmq
from fastapi import APIRouter, Depends, HTTPException, Query, status
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError

from robolearn.actor.control import ActorControlClient, ActorStatus
from robolearn.config import RunConfig
from robolearn.config.fleet import robot_views
from robolearn.errors import ControlRefused, PeerTimeout
from robolearn.protocol import Requester
from robolearn.protocol.messages import Reply
from robolearn.server.control_schemas import (
    ActorState,
    ControlStatus,
    EstopFailure,
    EstopRequest,
    RobotEstop,
    TakeoverRequest,
    TeleopRequest,
)
from robolearn.server.deps import (
    CurrentOperator,
    CurrentUser,
    DbSession,
    Principal,
    ServicesDep,
    audit,
    commit_or_report,
    current_user_without_db,
)
from robolearn.server.services import Services

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/control", tags=["control"])

_CLIENT_KEY = "actor_control"
_DRIVER_KEY = "driver_estop"
_VIEWS_KEY = "control_robots"
_lock = threading.Lock()
# How long the service waits for the actor before it reports it unreachable, s.
_ACTOR_TIMEOUT_S = 1.0


@dataclass(frozen=True)
class RobotTarget:
    """One robot the service controls: its fleet name (None: the run's one robot) and the
    config its processes run on (its own sockets)."""

    name: str | None
    cfg: RunConfig

    @property
    def audit_target(self) -> str:
        return "actor" if self.name is None else f"actor:{self.name}"

    @property
    def label(self) -> str:
        return "the robot" if self.name is None else f"robot {self.name!r}"


def robot_targets(services: Services) -> tuple[RobotTarget, ...]:
    """Every robot of the run: each fleet robot with its view, or the run's one robot."""
    with _lock:
        targets = services.extras.get(_VIEWS_KEY)
        if targets is None:
            cfg = services.config
            targets = services.extras[_VIEWS_KEY] = tuple(
                RobotTarget(view.robot_name if cfg.fleet.robots else None, view)
                for view in robot_views(cfg))
        return targets


def select_robot(services: Services, robot: str | None) -> RobotTarget:
    """The robot a one-robot command is for.

    Raises:
        HTTPException: 422 when a fleet of several robots names none; 404 for a name that
            is none of the run's robots.
    """
    targets = robot_targets(services)
    names = [t.name for t in targets if t.name is not None]
    if robot is None:
        if len(targets) == 1:
            return targets[0]
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            f"this run is a fleet of {len(names)} robots ({', '.join(names)})"
                            ": say which one with ?robot=NAME")
    for target in targets:
        if target.name == robot:
            return target
    if not names:
        raise HTTPException(status.HTTP_404_NOT_FOUND,
                            f"robot {robot!r}: this run has one robot and no fleet; leave "
                            "`robot` out")
    raise HTTPException(status.HTTP_404_NOT_FOUND,
                        f"no robot {robot!r} in this fleet (robots: {', '.join(names)})")


RobotQuery = Annotated[str | None, Query(
    max_length=64, description="The fleet robot to act on; required when the run's fleet has "
    "more than one robot (the e-stop: left out, every robot).")]


def target_robot(services: ServicesDep, robot: RobotQuery = None) -> RobotTarget:
    return select_robot(services, robot)


Target = Annotated[RobotTarget, Depends(target_robot)]


def _client(services: Services, target: RobotTarget) -> ActorControlClient:
    key = _CLIENT_KEY if target.name is None else f"{_CLIENT_KEY}:{target.name}"
    with _lock:
        client = services.extras.get(key)
        if client is None:
            cfg = target.cfg
            client = services.extras[key] = ActorControlClient(
                cfg.actor.control_address,
                cfg.socket_security(cfg.actor.control_address, "service"),
                timeout_s=_ACTOR_TIMEOUT_S, sender="server")
        return client


def control_client(services: ServicesDep, target: Target) -> ActorControlClient:
    return _client(services, target)


Control = Annotated[ActorControlClient, Depends(control_client)]
EstopCaller = Annotated[Principal, Depends(current_user_without_db)]

_Responses = dict[int | str, dict[str, Any]]
_REFUSED: _Responses = {
    409: {"description": "The actor refused (e.g. not in a takeover)."},
    503: {"description": "The actor (and for the e-stop, the driver) did not answer."}}
_ONE_ROBOT: _Responses = {
    404: {"description": "`robot` names none of the run's robots."},
    422: {"description": "A fleet of several robots and no `robot` named."}}


def _public(s: ActorStatus, robot: str | None = None) -> ControlStatus:
    return ControlStatus(estop_latched=s.estop_latched, paused=s.paused, takeover=s.takeover,
                         episode=s.episode, step=s.step, robot=robot)


def _command(call: Callable[[], ActorStatus], what: str, target: RobotTarget) -> ControlStatus:
    try:
        return _public(call(), target.name)
    except ControlRefused as e:
        raise HTTPException(status.HTTP_409_CONFLICT, str(e)) from e
    except PeerTimeout as e:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE,
                            f"{what}: the actor of {target.label} did not answer; is the run's "
                            "actor running (`robolearn up` / `robolearn actor`)?") from e


class _DriverLine:
    """The service's request socket to one arm driver, one request at a time."""

    def __init__(self, cfg: RunConfig) -> None:
        address = cfg.robot.command_address
        self.lock = threading.Lock()
        self.requester = Requester(zmq.Context.instance(), address, "server",
                                   security=cfg.socket_security(address, "service"))

    def close(self) -> None:
        self.requester.close()


def _driver_request(services: Services, target: RobotTarget, command: str,
                    reason: str = "") -> Reply:
    """One arm_command straight to the robot's arm driver (it holds the one e-stop latch).

    Raises:
        PeerTimeout: the driver did not answer.
    """
    key = _DRIVER_KEY if target.name is None else f"{_DRIVER_KEY}:{target.name}"
    with _lock:
        line = services.extras.get(key)
        if line is None:
            line = services.extras[key] = _DriverLine(target.cfg)
    with line.lock:
        return Reply.from_message(line.requester.request(
            "arm_command", {"command": command, "reason": reason}, timeout_s=_ACTOR_TIMEOUT_S))


@dataclass(frozen=True)
class _Stopped:
    result: RobotEstop
    actor: ActorStatus | None  # the actor's full status when it confirmed


def _estop_robot(services: Services, target: RobotTarget, operator: str,
                 reason: str) -> _Stopped:
    """Latch one robot: through its actor, else (no answer, refused) at its driver."""
    try:
        s = _client(services, target).estop(operator=operator, reason=reason)
        return _Stopped(RobotEstop(robot=target.name, estop_latched=s.estop_latched,
                                   via="actor", episode=s.episode, step=s.step), s)
    except (ControlRefused, PeerTimeout) as e:
        log.error("e-stop of %s via its actor failed (%s); sending it to its driver directly",
                  target.label, e)
    try:
        reply = _driver_request(services, target, "estop", f"{operator} via server")
    except PeerTimeout:
        error = "neither the actor nor the arm driver answered"
    else:
        if reply.ok:
            return _Stopped(RobotEstop(robot=target.name, estop_latched=True, via="driver"),
                            None)
        error = f"the driver refused ({reply.reason})"
    log.error("e-stop of %s NOT confirmed: %s", target.label, error)
    return _Stopped(RobotEstop(robot=target.name, estop_latched=False, via=None, error=error),
                    None)


def _estop_all(services: Services, targets: list[RobotTarget], operator: str,
               reason: str) -> list[_Stopped]:
    if len(targets) == 1:
        return [_estop_robot(services, targets[0], operator, reason)]
    # Concurrently: a robot whose actor is dead costs its own timeout, not the others'.
    with ThreadPoolExecutor(max_workers=len(targets), thread_name_prefix="estop") as pool:
        futures = [pool.submit(_estop_robot, services, t, operator, reason) for t in targets]
        return [f.result() for f in futures]


def _combined(stopped: list[_Stopped], robot: str | None) -> ControlStatus:
    results = [s.result for s in stopped]
    if len(stopped) == 1 and stopped[0].actor is not None:
        return _public(stopped[0].actor, robot).model_copy(update={"robots": results})
    actors = [s.actor for s in stopped if s.actor is not None]
    one = len(stopped) == 1
    return ControlStatus(
        estop_latched=all(r.estop_latched for r in results),
        paused=any(a.paused for a in actors), takeover=any(a.takeover for a in actors),
        episode=results[0].episode if one else -1, step=results[0].step if one else -1,
        via="driver" if any(r.via == "driver" for r in results) else "actor",
        robot=robot, robots=results)


def _not_confirmed(results: list[RobotEstop]) -> str:
    failed = [r for r in results if not r.estop_latched]
    if len(results) == 1:
        return (f"e-stop NOT confirmed: {failed[0].error}; use the hardware e-stop")
    latched = [r.robot or "?" for r in results if r.estop_latched]
    return ("e-stop NOT confirmed for " + "; ".join(f"{r.robot}: {r.error}" for r in failed)
            + ": use the hardware e-stop of " + ", ".join(r.robot or "?" for r in failed)
            + (f" (latched: {', '.join(latched)})" if latched else " (no robot latched)"))


@router.post("/estop", response_model=ControlStatus, responses={
    404: _ONE_ROBOT[404], 503: {"model": EstopFailure, "description": "The latch of at least "
                                "one robot is NOT confirmed (which: `robots`)."}})
def estop(user: EstopCaller, services: ServicesDep, body: EstopRequest | None = None,
          robot: Annotated[str | None, Query(max_length=64, description="Stop only this fleet "
                                             "robot; left out: every robot.")] = None,
          ) -> ControlStatus | JSONResponse:
    """Latch the e-stop of every robot (or the one named); answers once each robot's arm
    driver confirmed the latch. Any logged-in user."""
    reason = body.reason if body is not None else ""
    named = body.robot if body is not None and body.robot is not None else robot
    if robot is not None and body is not None and body.robot not in (None, robot):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            f"?robot={robot} and the body's robot {body.robot!r} differ: name "
                            "one robot, once")
    targets = (list(robot_targets(services)) if named is None
               else [select_robot(services, named)])
    stopped = _estop_all(services, targets, user.username, reason)
    results = [s.result for s in stopped]
    # Only now: the latches are confirmed (or not). The robots are stopped whatever happens
    # next, so an audit entry that cannot be written (full disk) is reported, never turned
    # into a 500.
    problem = _audit_estop(services, user, targets, results, reason)
    if not all(r.estop_latched for r in results):
        failure = EstopFailure(detail=_not_confirmed(results), robots=results)
        return JSONResponse(failure.model_dump(mode="json"),
                            status_code=status.HTTP_503_SERVICE_UNAVAILABLE)
    result = _combined(stopped, targets[0].name if len(targets) == 1 else None)
    if problem is not None:
        result = result.model_copy(update={"audit_error": problem})
    return result


def _audit_estop(services: Services, user: Principal, targets: list[RobotTarget],
                 results: list[RobotEstop], reason: str) -> str | None:
    """One audit entry per robot; what could not be written, or None."""
    try:
        with services.store.session() as db:
            for target, result in zip(targets, results, strict=True):
                detail: dict[str, Any] = {"reason": reason, "via": result.via}
                if not result.estop_latched:
                    detail["not_confirmed"] = result.error
                audit(db, user, "control.estop", target.audit_target, detail)
            problem = commit_or_report(db, f"audit entry of the e-stop by {user.username}")
    except SQLAlchemyError as exc:  # opening the session itself failed
        problem = f"audit entry of the e-stop by {user.username} could not be written ({exc})"
        log.error("%s", problem)
    return problem


@router.post("/estop/release", responses={**_REFUSED, **_ONE_ROBOT})
def release_estop(user: CurrentOperator, target: Target, control: Control,
                  db: DbSession) -> ControlStatus:
    """Release one robot's e-stop (its driver must confirm); its actor starts a new episode."""
    result = _command(lambda: control.release_estop(operator=user.username), "release", target)
    audit(db, user, "control.estop_release", target.audit_target)
    db.commit()
    return result


@router.post("/pause", responses={**_REFUSED, **_ONE_ROBOT})
def pause(user: CurrentOperator, target: Target, control: Control,
          db: DbSession) -> ControlStatus:
    """Hold one robot's actor at its next step boundary with the arm stopped."""
    result = _command(lambda: control.pause(operator=user.username), "pause", target)
    audit(db, user, "control.pause", target.audit_target)
    db.commit()
    return result


@router.post("/resume", responses={**_REFUSED, **_ONE_ROBOT})
def resume(user: CurrentOperator, target: Target, control: Control,
           db: DbSession) -> ControlStatus:
    result = _command(lambda: control.resume(operator=user.username), "resume", target)
    audit(db, user, "control.resume", target.audit_target)
    db.commit()
    return result


@router.post("/takeover", responses={**_REFUSED, **_ONE_ROBOT})
def takeover(user: CurrentOperator, target: Target, control: Control, body: TakeoverRequest,
             db: DbSession) -> ControlStatus:
    """Start or end a takeover of one robot: the operator's teleop actions replace the
    policy's, and those steps are recorded as interventions."""
    result = _command(lambda: control.takeover(body.active, operator=user.username),
                      "takeover", target)
    audit(db, user, "control.takeover_start" if body.active else "control.takeover_stop",
          target.audit_target)
    db.commit()
    return result


@router.post("/teleop", responses={**_REFUSED, **_ONE_ROBOT})
def teleop(_user: CurrentOperator, target: Target, control: Control,
           body: TeleopRequest) -> ControlStatus:
    """Set the operator's action for one robot during its takeover (409 outside one)."""
    return _command(lambda: control.teleop(body.action), "teleop", target)


@router.get("/status", responses=_ONE_ROBOT)
def actor_status(_user: CurrentUser, target: Target, control: Control,
                 services: ServicesDep) -> ActorState:
    """Whether one robot's actor answers, and its e-stop, pause and takeover state."""
    try:
        return ActorState(reachable=True, status=_public(control.status(), target.name))
    except PeerTimeout:
        # The actor is gone, but the latch lives in the driver: show what it says.
        return ActorState(reachable=False, driver_estop=_driver_latch(services, target))


def _driver_latch(services: Services, target: RobotTarget) -> bool | None:
    try:
        reply = _driver_request(services, target, "status")
    except PeerTimeout:
        return None
    data = reply.data or {}
    latched = data.get("estop") if reply.ok else None
    return latched if isinstance(latched, bool) else None
