"""Operator control of the running actor: e-stop, release, pause, resume, takeover, teleop.

Every command goes to the actor over the wire protocol (`ActorControlClient`) and is
answered with the actor's status once the actor confirmed it.

The e-stop is special:
- Any logged-in user may press it, viewers included: stopping can never move the robot,
  and whoever sees it about to hit something must be able to stop it (like the red button
  on the rig). Releasing it is for operators and admins.
- Nothing touches the database before the command is sent: the caller is authenticated from
  the in-memory session (or the token's signature) and the audit entry is written after the
  acknowledgement.
- If the actor does not answer, the e-stop goes straight to the arm driver (`via: driver`).

Teleop actions are not written to the audit log one by one (a gamepad sends ten a second);
the takeover start and stop around them are.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Annotated

import zmq
from fastapi import APIRouter, Depends, HTTPException, status
from sqlalchemy.exc import SQLAlchemyError

from robolearn.actor.control import ActorControlClient, ActorStatus
from robolearn.errors import ControlRefused, PeerTimeout
from robolearn.protocol import Requester
from robolearn.protocol.messages import Reply
from server.control_schemas import (
    ActorState,
    ControlStatus,
    EstopRequest,
    TakeoverRequest,
    TeleopRequest,
)
from server.deps import (
    CurrentOperator,
    CurrentUser,
    DbSession,
    Principal,
    ServicesDep,
    audit,
    commit_or_report,
    current_user_without_db,
)
from server.services import Services

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/control", tags=["control"])

_CLIENT_KEY = "actor_control"
_DRIVER_KEY = "driver_estop"
_lock = threading.Lock()
# How long the service waits for the actor before it reports it unreachable, s.
_ACTOR_TIMEOUT_S = 1.0


def _client(services: Services) -> ActorControlClient:
    with _lock:
        client = services.extras.get(_CLIENT_KEY)
        if client is None:
            cfg = services.config
            client = services.extras[_CLIENT_KEY] = ActorControlClient(
                cfg.actor.control_address,
                cfg.socket_security(cfg.actor.control_address, "service"),
                timeout_s=_ACTOR_TIMEOUT_S, sender="server")
        return client


def control_client(services: ServicesDep) -> ActorControlClient:
    return _client(services)


Control = Annotated[ActorControlClient, Depends(control_client)]
EstopCaller = Annotated[Principal, Depends(current_user_without_db)]

_REFUSED = {409: {"description": "The actor refused (e.g. not in a takeover)."},
            503: {"description": "The actor (and for the e-stop, the driver) did not answer."}}


def _public(s: ActorStatus) -> ControlStatus:
    return ControlStatus(estop_latched=s.estop_latched, paused=s.paused, takeover=s.takeover,
                         episode=s.episode, step=s.step)


def _command(call: Callable[[], ActorStatus], what: str) -> ControlStatus:
    try:
        return _public(call())
    except ControlRefused as e:
        raise HTTPException(status.HTTP_409_CONFLICT, str(e)) from e
    except PeerTimeout as e:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE,
                            f"{what}: the actor did not answer; is the run's actor running "
                            "(`robolearn up` / `robolearn actor`)?") from e


def _driver_request(services: Services, command: str, reason: str = "") -> Reply:
    """One arm_command straight to the arm driver (it holds the one e-stop latch).

    Raises:
        PeerTimeout: the driver did not answer.
    """
    cfg = services.config
    with _lock:
        req = services.extras.get(_DRIVER_KEY)
        if req is None:
            req = services.extras[_DRIVER_KEY] = Requester(
                zmq.Context.instance(), cfg.robot.command_address, "server",
                security=cfg.socket_security(cfg.robot.command_address, "service"))
        return Reply.from_message(req.request(
            "arm_command", {"command": command, "reason": reason}, timeout_s=_ACTOR_TIMEOUT_S))


def _driver_estop(services: Services, reason: str) -> ControlStatus:
    """Latch the e-stop at the arm driver itself (the actor did not answer)."""
    try:
        reply = _driver_request(services, "estop", reason)
    except PeerTimeout as e:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "e-stop NOT confirmed: neither the actor nor the arm driver answered; use the "
            "hardware e-stop") from e
    if not reply.ok:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE,
                            f"e-stop NOT confirmed: the driver refused ({reply.reason});"
                            " use the hardware e-stop")
    return ControlStatus(estop_latched=True, paused=False, takeover=False, episode=-1,
                         step=-1, via="driver")


@router.post("/estop", responses=_REFUSED)
def estop(user: EstopCaller, services: ServicesDep, body: EstopRequest | None = None
          ) -> ControlStatus:
    """Latch the e-stop; answers once the arm driver confirmed the latch. Any logged-in user."""
    reason = body.reason if body is not None else ""
    try:
        result = _public(_client(services).estop(operator=user.username, reason=reason))
    except (ControlRefused, PeerTimeout) as e:
        log.error("e-stop via the actor failed (%s); sending it to the driver directly", e)
        result = _driver_estop(services, f"{user.username} via server")
    # Only now: the latch is confirmed. The robot is stopped whatever happens next, so an
    # audit entry that cannot be written (full disk) is reported, never turned into a 500.
    try:
        with services.store.session() as db:
            audit(db, user, "control.estop", "actor", {"reason": reason, "via": result.via})
            problem = commit_or_report(db, f"audit entry of the e-stop by {user.username}")
    except SQLAlchemyError as exc:  # opening the session itself failed
        problem = f"audit entry of the e-stop by {user.username} could not be written ({exc})"
        log.error("%s", problem)
    if problem is not None:
        result = result.model_copy(update={"audit_error": problem})
    return result


@router.post("/estop/release", responses=_REFUSED)
def release_estop(user: CurrentOperator, control: Control, db: DbSession) -> ControlStatus:
    """Release the e-stop (the driver must confirm); the actor starts a new episode."""
    result = _command(lambda: control.release_estop(operator=user.username), "release")
    audit(db, user, "control.estop_release", "actor")
    db.commit()
    return result


@router.post("/pause", responses=_REFUSED)
def pause(user: CurrentOperator, control: Control, db: DbSession) -> ControlStatus:
    """Hold the actor at its next step boundary with the arm stopped."""
    result = _command(lambda: control.pause(operator=user.username), "pause")
    audit(db, user, "control.pause", "actor")
    db.commit()
    return result


@router.post("/resume", responses=_REFUSED)
def resume(user: CurrentOperator, control: Control, db: DbSession) -> ControlStatus:
    result = _command(lambda: control.resume(operator=user.username), "resume")
    audit(db, user, "control.resume", "actor")
    db.commit()
    return result


@router.post("/takeover", responses=_REFUSED)
def takeover(user: CurrentOperator, control: Control, body: TakeoverRequest,
             db: DbSession) -> ControlStatus:
    """Start or end a takeover: the operator's teleop actions replace the policy's, and
    those steps are recorded as interventions."""
    result = _command(lambda: control.takeover(body.active, operator=user.username),
                      "takeover")
    audit(db, user, "control.takeover_start" if body.active else "control.takeover_stop",
          "actor")
    db.commit()
    return result


@router.post("/teleop", responses=_REFUSED)
def teleop(_user: CurrentOperator, control: Control, body: TeleopRequest) -> ControlStatus:
    """Set the operator's action during a takeover (409 outside one)."""
    return _command(lambda: control.teleop(body.action), "teleop")


@router.get("/status")
def actor_status(_user: CurrentUser, control: Control, services: ServicesDep) -> ActorState:
    """Whether the actor answers, and its e-stop, pause and takeover state."""
    try:
        return ActorState(reachable=True, status=_public(control.status()))
    except PeerTimeout:
        # The actor is gone, but the latch lives in the driver: show what it says.
        return ActorState(reachable=False, driver_estop=_driver_latch(services))


def _driver_latch(services: Services) -> bool | None:
    try:
        reply = _driver_request(services, "status")
    except PeerTimeout:
        return None
    data = reply.data or {}
    latched = data.get("estop") if reply.ok else None
    return latched if isinstance(latched, bool) else None
