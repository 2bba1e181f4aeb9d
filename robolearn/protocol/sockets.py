"""Protocol sockets: PUB/SUB with latest-value semantics, PUSH/PULL, and DEALER/ROUTER
request/reply with timeouts.

Every helper validates what it receives: a bad message is logged (WARNING, with its reason)
and counted in `.rejected` (reason -> count), never raised out of a receive call. Sends never
block longer than asked; nothing here can stall a control loop on a dead peer.

Receivers copy each frame out of libzmq by default (cheapest for state and small images);
pass ``zero_copy=True`` to a Subscriber/Puller that carries arrays of hundreds of KiB or more.
Senders send arrays of ZERO_COPY_MIN_BYTES and up without a copy: do not modify such an array
after handing it to a send.

Binding to a tcp address (e.g. ``tcp://127.0.0.1:*`` for a free port) resolves the port:
read it back from `.address`.

A binding socket whose security has `allowed_clients` admits only those CURVE keys (see
`robolearn.protocol.security`); each message it receives carries the sending key's identity
as `Message.peer`, and a Replier or Puller also requires every (peer, sender) pair's
sequence numbers to increase: a replayed or reordered message is refused ("replayed_seq").
Each endpoint starts its sequence at the wall clock in microseconds, so a restarted sender
continues above its previous life's numbers.
"""

from __future__ import annotations

import itertools
import logging
import math
import threading
import time
from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import Any

import numpy as np
import zmq
from zmq.utils.monitor import recv_monitor_message

from robolearn.errors import ConfigError, PeerTimeout, ProtocolError
from robolearn.protocol.codec import (
    DEFAULT_MAX_BYTES,
    Message,
    decode,
    encode,
    peek_seq,
    send_frames,
)
from robolearn.protocol.schema import get_spec
from robolearn.protocol.security import (
    SocketSecurity,
    apply_security,
    check_bind,
    zap_handler,
)

log = logging.getLogger(__name__)

RoutingId = tuple[bytes, ...]
"""The routing envelope of a request on a Replier (identity, plus b"" from a REQ client)."""

_LOG_FIRST = 10  # log every rejection up to this many per reason, then every 1000th
_MAX_TRACKED_SENDERS = 4096  # (peer, sender) pairs whose last seq a receiver remembers
# Handshake failures after which libzmq drops a connecting socket's connection for good (it
# never reconnects): a peer speaking another security mechanism (a plain-text impostor on the
# address of a dead CURVE server) or refusing this key (or impostor-sent ERROR).
_GIVE_UP_EVENTS = zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_AUTH
_REOPEN_MIN_S = 1.0  # a socket refused again is reopened at most this often
_monitor_ids = itertools.count(1)


def _ms(seconds: float) -> int:
    return max(0, math.ceil(seconds * 1000))


class _Endpoint:
    """Shared plumbing: socket setup, sequence numbers, rejection accounting, close()."""

    _socket_type: int = -1
    _receives: bool = True
    # Connecting sockets that reopen themselves after a handshake libzmq gave up on
    # (_GIVE_UP_EVENTS); a Requester reopens after any timeout instead.
    _reopens_when_refused: bool = False

    def __init__(
        self, ctx: zmq.Context[Any], address: str | Sequence[str], sender: str, *, bind: bool,
        security: SocketSecurity | None, max_bytes: int, sndhwm: int, rcvhwm: int,
        linger_ms: int,
    ) -> None:
        addresses = [address] if isinstance(address, str) else list(address)
        if bind:
            for a in addresses:
                check_bind(a, security)
        self.sender = sender
        self.max_bytes = max_bytes
        self.rejected: dict[str, int] = {}
        self.dropped = 0
        self.zero_copy = False
        # Above anything this sender sent in an earlier life (see the module docstring).
        self._seq = time.time_ns() // 1000
        self._ctx = ctx
        self._addresses = addresses
        self._bind = bind
        self._security = security
        self._zap_domain: str | None = None
        # Only an authenticating server knows who sent a message (the ZAP User-Id).
        self.authenticated = bind and security is not None and security.authenticates_clients
        self._last_seq: dict[tuple[str | None, str], int] = {}
        self._options = {zmq.LINGER: linger_ms, zmq.SNDHWM: sndhwm, zmq.RCVHWM: rcvhwm}
        if self._receives:
            # libzmq drops (and disconnects) any single frame above this before we see it.
            self._options[zmq.MAXMSGSIZE] = max_bytes
        self._monitor: zmq.Socket[Any] | None = None
        self._refused: str | None = None  # the handshake failure not yet acted on
        self._reopen_at_s = 0.0
        self.reopens = 0  # times the socket was reopened after a refused handshake
        self.socket = self._open()
        self.address = (
            self.socket.getsockopt_string(zmq.LAST_ENDPOINT)
            if bind and len(addresses) == 1 else addresses[0]
        )

    def _open(self) -> zmq.Socket[Any]:
        sock: zmq.Socket[Any] = self._ctx.socket(self._socket_type)
        try:
            for option, value in self._options.items():
                sock.setsockopt(option, value)
            apply_security(sock, self._security, server=self._bind)
            if self.authenticated:
                assert self._security is not None and self._security.allowed_clients is not None
                handler = zap_handler(self._ctx)
                self._zap_domain = handler.register(
                    f"{type(self).__name__} {self.sender!r} on {','.join(self._addresses)}",
                    self._security.allowed_clients)
                sock.zap_domain = self._zap_domain.encode()
            self._configure(sock)
            if self._reopens_when_refused and not self._bind:
                self._monitor = sock.get_monitor_socket(
                    _GIVE_UP_EVENTS, f"inproc://robolearn-monitor-{next(_monitor_ids)}")
                self._monitor.linger = 0
            for a in self._addresses:
                if self._bind:
                    sock.bind(a)
                else:
                    sock.connect(a)
        except zmq.ZMQError as e:
            self._close_monitor()
            sock.close(0)
            verb = "bind" if self._bind else "connect"
            raise ConfigError(f"{type(self).__name__} {self.sender!r}: cannot {verb} "
                              f"{self._addresses}: {e}; check the address and that no other "
                              "process uses it") from e
        except BaseException:
            self._close_monitor()
            sock.close(0)
            self._forget_zap_domain()
            raise
        return sock

    def _close_monitor(self) -> None:
        if self._monitor is not None:
            self._monitor.close(0)
            self._monitor = None

    def _reopen_if_refused(self) -> None:
        """Reopen the socket when libzmq gave up its connection on a refused handshake.

        libzmq reconnects after a lost connection, but not after a handshake that failed on
        the mechanism or on authentication: one foreign process bound for a moment on the
        address of a dead server would cut this socket off for good, even from the real
        server once it is back. Reopening connects afresh (at most every _REOPEN_MIN_S);
        nothing is taken from the refused peer either way.
        """
        monitor = self._monitor
        if monitor is None:
            return
        while int(monitor.get(zmq.EVENTS)) & zmq.POLLIN:
            event = recv_monitor_message(monitor)["event"]
            if event & _GIVE_UP_EVENTS:
                self._refused = zmq.Event(event).name
        if self._refused is None or time.monotonic() < self._reopen_at_s:
            return
        self.reopens += 1
        if self.reopens <= _LOG_FIRST or self.reopens % 1000 == 0:
            log.warning("%s %r on %s: the peer failed the security handshake (%s: not the "
                        "run's server, or it refused this key); reopened the socket to "
                        "reach the real server once it is back (#%d)", type(self).__name__,
                        self.sender, self.address, self._refused, self.reopens)
        self._close_monitor()
        self.socket.close(0)
        self._refused = None
        self._reopen_at_s = time.monotonic() + _REOPEN_MIN_S
        self.socket = self._open()

    def _forget_zap_domain(self) -> None:
        if self._zap_domain is not None:
            zap_handler(self._ctx).unregister(self._zap_domain)
            self._zap_domain = None

    def _configure(self, sock: zmq.Socket[Any]) -> None:
        """Hook for socket-type specific options, called before bind/connect."""

    def _next_seq(self) -> int:
        seq = self._seq
        self._seq += 1
        return seq

    def _reject(self, error: ProtocolError) -> None:
        count = self.rejected.get(error.reason, 0) + 1
        self.rejected[error.reason] = count
        if count <= _LOG_FIRST or count % 1000 == 0:
            log.warning("%s %r on %s rejected a message (%s, #%d of this reason): %s",
                        type(self).__name__, self.sender, self.address, error.reason, count,
                        error.detail)

    def _decode(self, frames: Sequence[Any]) -> Message | None:
        try:
            return self._decode_or_raise(frames)
        except ProtocolError as e:
            self._reject(e)
            return None

    def _decode_or_raise(self, frames: Sequence[Any]) -> Message:
        """decode(), with any unexpected error (a bug in the codec, not the peer) turned into
        a ProtocolError so that no message can take a receiver down."""
        peer = None
        if self.authenticated and frames:
            peer = frames[-1].get("User-Id") or None  # set by libzmq from the ZAP answer
            if peer is None:
                raise ProtocolError("unauthenticated", "no authenticated identity on a "
                                                       "socket that requires one")
        try:
            return decode(frames, max_bytes=self.max_bytes, peer=peer)
        except ProtocolError:
            raise
        except Exception as e:
            log.exception("%s %r: unexpected error while decoding a message; rejected",
                          type(self).__name__, self.sender)
            raise ProtocolError("decode_error", repr(e)) from e

    def _recv(self) -> list[Any]:
        """One multipart message, without waiting. Raises zmq.Again when none is queued."""
        # The User-Id of an authenticated message is a property of zmq.Frame.
        copy = not (self.zero_copy or self.authenticated)
        return self.socket.recv_multipart(zmq.NOBLOCK, copy=copy)

    def _check_fresh(self, msg: Message) -> None:
        """Refuse a message whose sequence number does not increase for its (peer, sender).

        Raises:
            ProtocolError: ("replayed_seq") seq is not above the last one accepted.
        """
        slot = (msg.peer, msg.sender)
        last = self._last_seq.get(slot)
        if last is not None and msg.seq <= last:
            raise ProtocolError("replayed_seq", f"{msg.type} #{msg.seq} from {msg.sender!r} "
                                                f"(identity {msg.peer}) is not above #{last}, "
                                                "the last accepted: a replay or a reorder")
        if last is None and len(self._last_seq) >= _MAX_TRACKED_SENDERS:
            self._last_seq.pop(next(iter(self._last_seq)))
        self._last_seq[slot] = msg.seq

    def _send(self, frames: list[Any], prefix: tuple[bytes, ...] = ()) -> bool:
        try:
            send_frames(self.socket, frames, zmq.NOBLOCK, prefix)
        except zmq.Again:
            self.dropped += 1
            return False
        return True

    @property
    def closed(self) -> bool:
        return self.socket.closed

    def close(self) -> None:
        """Close the socket (pending outbound messages are kept for LINGER, then dropped)."""
        self._close_monitor()
        self.socket.close()
        self._forget_zap_domain()

    def __enter__(self) -> _Endpoint:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class Publisher(_Endpoint):
    """A bound PUB socket. `publish` never blocks: libzmq queues up to `sndhwm` messages per
    subscriber and drops further ones for a subscriber whose queue is full (ZeroMQ drops the
    newest, so the queue must hold a burst; Subscribers drain it on every poll).

    `publish` may be called from several threads (the actor's loop and its live-frame
    encoder share one): a lock hands the socket from one to the next."""

    _socket_type = zmq.PUB
    _receives = False

    def __init__(
        self, ctx: zmq.Context[Any], address: str, sender: str, *,
        security: SocketSecurity | None = None, sndhwm: int = 1000, linger_ms: int = 0,
    ) -> None:
        super().__init__(ctx, address, sender, bind=True, security=security,
                         max_bytes=DEFAULT_MAX_BYTES, sndhwm=sndhwm, rcvhwm=10,
                         linger_ms=linger_ms)
        self._lock = threading.Lock()

    def publish(
        self, type: str, body: dict[str, Any],
        arrays: dict[str, np.ndarray] | None = None,
    ) -> bool:
        """Validate, encode and publish one message.

        Returns:
            False when the message was dropped (queue full), True otherwise.

        Raises:
            ProtocolError: the message does not satisfy its spec (a bug in the caller).
        """
        with self._lock:
            return self._send(encode(type, self.sender, self._next_seq(), body, arrays))

    def close(self) -> None:
        with self._lock:
            super().close()


class Subscriber(_Endpoint):
    """A SUB socket (connects) with latest-value semantics.

    `poll()` drains everything queued and keeps the newest message per (type, key), key being
    body["camera"] when present, else None. A small RCVHWM keeps stale frames from piling up.
    """

    _socket_type = zmq.SUB
    _reopens_when_refused = True

    def __init__(
        self, ctx: zmq.Context[Any], address: str | Sequence[str], *,
        types: Iterable[str] | None = None,
        security: SocketSecurity | None = None, max_bytes: int = DEFAULT_MAX_BYTES,
        rcvhwm: int = 10, name: str = "subscriber", max_drain: int = 10_000,
        zero_copy: bool = False,
    ) -> None:
        self.types = frozenset(types) if types is not None else None
        for t in self.types or ():
            try:
                get_spec(t)
            except ProtocolError as e:
                raise ConfigError(f"Subscriber {name!r}: {e.detail}") from e
        self.max_drain = max_drain
        self._latest: dict[tuple[str, str | None], Message] = {}
        self._returned: dict[tuple[str, str | None], tuple[str, int, int]] = {}
        super().__init__(ctx, address, name, bind=False, security=security,
                         max_bytes=max_bytes, sndhwm=10, rcvhwm=rcvhwm, linger_ms=0)
        self.zero_copy = zero_copy

    def _configure(self, sock: zmq.Socket[Any]) -> None:
        sock.setsockopt(zmq.SUBSCRIBE, b"")

    def poll(self) -> int:
        """Drain the queue without blocking. Returns how many valid messages arrived."""
        self._reopen_if_refused()
        received = 0
        for _ in range(self.max_drain):
            try:
                frames = self._recv()
            except zmq.Again:
                break
            msg = self._decode(frames)
            if msg is None or (self.types is not None and msg.type not in self.types):
                continue
            camera = msg.body.get("camera")
            self._latest[(msg.type, camera if type(camera) is str else None)] = msg
            received += 1
        return received

    def latest(self, type: str, key: str | None = None) -> Message | None:
        """Drain the queue, then return the newest message of `type` (and `key`), or None."""
        self.poll()
        return self._latest.get((type, key))

    def wait_new(
        self, type: str, timeout_s: float, key: str | None = None,
    ) -> Message | None:
        """Wait up to `timeout_s` for a message of `type`/`key` other than the one this method
        last returned for them; returns the newest such message, or None on timeout."""
        slot = (type, key)
        deadline = time.monotonic() + timeout_s
        while True:
            self.poll()
            msg = self._latest.get(slot)
            if msg is not None:
                ident = (msg.sender, msg.seq, msg.sent_ns)
                if ident != self._returned.get(slot):
                    self._returned[slot] = ident
                    return msg
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            self.socket.poll(_ms(remaining))


class Pusher(_Endpoint):
    """A PUSH socket (connects by default). `send` never blocks."""

    _socket_type = zmq.PUSH
    _receives = False
    _reopens_when_refused = True

    def __init__(
        self, ctx: zmq.Context[Any], address: str, sender: str, *, bind: bool = False,
        security: SocketSecurity | None = None, sndhwm: int = 1000, linger_ms: int = 1000,
    ) -> None:
        super().__init__(ctx, address, sender, bind=bind, security=security,
                         max_bytes=DEFAULT_MAX_BYTES, sndhwm=sndhwm, rcvhwm=10,
                         linger_ms=linger_ms)

    def send(
        self, type: str, body: dict[str, Any],
        arrays: dict[str, np.ndarray] | None = None,
    ) -> bool:
        """Validate, encode and queue one message.

        Returns:
            False (and counts it in `.dropped`) when it would block: no peer or queue full.

        Raises:
            ProtocolError: the message does not satisfy its spec (a bug in the caller).
        """
        self._reopen_if_refused()
        return self._send(encode(type, self.sender, self._next_seq(), body, arrays))


class Puller(_Endpoint):
    """A PULL socket (binds by default)."""

    _socket_type = zmq.PULL

    def __init__(
        self, ctx: zmq.Context[Any], address: str, *, bind: bool = True,
        security: SocketSecurity | None = None, max_bytes: int = DEFAULT_MAX_BYTES,
        rcvhwm: int = 1000, name: str = "puller", zero_copy: bool = False,
    ) -> None:
        super().__init__(ctx, address, name, bind=bind, security=security,
                         max_bytes=max_bytes, sndhwm=10, rcvhwm=rcvhwm, linger_ms=0)
        self.zero_copy = zero_copy

    def recv(self, timeout_s: float) -> Message | None:
        """Return the next valid message, waiting up to `timeout_s` (0: don't wait), or None.
        Invalid messages on the way are rejected (logged, counted) and skipped."""
        deadline = time.monotonic() + timeout_s
        sock = self.socket
        while True:
            try:
                frames = self._recv()
            except zmq.Again:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not sock.poll(_ms(remaining)):
                    return None
                continue
            msg = self._decode(frames)
            if msg is None:
                continue
            if self.authenticated:
                try:
                    self._check_fresh(msg)
                except ProtocolError as e:
                    self._reject(e)
                    continue
            return msg


class Requester(_Endpoint):
    """A DEALER client: one request at a time, each with a deadline.

    Replies are matched on `request_seq`; any other reply is discarded (counted in `.stale`).
    After a timeout the socket is closed (LINGER 0) and reopened (counted in `.reconnects`):
    requests still queued for an absent or stalled peer are dropped there, so a driver that
    comes back never executes stale commands, and late replies go to an identity that no
    longer exists. IMMEDIATE is deliberately not set: with it, libzmq drops a reply that
    arrived just before the server closed its connection.
    """

    _socket_type = zmq.DEALER

    def __init__(
        self, ctx: zmq.Context[Any], address: str, sender: str, *,
        security: SocketSecurity | None = None, max_bytes: int = DEFAULT_MAX_BYTES,
        default_timeout_s: float = 1.0,
    ) -> None:
        self.default_timeout_s = default_timeout_s
        self.stale = 0
        self.reconnects = 0
        super().__init__(ctx, address, sender, bind=False, security=security,
                         max_bytes=max_bytes, sndhwm=16, rcvhwm=100, linger_ms=0)

    def _reconnect(self) -> None:
        self.socket.close(0)
        self.socket = self._open()
        self.reconnects += 1

    def request(
        self, type: str, body: dict[str, Any],
        arrays: dict[str, np.ndarray] | None = None, timeout_s: float | None = None,
    ) -> Message:
        """Send one request and wait for its reply.

        Returns:
            The `reply` message whose request_seq matches (ok=False replies included).

        Raises:
            PeerTimeout: no matching reply within `timeout_s` (the socket stays usable).
            ProtocolError: the request does not satisfy its spec (a bug in the caller).
        """
        timeout_s = self.default_timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + timeout_s
        seq = self._next_seq()
        frames = encode(type, self.sender, seq, body, arrays)
        sock = self.socket
        if not sock.poll(_ms(timeout_s), zmq.POLLOUT) or not self._send(frames):
            self._reconnect()
            raise PeerTimeout(f"Requester {self.sender!r}: {type} request #{seq} to "
                              f"{self.address} could not be sent within {timeout_s:.3f} s "
                              "(no connected peer); is the server running?")
        while True:
            try:
                reply = self._recv()
            except zmq.Again:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not sock.poll(_ms(remaining)):
                    self._reconnect()
                    raise PeerTimeout(
                        f"Requester {self.sender!r}: no reply to {type} request #{seq} from "
                        f"{self.address} within {timeout_s:.3f} s; is the server alive?"
                    ) from None
                continue
            msg = self._decode(reply)
            if msg is None:
                continue
            if msg.type != "reply":
                self._reject(ProtocolError("unexpected_type", f"got {msg.type!r}, expected a "
                                                              "reply"))
                continue
            if msg.body["request_seq"] != seq:
                self.stale += 1
                log.debug("Requester %r: discarded stale reply to #%s (waiting for #%d)",
                          self.sender, msg.body["request_seq"], seq)
                continue
            return msg


class Replier(_Endpoint):
    """A bound ROUTER server for Requester (DEALER) clients; REQ clients work too.

    A malformed request gets an immediate ok=False reply carrying the rejection reason (and
    the request's seq when readable), so its sender does not wait for a timeout.
    """

    _socket_type = zmq.ROUTER

    def __init__(
        self, ctx: zmq.Context[Any], address: str, sender: str, *,
        security: SocketSecurity | None = None, max_bytes: int = DEFAULT_MAX_BYTES,
        rcvhwm: int = 1000, sndhwm: int = 1000, linger_ms: int = 200,
    ) -> None:
        # a short LINGER so the last replies still leave when the server closes right after
        super().__init__(ctx, address, sender, bind=True, security=security,
                         max_bytes=max_bytes, sndhwm=sndhwm, rcvhwm=rcvhwm,
                         linger_ms=linger_ms)

    def poll(self, timeout_s: float) -> tuple[RoutingId, Message] | None:
        """Return the next valid request as (routing id, message), waiting up to `timeout_s`,
        or None. Malformed requests on the way are answered, logged, counted and skipped."""
        deadline = time.monotonic() + timeout_s
        sock = self.socket
        while True:
            try:
                frames = self._recv()
            except zmq.Again:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not sock.poll(_ms(remaining)):
                    return None
                continue
            first = frames[0]
            identity: RoutingId = (first if type(first) is bytes else first.bytes,)
            rest = frames[1:]
            if rest and len(rest[0]) == 0:  # REQ envelope delimiter
                identity = (*identity, b"")
                rest = rest[1:]
            try:
                msg = self._decode_or_raise(rest)
                if self.authenticated:
                    self._check_fresh(msg)
            except ProtocolError as e:
                self._reject(e)
                self._send_reply(identity, peek_seq(rest) if rest else -1, False, e.reason,
                                 {"detail": e.detail}, None)
                continue
            return identity, msg

    def reply(
        self, identity: RoutingId, request: Message, ok: bool, reason: str = "",
        data: dict[str, Any] | None = None, arrays: dict[str, np.ndarray] | None = None,
    ) -> bool:
        """Answer `request`. Returns False if the reply was dropped (peer gone or queue full).

        Raises:
            ProtocolError: the reply does not satisfy the `reply` spec (a bug in the caller).
        """
        return self._send_reply(identity, request.seq, ok, reason, data, arrays)

    def _send_reply(
        self, identity: RoutingId, request_seq: int, ok: bool, reason: str,
        data: dict[str, Any] | None, arrays: dict[str, np.ndarray] | None,
    ) -> bool:
        body: dict[str, Any] = {"ok": ok, "reason": reason, "request_seq": request_seq}
        if data is not None:
            body["data"] = data
        frames = encode("reply", self.sender, self._next_seq(), body, arrays)
        return self._send(frames, identity)
