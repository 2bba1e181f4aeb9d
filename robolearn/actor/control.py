"""Operator control of a running actor, client side: e-stop, pause, takeover and teleop.

The actor serves these on `actor.control_address` (see `robolearn.actor.control_server`)
on a thread of its own, so a command never waits for a control step, the database or the
learner.

    >>> client = ActorControlClient(cfg.actor.control_address)
    >>> client.estop()          # returns once the driver has confirmed the latch
    ActorStatus(estop_latched=True, paused=False, takeover=False, episode=3, step=41)
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import zmq

from robolearn.errors import ControlRefused, PeerTimeout, ProtocolError
from robolearn.protocol import Message, Requester, SocketSecurity
from robolearn.protocol.messages import Reply

log = logging.getLogger(__name__)

__all__ = ["ActorControlClient", "ActorStatus", "ControlRefused", "PeerTimeout"]


@dataclass(frozen=True)
class ActorStatus:
    """What the actor reports after every command.

    Attributes:
        estop_latched: the actor's e-stop is latched (nothing moves until released).
        paused: the loop holds at step boundaries with the arm stopped.
        takeover: an operator's teleop actions replace the policy's.
        episode: index of the current (or last) episode in this actor's run, -1 before any.
        step: steps taken in that episode.
    """

    estop_latched: bool
    paused: bool
    takeover: bool
    episode: int
    step: int

    def to_wire(self) -> dict[str, Any]:
        return {"estop_latched": self.estop_latched, "paused": self.paused,
                "takeover": self.takeover, "episode": self.episode, "step": self.step}

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> ActorStatus:
        """Raises:
            ControlRefused: ("bad_reply") the data lacks a status field or has a wrong type.
        """
        try:
            values = {
                "estop_latched": data["estop_latched"], "paused": data["paused"],
                "takeover": data["takeover"], "episode": data["episode"], "step": data["step"],
            }
        except (KeyError, TypeError) as e:
            raise ControlRefused("bad_reply", f"actor reply lacks status field {e}") from e
        for name in ("estop_latched", "paused", "takeover"):
            if type(values[name]) is not bool:
                raise ControlRefused("bad_reply", f"status field {name} is not a bool")
        for name in ("episode", "step"):
            if type(values[name]) is not int:
                raise ControlRefused("bad_reply", f"status field {name} is not an int")
        return cls(**values)


class ActorControlClient:
    """Send operator commands to one actor and wait for its answer.

    Thread-safe. The e-stop has a socket and a lock of its own, so it never queues behind
    another caller's teleop or status request (or behind one waiting out a dead actor).

    Args:
        address: the actor's control address (cfg.actor.control_address).
        security: CURVE settings of the run (cfg.security.socket_security()).
        timeout_s: how long to wait for each answer. The e-stop waits up to
            max(timeout_s, 1 s): the actor answers only after the driver confirmed.
        ctx: ZeroMQ context; None uses the process-wide instance.
        sender: name in the envelope (the actor logs it).

    Every command returns the actor's status after it, or raises:
        PeerTimeout: the actor did not answer in time (is it running?).
        ControlRefused: the actor refused (reason slug and a detail saying what to do).
    """

    def __init__(self, address: str, security: SocketSecurity | None = None,
                 timeout_s: float = 1.0, *, ctx: zmq.Context[Any] | None = None,
                 sender: str = "operator") -> None:
        self.address = address
        self.timeout_s = timeout_s
        self._ctx = ctx or zmq.Context.instance()
        self._req = Requester(self._ctx, address, sender, security=security,
                              default_timeout_s=timeout_s)
        self._estop_req = Requester(self._ctx, address, f"{sender}-estop", security=security,
                                    default_timeout_s=max(timeout_s, 1.0))
        self._lock = threading.Lock()
        self._estop_lock = threading.Lock()

    def _call(self, command: str, body: dict[str, Any] | None = None,
              action: np.ndarray | None = None, *, estop: bool = False) -> ActorStatus:
        req, lock = (self._estop_req, self._estop_lock) if estop else (self._req, self._lock)
        arrays = {"action": action} if action is not None else None
        with lock:
            reply = req.request("actor_command", {"command": command, **(body or {})}, arrays)
        return self._status_of(command, reply)

    @staticmethod
    def _status_of(command: str, msg: Message) -> ActorStatus:
        reply = Reply.from_message(msg)
        data = reply.data or {}
        if not reply.ok:
            raise ControlRefused(reply.reason,
                                 f"actor refused {command}: {data.get('detail', '')}")
        return ActorStatus.from_wire(data)

    def estop(self, *, operator: str = "", reason: str = "") -> ActorStatus:
        """Latch the e-stop. Returns only after the driver confirmed the latch."""
        return self._call("estop", {"operator": operator, "reason": reason}, estop=True)

    def release_estop(self, *, operator: str = "") -> ActorStatus:
        """Release the e-stop (the driver must confirm). The actor starts a new episode."""
        return self._call("release_estop", {"operator": operator})

    def pause(self, *, operator: str = "") -> ActorStatus:
        """Hold the loop at the next step boundary with the arm stopped."""
        return self._call("pause", {"operator": operator})

    def resume(self, *, operator: str = "") -> ActorStatus:
        return self._call("resume", {"operator": operator})

    def takeover(self, active: bool, *, operator: str = "") -> ActorStatus:
        """Start (True) or end (False) an operator takeover of the robot."""
        return self._call("takeover", {"active": bool(active), "operator": operator})

    def teleop(self, action: Sequence[float]) -> ActorStatus:
        """Set the operator's action (policy space, each value in [-1, 1]); only while a
        takeover is active. It stays in force until replaced or stale."""
        try:
            arr = np.asarray(action, dtype=np.float32).reshape(-1)
            return self._call("teleop", action=arr)
        except (TypeError, ValueError) as e:
            raise ControlRefused("bad_action", f"teleop action {action!r:.80} is not a vector "
                                 "of numbers") from e
        except ProtocolError as e:  # NaN/inf: refused before it leaves this process
            raise ControlRefused("bad_action", f"teleop action: {e.detail}") from e

    def status(self) -> ActorStatus:
        return self._call("status")

    def close(self) -> None:
        self._req.close()
        self._estop_req.close()

    def __enter__(self) -> ActorControlClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
