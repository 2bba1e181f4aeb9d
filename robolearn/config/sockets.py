"""Who binds each socket of a run, who may connect to it, and the CURVE settings that follow.

Every process of a run has an identity with its own key pair (`robolearn.protocol.keys`):

| socket (config field)                   | bound by        | who may connect            |
|-----------------------------------------|-----------------|----------------------------|
| robot.command_address                   | driver          | actor, service, operator   |
| robot.state_address, frames_address     | driver          | any of the run's processes |
| a camera's address                      | camera-<name>   | any of the run's processes |
| actor.control_address                   | actor           | service, operator          |
| actor.telemetry_address                 | actor           | any of the run's processes |
| actor.files_address                     | actor (files)   | service                    |
| learner.transitions_address             | learner         | actor                      |
| learner.weights_address                 | learner         | actor                      |

In a fleet (robolearn.config.fleet) each robot's driver, actor and cameras have identities
of their own, `driver-<robot>`, `actor-<robot>`, `camera-<camera>-<robot>`: a robot's
command socket admits its own actor (and the service and operator), never another robot's,
and the learner takes transitions from every robot's actor.

`operator` is the local CLI (`robolearn estop`, `teleop`, `calibrate`) run by someone who
can read the run's key directory. Read-only streams are authenticated too: a subscriber
checks the publisher's key, so no process can stand in for a dead driver or learner.
"""

from __future__ import annotations

import fcntl
import ipaddress
import re
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from robolearn.config.fleet import robot_sockets
from robolearn.errors import ConfigError
from robolearn.protocol.keys import KeyRing
from robolearn.protocol.security import SocketSecurity

if TYPE_CHECKING:
    from robolearn.config.models import RunConfig

DRIVER = "driver"
ACTOR = "actor"
LEARNER = "learner"
SERVICE = "service"
OPERATOR = "operator"

_rings: dict[tuple[Path, int], KeyRing] = {}
_rings_lock = threading.Lock()


def camera_identity(camera: str) -> str:
    """The key identity of a camera served by its own process."""
    return "camera-" + re.sub(r"[^a-z0-9_-]", "-", camera.lower())[:56]


def robot_identity(role: str, robot: str | None) -> str:
    """The identity of a robot's process (`driver`, `actor`, `camera-<name>`): the role
    itself for a run of one robot, `<role>-<robot>` for fleet robot `robot`."""
    return role if robot is None else f"{role}-{robot}"


def identity(cfg: RunConfig, role: str) -> str:
    """The identity a process of this config's robot opens sockets as (`role` for the
    learner, service and operator, which belong to no one robot)."""
    if role in (LEARNER, SERVICE, OPERATOR):
        return role
    return robot_identity(role, cfg.robot_name)


def actor_identities(cfg: RunConfig) -> frozenset[str]:
    """The identities whose transitions the learner takes: every robot's actor."""
    return frozenset(robot_identity(ACTOR, r) for r in _robots(cfg))


def _robots(cfg: RunConfig) -> list[str | None]:
    return list(cfg.fleet.names) or [None]


def run_identities(cfg: RunConfig) -> list[str]:
    """Every process identity the run's config implies (every robot's, in a fleet)."""
    names = [LEARNER, SERVICE, OPERATOR]
    cameras = [camera_identity(c.name) for c in cfg.cameras if c.kind != "sim"]
    for robot in _robots(cfg):
        names += [robot_identity(r, robot) for r in (DRIVER, ACTOR, *cameras)]
    return names


def keys_dir(cfg: RunConfig) -> Path:
    """Where the run's keys live: security.keys_dir, else <data_dir>/keys."""
    return cfg.security.keys_dir or cfg.data_dir / "keys"


def socket_roles(cfg: RunConfig) -> dict[str, tuple[str, frozenset[str] | None]]:
    """address -> (identity that binds it, identities that may connect; None: all of the
    run's)."""
    actors = actor_identities(cfg)
    roles: dict[str, tuple[str, frozenset[str] | None]] = {
        cfg.learner.transitions_address: (LEARNER, actors),
        cfg.learner.weights_address: (LEARNER, actors),
    }
    for robot in _robots(cfg):
        for key, address in _robot_addresses(cfg, robot).items():
            driver, actor = robot_identity(DRIVER, robot), robot_identity(ACTOR, robot)
            role: tuple[str, frozenset[str] | None]
            if key == "robot.command_address":
                role = (driver, frozenset({actor, SERVICE, OPERATOR}))
            elif key == "actor.control_address":
                role = (actor, frozenset({SERVICE, OPERATOR}))
            elif key == "actor.telemetry_address":
                role = (actor, None)
            elif key == "actor.files_address":
                role = (actor, frozenset({SERVICE}))
            elif key.startswith("cameras."):
                camera = cfg.cameras[int(key.split(".")[1])].name
                role = (robot_identity(camera_identity(camera), robot), None)
            else:  # the driver's state and frames streams
                role = (driver, None)
            roles[address] = role
    return roles


def _robot_addresses(cfg: RunConfig, robot: str | None) -> dict[str, str]:
    """{dotted config key: address} of the sockets a robot's processes bind."""
    if robot is not None:
        return robot_sockets(cfg, robot)
    found = {"robot.command_address": cfg.robot.command_address,
             "robot.state_address": cfg.robot.state_address,
             "actor.control_address": cfg.actor.control_address,
             "actor.telemetry_address": cfg.actor.telemetry_address,
             "actor.files_address": cfg.actor.files_address}
    frames = getattr(cfg.robot, "frames_address", None)
    if frames is not None:
        found["robot.frames_address"] = frames
    for i, cam in enumerate(cfg.cameras):
        if cam.kind != "sim":
            found[f"cameras.{i}.address"] = cam.address
    return found


def single_host(cfg: RunConfig) -> bool:
    """True when every socket of the run is ipc:// or loopback tcp (one machine)."""
    for address in socket_roles(cfg):
        scheme, _, rest = address.partition("://")
        if scheme in ("ipc", "inproc"):
            continue
        host = rest.rpartition(":")[0].strip("[]")
        if host == "localhost":
            continue
        try:
            if ipaddress.ip_address(host).is_loopback:
                continue
        except ValueError:
            pass
        return False
    return True


def run_keys(cfg: RunConfig, *, create: bool | None = None) -> KeyRing:
    """The run's key ring.

    Args:
        create: make the identities that have no key pair yet. None (default): only for a
            run whose sockets are all on this machine; a multi-host run gets its keys from
            an explicit `robolearn keys create` / `export`, so that a host that lacks them
            fails here instead of making keys nobody else knows.

    Raises:
        ConfigError: keys are missing and may not be created here, or are unreadable.
    """
    directory = keys_dir(cfg).resolve()
    wanted = run_identities(cfg)
    if create is None:
        create = single_host(cfg)
    with _rings_lock:
        ring = _cached(directory)
        if ring is not None and set(wanted) <= set(ring.identities()):
            return ring
        if not create:
            ring = KeyRing(directory)  # raises when the directory is missing
            missing = sorted(set(wanted) - set(ring.identities()))
            if missing:
                raise ConfigError(f"run keys in {directory} lack {missing}: run `robolearn "
                                  "keys create CONFIG` where the keys are kept")
            return _remember(directory, ring)
        directory.parent.mkdir(parents=True, exist_ok=True)
        # Processes of one run may start together: one creates, the others wait and read.
        with open(directory.parent / ".keys.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            ring = KeyRing.create(directory, wanted)
        return _remember(directory, ring)


def _cached(directory: Path) -> KeyRing | None:
    try:
        stamp = directory.stat().st_mtime_ns
    except OSError:
        return None
    return _rings.get((directory, stamp))


def _remember(directory: Path, ring: KeyRing) -> KeyRing:
    _rings[(directory, directory.stat().st_mtime_ns)] = ring
    return ring


def socket_security(cfg: RunConfig, address: str, me: str) -> SocketSecurity:
    """The CURVE settings for the socket at `address`, opened by the process `me`.

    The identity that binds the address gets its key pair and the allow-list of the
    identities that may connect; any other gets the binder's public key (so it talks only
    to the real server) and its own key pair.

    Raises:
        ConfigError: `address` is none of the run's sockets, `me` may not connect to it, or
            this host lacks the keys.
    """
    if cfg.security.insecure:
        return SocketSecurity(insecure=True)
    me = identity(cfg, me)
    roles = socket_roles(cfg)
    if address not in roles:
        raise ConfigError(f"{address!r} is not one of the run's socket addresses "
                          f"({sorted(roles)})")
    server, clients = roles[address]
    ring = run_keys(cfg)
    if me == server:
        names = ring.identities() if clients is None else sorted(clients)
        allowed = {ring.public(n): n for n in names if n in ring.identities()}
        return SocketSecurity(server_public_key=ring.public(me),
                              server_secret_key=ring.secret(me), allowed_clients=allowed)
    if clients is not None and me not in clients:
        raise ConfigError(f"{me!r} may not connect to {address} (bound by {server!r}; "
                          f"allowed: {sorted(clients)})")
    return SocketSecurity(server_public_key=ring.public(server),
                          client_public_key=ring.public(me), client_secret_key=ring.secret(me))
