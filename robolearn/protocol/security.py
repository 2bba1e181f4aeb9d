"""CURVE security for protocol sockets, and the rule that a network-facing bind needs it.

The binding side of a socket is the CURVE server (it holds the server secret key); the
connecting side is the client and must know the server's public key, so a client never
talks to an impostor that bound the port after the real server died. A server socket with
`allowed_clients` admits only those client public keys: libzmq asks this context's ZAP
handler (`ZapHandler`, one thread per context) about every new connection, and the handler
answers with the key's identity, which reaches each received message as `Message.peer`.
Without `allowed_clients` any client that knows the server public key may connect (CURVE
then gives encryption and server authentication only).
"""

from __future__ import annotations

import ipaddress
import itertools
import logging
import threading
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zmq
import zmq.auth
from zmq.utils import z85

from robolearn.errors import ConfigError

log = logging.getLogger(__name__)

_LOOPBACK_NAMES = frozenset({"localhost", "ip6-localhost", "ip6-loopback"})


def generate_keypair() -> tuple[str, str]:
    """Returns a new CURVE (public_key, secret_key) pair as 40-char z85 strings."""
    public, secret = zmq.curve_keypair()
    return public.decode("ascii"), secret.decode("ascii")


def _check_key(name: str, key: str | None) -> None:
    if key is None:
        return
    try:
        ok = isinstance(key, str) and len(key) == 40 and len(z85.decode(key)) == 32
    except (ValueError, KeyError, TypeError):
        ok = False
    if not ok:
        raise ConfigError(f"SocketSecurity.{name}: expected a 40-char z85 CURVE key "
                          "(see robolearn.protocol.generate_keypair()), got something else")


@dataclass(frozen=True)
class SocketSecurity:
    """How one socket is secured.

    Attributes:
        insecure: allow a non-loopback tcp bind without CURVE (plain-text, unauthenticated).
        server_public_key / server_secret_key: the binding side's key pair (z85). A connecting
            side needs only server_public_key.
        client_public_key / client_secret_key: the connecting side's key pair (z85);
            optional, an ephemeral pair is generated when absent.
        allowed_clients: binding side only: z85 client public key -> identity. Only these
            keys may connect, and received messages carry the identity as `peer`. None
            admits any client key.
    """

    insecure: bool = False
    server_public_key: str | None = None
    server_secret_key: str | None = None
    client_public_key: str | None = None
    client_secret_key: str | None = None
    allowed_clients: Mapping[str, str] | None = None

    def __post_init__(self) -> None:
        for name in ("server_public_key", "server_secret_key", "client_public_key",
                     "client_secret_key"):
            _check_key(name, getattr(self, name))
        if (self.client_public_key is None) != (self.client_secret_key is None):
            raise ConfigError("SocketSecurity: give both client_public_key and "
                              "client_secret_key, or neither")

        if self.allowed_clients is not None:
            if self.server_secret_key is None:
                raise ConfigError("SocketSecurity.allowed_clients needs the server key pair: "
                                  "only a CURVE server socket can check client keys")
            for key in self.allowed_clients:
                _check_key("allowed_clients", key)

    @property
    def curve(self) -> bool:
        """True when any CURVE key is configured."""
        return self.server_public_key is not None or self.server_secret_key is not None

    @property
    def authenticates_clients(self) -> bool:
        """True when the binding side admits only `allowed_clients`."""
        return self.allowed_clients is not None

    @classmethod
    def from_key_files(
        cls, server_key_file: str | Path | None = None, client_key_file: str | Path | None = None,
        *, insecure: bool = False,
    ) -> SocketSecurity:
        """Load keys from zmq certificate files (zmq.auth.create_certificates format); a
        `.key_secret` file gives both halves, a `.key` file only the public one."""
        kwargs: dict[str, Any] = {}  # the *_public_key / *_secret_key fields (str or None)
        for role, path in (("server", server_key_file), ("client", client_key_file)):
            if path is None:
                continue
            try:
                public, secret = zmq.auth.load_certificate(path)
            except (OSError, ValueError) as e:
                raise ConfigError(f"{role} key file {path}: cannot load a zmq certificate "
                                  f"({e}); create one with zmq.auth.create_certificates") from e
            kwargs[f"{role}_public_key"] = public.decode("ascii")
            kwargs[f"{role}_secret_key"] = secret.decode("ascii") if secret else None
        return cls(insecure=insecure, **kwargs)


def _is_loopback(host: str) -> bool:
    host = host.strip("[]")
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # "*", interface names, DNS names: assume reachable from the network
        return False


def check_bind(address: str, security: SocketSecurity | None) -> None:
    """Refuse a bind that would expose an unencrypted socket to the network.

    ipc:// and inproc:// are always allowed; tcp:// on loopback (127.0.0.0/8, ::1, localhost)
    too. Anything else needs CURVE server keys or `insecure=True`.

    Raises:
        ConfigError: the bind is network-facing and neither keys nor insecure are set.
    """
    scheme, sep, rest = address.partition("://")
    if not sep:
        raise ConfigError(f"bind address {address!r} has no transport; use e.g. "
                          "tcp://127.0.0.1:5555, ipc:///tmp/arm or inproc://arm")
    if scheme in ("ipc", "inproc"):
        return
    if scheme == "tcp" and _is_loopback(rest.rpartition(":")[0]):
        return
    if security is not None and (security.insecure or security.server_secret_key is not None):
        return
    raise ConfigError(
        f"bind address {address!r} is reachable from the network and the socket has no CURVE "
        "keys: set server_public_key/server_secret_key (robolearn.protocol.generate_keypair()), "
        "bind to 127.0.0.1, or set insecure=True to accept unauthenticated plain-text traffic"
    )


def apply_security(socket: zmq.Socket[Any], security: SocketSecurity | None, *,
                   server: bool) -> None:
    """Set the CURVE options on `socket` (before bind/connect). No keys: nothing is set.

    Raises:
        ConfigError: keys are incomplete for this side, or libzmq lacks CURVE.
    """
    if security is None or not security.curve:
        return
    if not zmq.has("curve"):
        raise ConfigError("CURVE keys were given but this libzmq has no CURVE support; "
                          "install a pyzmq wheel built with libsodium")
    if server:
        if security.server_secret_key is None or security.server_public_key is None:
            raise ConfigError("the binding side of a CURVE socket needs server_public_key and "
                              "server_secret_key")
        socket.curve_secretkey = security.server_secret_key.encode("ascii")
        socket.curve_publickey = security.server_public_key.encode("ascii")
        socket.curve_server = True
    else:
        if security.server_public_key is None:
            raise ConfigError("the connecting side of a CURVE socket needs server_public_key")
        if security.client_secret_key is not None and security.client_public_key is not None:
            public, secret = security.client_public_key, security.client_secret_key
        else:
            public, secret = generate_keypair()
        socket.curve_serverkey = security.server_public_key.encode("ascii")
        socket.curve_publickey = public.encode("ascii")
        socket.curve_secretkey = secret.encode("ascii")


ZAP_ENDPOINT = "inproc://zeromq.zap.01"  # fixed by the ZAP specification (RFC 27)
_ZAP_VERSION = b"1.0"
_LOG_FIRST_REFUSALS = 5


class ZapHandler:
    """Answers libzmq's ZAP requests for the CURVE server sockets of one context.

    Each server socket registers a domain with its allow-list (public key -> identity); a
    connection is admitted when its mechanism is CURVE and its key is on its socket's list,
    and the identity is sent back as the ZAP User-Id. Anything else is refused and logged.

    pyzmq's ThreadAuthenticator keeps one allow-list per domain too, but its thread keeps its
    socket open when the context terminates, so `ctx.term()` would hang in every process
    that forgot to stop it first; this one closes its socket on ETERM.

    Use `zap_handler(ctx)`: libzmq allows one handler per context.
    """

    def __init__(self, ctx: zmq.Context[Any]) -> None:
        self._ctx_name = f"context {id(ctx):#x}"
        self._lock = threading.Lock()
        self._domains: dict[str, tuple[str, Mapping[str, str]]] = {}
        self._ids = itertools.count(1)
        self.admitted: dict[str, int] = {}
        self.refused: dict[str, int] = {}
        self._socket = ctx.socket(zmq.REP)
        self._socket.linger = 0
        try:
            self._socket.bind(ZAP_ENDPOINT)
        except zmq.ZMQError:
            self._socket.close(0)
            raise
        self._thread = threading.Thread(target=self._run, name="zap-handler", daemon=True)
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def register(self, label: str, allowed: Mapping[str, str]) -> str:
        """Add a socket's allow-list; returns the ZAP domain to set on the socket."""
        with self._lock:
            domain = f"robolearn-{next(self._ids)}"
            self._domains[domain] = (label, dict(allowed))
        return domain

    def unregister(self, domain: str) -> None:
        with self._lock:
            self._domains.pop(domain, None)

    def _run(self) -> None:
        sock = self._socket
        try:
            while True:
                if not sock.poll(200):
                    continue
                request = sock.recv_multipart()
                sock.send_multipart(self._answer(request))
        except zmq.ZMQError as e:
            if e.errno != zmq.ETERM:
                log.exception("ZAP handler of %s stopped", self._ctx_name)
        finally:
            sock.close(0)

    def _answer(self, request: list[bytes]) -> list[bytes]:
        if len(request) < 6 or request[0] != _ZAP_VERSION:
            log.error("ZAP handler: malformed request (%d frames)", len(request))
            request_id = request[1] if len(request) > 1 else b""
            return [_ZAP_VERSION, request_id, b"500", b"malformed ZAP request", b"", b""]
        _, request_id, domain_b, address_b, _routing, mechanism, *credentials = request
        domain = domain_b.decode("utf-8", "replace")
        address = address_b.decode("utf-8", "replace")
        with self._lock:
            entry = self._domains.get(domain)
        if entry is None:
            return self._deny(request_id, domain, address, "", "socket not registered")
        label, allowed = entry
        if mechanism != b"CURVE" or len(credentials) != 1 or len(credentials[0]) != 32:
            return self._deny(request_id, label, address, "",
                              f"mechanism {mechanism.decode('ascii', 'replace')} (CURVE needed)")
        key = z85.encode(credentials[0]).decode("ascii")
        identity = allowed.get(key)
        if identity is None:
            return self._deny(request_id, label, address, key, "key not allowed here")
        self.admitted[label] = self.admitted.get(label, 0) + 1
        log.debug("ZAP: admitted %s on %s from %s", identity, label, address)
        return [_ZAP_VERSION, request_id, b"200", b"OK", identity.encode("utf-8"), b""]

    def _deny(self, request_id: bytes, label: str, address: str, key: str,
              why: str) -> list[bytes]:
        count = self.refused.get(label, 0) + 1
        self.refused[label] = count
        if count <= _LOG_FIRST_REFUSALS or count % 1000 == 0:
            log.warning("refused a connection to %s from %s (client key %s): %s; only the "
                        "run's own processes, holding its keys, may connect (#%d)", label,
                        address or "?", key or "-", why, count)
        return [_ZAP_VERSION, request_id, b"400", why.encode("utf-8"), b"", b""]


_handlers: weakref.WeakKeyDictionary[zmq.Context[Any], ZapHandler] = weakref.WeakKeyDictionary()
_handlers_lock = threading.Lock()


def zap_handler(ctx: zmq.Context[Any]) -> ZapHandler:
    """The ZAP handler of `ctx`, started on first use."""
    with _handlers_lock:
        handler = _handlers.get(ctx)
        if handler is None or not handler.alive:
            handler = _handlers[ctx] = ZapHandler(ctx)
        return handler
