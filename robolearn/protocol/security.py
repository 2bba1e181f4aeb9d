"""CURVE security for protocol sockets, and the rule that a network-facing bind needs it.

The binding side of a socket is the CURVE server (it holds the server secret key); the
connecting side is the client and must know the server's public key. A client without its
own key pair gets a fresh one per socket. Without a ZAP handler any client that knows the
server public key may connect: CURVE here gives encryption and server authentication.
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass
from pathlib import Path

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
    """

    insecure: bool = False
    server_public_key: str | None = None
    server_secret_key: str | None = None
    client_public_key: str | None = None
    client_secret_key: str | None = None

    def __post_init__(self) -> None:
        for name in ("server_public_key", "server_secret_key", "client_public_key",
                     "client_secret_key"):
            _check_key(name, getattr(self, name))
        if (self.client_public_key is None) != (self.client_secret_key is None):
            raise ConfigError("SocketSecurity: give both client_public_key and "
                              "client_secret_key, or neither")

    @property
    def curve(self) -> bool:
        """True when any CURVE key is configured."""
        return self.server_public_key is not None or self.server_secret_key is not None

    @classmethod
    def from_key_files(
        cls, server_key_file: str | Path | None = None, client_key_file: str | Path | None = None,
        *, insecure: bool = False,
    ) -> SocketSecurity:
        """Load keys from zmq certificate files (zmq.auth.create_certificates format); a
        `.key_secret` file gives both halves, a `.key` file only the public one."""
        kwargs: dict[str, str | None] = {}
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


def apply_security(socket: zmq.Socket, security: SocketSecurity | None, *, server: bool) -> None:
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
