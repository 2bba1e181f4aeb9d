"""WebSocket `/ws/live`: the actors' telemetry and live camera frames, relayed to browsers.

One hub per app subscribes to the telemetry address of every robot's actor (a fleet's
robots each have their own; robolearn.config.fleet), one thread per robot, and hands each
new message to every connected client, tagged with the robot's name. `?robot=NAME` watches
one robot only. Each client has a per-stream rate cap
(`?fps=`, at most `MAX_FPS`) and a bounded queue: when a client reads slower than messages
arrive, the oldest queued ones are dropped, so a slow viewer costs a fixed amount of memory
and never slows the others (or the actor, which only publishes).

Wire format to the client:
- telemetry: a text message, JSON `{"type": "telemetry", "robot": ..., "sent_ns": ...,
  "values": {...}}`.
- frames: a binary message, a JSON header (`{"type": "frame", "robot", "camera", "width",
  "height", "episode", "step", "sent_ns"}`), one newline byte, then the JPEG bytes.
`robot` is the fleet robot's name (null for a run of one robot).
`sent_ns` is the actor's monotonic send time (comparable on the same machine only).

Who may watch: any logged-in user (the session cookie, which a browser sends with the
handshake, or `Authorization: Bearer`). A handshake from another origin is refused. The
credentials are checked again every `RECHECK_S` while the viewer watches: a logout, an
expired session, a revoked token, or a user deactivated, deleted or given another role
closes the socket (code 1008) within a second, not when the viewer next reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import zmq
from fastapi import APIRouter, HTTPException, WebSocket, WebSocketDisconnect, status
from sqlalchemy.exc import SQLAlchemyError

from robolearn.actor.live import jpeg_of
from robolearn.actor.telemetry import Telemetry
from robolearn.errors import ProtocolError, StoreError
from robolearn.protocol import Message, Subscriber
from robolearn.protocol.messages import LiveFrame
from robolearn.protocol.messages import Telemetry as TelemetryRecord
from robolearn.server import schemas
from robolearn.server.auth import SESSION_COOKIE, hash_fingerprint
from robolearn.server.deps import CurrentUser, ServicesDep
from robolearn.server.routers.control import RobotQuery, robot_targets, select_robot
from robolearn.server.services import Services
from robolearn.store import users
from robolearn.store.models import User

log = logging.getLogger(__name__)

router = APIRouter(tags=["live"])

MAX_FPS = 10.0
"""Most messages per second per stream (telemetry, each camera) one client gets."""
QUEUE_LEN = 8
"""Messages one client may have waiting; older ones are dropped beyond this."""
RECHECK_S = 0.5
"""How often a watching viewer's credentials are checked again, s."""
_HUB_KEY = "live_hub"
_hub_lock = threading.Lock()


@dataclass(eq=False)  # identity: clients live in a set
class LiveClient:
    """One connected viewer: its rate cap, its bounded queue and what it has missed."""

    loop: asyncio.AbstractEventLoop
    period_ns: int
    robot: str | None = None  # watch only this fleet robot; None: every robot
    queue: deque[str | bytes] = field(default_factory=lambda: deque(maxlen=QUEUE_LEN))
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    last_ns: dict[str, int] = field(default_factory=dict)
    dropped: int = 0  # dropped from a full queue (the client read too slowly)
    skipped: int = 0  # skipped by the rate cap
    sent: int = 0

    def offer(self, stream: str, stamp_ns: int, payload: str | bytes,
              robot: str | None = None) -> None:
        """Called from a hub thread."""
        if self.robot is not None and robot != self.robot:
            return
        if robot is not None:
            stream = f"{robot}/{stream}"  # each robot's streams have their own rate cap
        last = self.last_ns.get(stream)
        # 10% slack: a 10 fps cap on a 10 Hz stream must not halve it on early ticks.
        if last is not None and stamp_ns - last < self.period_ns * 0.9:
            self.skipped += 1
            return
        self.last_ns[stream] = stamp_ns
        if len(self.queue) == self.queue.maxlen:
            self.dropped += 1  # deque drops the oldest on append
        self.queue.append(payload)
        self.loop.call_soon_threadsafe(self.ready.set)

    async def next(self) -> str | bytes:
        while not self.queue:
            self.ready.clear()
            if self.queue:
                break
            await self.ready.wait()
        return self.queue.popleft()


def finite(value: Any) -> Any:
    """`value` with every non-finite float (NaN, ±inf) inside it as None.

    A policy that faults reports a NaN Q, and a failing reward model a NaN probability: JSON
    has no such numbers, and browsers and `json.loads` elsewhere reject the tokens. None is
    what the telemetry type declares for "no value"."""
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def encode_telemetry(msg: Message, robot: str | None = None) -> str:
    values = TelemetryRecord.from_message(msg).values
    return json.dumps({"type": "telemetry", "robot": robot, "sent_ns": msg.sent_ns,
                       "values": finite(values)}, allow_nan=False, default=str)


def encode_frame(msg: Message, robot: str | None = None) -> bytes:
    frame = LiveFrame.from_message(msg)
    header = {"type": "frame", "robot": robot, "camera": frame.camera, "width": frame.width,
              "height": frame.height, "episode": frame.episode, "step": frame.step,
              "sent_ns": msg.sent_ns}
    return json.dumps(header).encode() + b"\n" + jpeg_of(frame)


@dataclass(frozen=True)
class LiveSource:
    """One robot's actor telemetry socket and the cameras whose frames are relayed."""

    robot: str | None  # the fleet robot; None: the run's one robot
    address: str
    cameras: tuple[str, ...]
    security: Any = None


class LiveHub:
    """Subscribes to every robot's actor telemetry and fans new messages out to clients.

    Args:
        sources: one per robot (a run of one robot: one, robot None).
    """

    def __init__(self, sources: list[LiveSource]) -> None:
        self.sources = sources
        self.started_s = time.monotonic()
        self._clients: set[LiveClient] = set()
        self._lock = threading.Lock()
        # Each robot's newest telemetry and when it came (monotonic s), whoever watches.
        self.latest: dict[str | None, tuple[Message, float]] = {}
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(source,), daemon=True,
                                          name=f"live-hub-{source.robot or 'robot'}")
                         for source in sources]
        for thread in self._threads:
            thread.start()

    @property
    def address(self) -> str:
        return ", ".join(s.address for s in self.sources)

    @property
    def latest_telemetry(self) -> tuple[Message, float] | None:
        """The first robot's newest telemetry (the run's one robot's)."""
        return self.latest.get(self.sources[0].robot)

    @property
    def clients(self) -> list[LiveClient]:
        with self._lock:
            return list(self._clients)

    def add(self, client: LiveClient) -> None:
        with self._lock:
            self._clients.add(client)

    def remove(self, client: LiveClient) -> None:
        with self._lock:
            self._clients.discard(client)

    def _run(self, source: LiveSource) -> None:
        ctx = zmq.Context.instance()
        sub = Subscriber(ctx, source.address, types=("telemetry", "live_frame"),
                         security=source.security, name="live-hub", rcvhwm=100)
        seen: dict[tuple[str, str | None], tuple[str, int]] = {}
        slots = [("telemetry", None), *(("live_frame", c) for c in source.cameras)]
        try:
            while not self._stop.is_set():
                if not sub.socket.poll(100):
                    continue
                sub.poll()
                for slot in slots:
                    msg = sub.latest(*slot)
                    if msg is None or seen.get(slot) == (msg.sender, msg.seq):
                        continue
                    seen[slot] = (msg.sender, msg.seq)
                    if slot[0] == "telemetry":
                        self.latest[source.robot] = (msg, time.monotonic())
                    self._fan_out(source.robot, slot, msg)
        finally:
            sub.close()

    def _fan_out(self, robot: str | None, slot: tuple[str, str | None], msg: Message) -> None:
        clients = self.clients
        if not clients:
            return
        try:
            payload = (encode_telemetry(msg, robot) if slot[0] == "telemetry"
                       else encode_frame(msg, robot))
        except (ProtocolError, ValueError, TypeError) as e:
            log.warning("live: dropped a %s message of %s: %s", msg.type, robot or "the robot",
                        e)
            return
        stream = slot[0] if slot[1] is None else f"frame:{slot[1]}"
        for client in clients:
            client.offer(stream, msg.sent_ns, payload, robot)

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5.0)


def hub_for(services: Services) -> LiveHub:
    targets = robot_targets(services)
    with _hub_lock:
        hub = services.extras.get(_HUB_KEY)
        if hub is None:
            hub = services.extras[_HUB_KEY] = LiveHub([
                LiveSource(t.name, t.cfg.actor.telemetry_address,
                           tuple(c.name for c in t.cfg.cameras),
                           t.cfg.socket_security(t.cfg.actor.telemetry_address, "service"))
                for t in targets])
        return hub


@router.get("/api/live/telemetry", responses={
    503: {"model": schemas.Message}, 404: {"model": schemas.Message},
    422: {"description": "A fleet of several robots and no `robot` named."}})
def latest_telemetry(_user: CurrentUser, services: ServicesDep,
                     robot: RobotQuery = None) -> schemas.LiveTelemetry:
    """A robot's newest telemetry (what the Live page's socket streams), for scripts and
    as the browser's telemetry type. 503 while none has arrived."""
    target = select_robot(services, robot)
    hub = hub_for(services)
    deadline = time.monotonic() + 1.0  # a hub just started subscribes first
    while (latest := hub.latest.get(target.name)) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    if latest is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE,
                            f"no telemetry from the actor of {target.label} at "
                            f"{target.cfg.actor.telemetry_address} yet: is the run up?")
    msg, received_s = latest
    return schemas.LiveTelemetry(sender=msg.sender, seq=msg.seq,
                                 age_s=round(time.monotonic() - received_s, 3),
                                 values=Telemetry.model_validate(
                                     finite(TelemetryRecord.from_message(msg).values)))


@dataclass(frozen=True)
class Viewer:
    """Who opened a live socket, with the credential to check again while it watches."""

    user_id: int
    role: str
    session_token: str | None = None
    bearer: str | None = None


def _authenticated(ws: WebSocket, services: Services) -> Viewer | None:
    """The viewer of a same-origin handshake with a live session or a valid bearer token
    of an active user; None otherwise."""
    origin = ws.headers.get("origin")
    if origin is not None and origin.split("://", 1)[-1] != ws.headers.get("host"):
        return None
    auth = ws.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        token = auth[7:].strip()
        claims = services.tokens.verify(token)
        if claims is None:
            return None
        viewer = Viewer(claims.user_id, "", bearer=token)
    else:
        cookie = ws.cookies.get(SESSION_COOKIE)
        session = services.sessions.get(cookie) if cookie is not None else None
        if session is None:
            return None
        viewer = Viewer(session.user_id, "", session_token=session.token)
    with services.store.session() as db:
        user = users.get_user(db, viewer.user_id)
        if user is None or revoked(viewer, services, user) is not None:
            return None
        return Viewer(user.id, user.role, viewer.session_token, viewer.bearer)


def revoked(viewer: Viewer, services: Services, user: User | None) -> str | None:
    """Why the viewer may no longer watch; None while it may."""
    if viewer.session_token is not None and services.sessions.get(viewer.session_token) is None:
        return "session ended (logged out, expired or revoked)"
    claims = services.tokens.verify(viewer.bearer) if viewer.bearer is not None else None
    if viewer.bearer is not None and claims is None:
        return "bearer token expired"
    if user is None:
        return "user deleted"
    if not user.active:
        return "user deactivated"
    if viewer.role and user.role != viewer.role:
        return f"role changed to {user.role}: reconnect"
    if user.must_change_password:
        return "the one-time password must be changed first"
    if claims is not None and not hmac.compare_digest(claims.fingerprint,
                                                      hash_fingerprint(user.password_hash)):
        return "bearer token revoked (password changed)"
    return None


def _recheck(viewer: Viewer, services: Services) -> str | None:
    try:
        with services.store.session() as db:
            return revoked(viewer, services, users.get_user(db, viewer.user_id))
    except (SQLAlchemyError, StoreError) as exc:
        # Fail closed: a viewer the service cannot vouch for stops watching.
        log.error("live: cannot check viewer %d against the database: %s", viewer.user_id, exc)
        return "the service cannot check the login right now"


async def _until_revoked(viewer: Viewer, services: Services) -> str:
    """Return the reason once the viewer's credentials no longer hold."""
    while True:
        await asyncio.sleep(RECHECK_S)
        # A database read: off the event loop, which serves every other viewer.
        reason = await asyncio.to_thread(_recheck, viewer, services)
        if reason is not None:
            return reason


@router.websocket("/ws/live")
async def live(ws: WebSocket, fps: float = MAX_FPS, robot: str | None = None) -> None:
    """Relay telemetry and frames (every robot's, or `robot`'s) to one viewer until it
    disconnects."""
    services: Services = ws.app.state.services
    viewer = await asyncio.to_thread(_authenticated, ws, services)
    if viewer is None:
        await ws.close(code=status.WS_1008_POLICY_VIOLATION, reason="log in first")
        return
    names = [t.name for t in robot_targets(services)]
    if robot is not None and robot not in names:
        await ws.close(code=status.WS_1008_POLICY_VIOLATION,
                       reason=f"no robot {robot[:24]!r} (robots: "
                       f"{', '.join(n for n in names if n)})"[:120])
        return
    await ws.accept()
    rate = min(max(fps, 0.1), MAX_FPS)
    client = LiveClient(asyncio.get_running_loop(), period_ns=int(1e9 / rate), robot=robot)
    hub = hub_for(services)
    hub.add(client)
    # Sending alone would never notice a viewer that left while nothing was sent (nor let
    # the server shut down): a receiver task watches for the disconnect.
    sender = asyncio.ensure_future(_send_loop(ws, client))
    receiver = asyncio.ensure_future(_until_disconnect(ws))
    watcher = asyncio.ensure_future(_until_revoked(viewer, services))
    try:
        done, _ = await asyncio.wait({sender, receiver, watcher},
                                     return_when=asyncio.FIRST_COMPLETED)
    finally:
        hub.remove(client)
        for task in (sender, receiver, watcher):
            task.cancel()
        await asyncio.gather(sender, receiver, watcher, return_exceptions=True)
    if watcher in done and not watcher.cancelled() and watcher.exception() is None:
        reason = watcher.result()
        log.info("live: closing the socket of user %d: %s", viewer.user_id, reason)
        with contextlib.suppress(WebSocketDisconnect, RuntimeError):
            await ws.close(code=status.WS_1008_POLICY_VIOLATION, reason=reason[:120])


async def _send_loop(ws: WebSocket, client: LiveClient) -> None:
    try:
        while True:
            payload = await client.next()
            if isinstance(payload, bytes):
                await ws.send_bytes(payload)
            else:
                await ws.send_text(payload)
            client.sent += 1
    except (WebSocketDisconnect, RuntimeError):
        pass  # the viewer left (RuntimeError: sent on a socket closing under us)


async def _until_disconnect(ws: WebSocket) -> None:
    """Read (and ignore) what the viewer sends until it disconnects."""
    try:
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                return
    except (WebSocketDisconnect, RuntimeError):
        return
