"""A fleet: several robots (each a driver and an actor) feeding one learner.

A run config with `fleet.robots` describes the whole fleet; its own `robot`, `cameras` and
`actor` sections are the template every robot starts from. Robot i (counting from 0) gets:

- the template's socket addresses with their port raised by `fleet.port_stride` x i and,
  where the robot names a `host`, that host in place of the template's (its PC binds them);
- `actor.seed` raised by `fleet.seed_stride` x i, so no two robots practise the same scene;
- then its own `set` (dotted keys as `--set` takes them), which wins over both.

The resolved values are written into each robot's `set` when the config is validated, so a
robot's view (`robot_view`) and every process's idea of who binds what come from one place,
and a dumped config reads back the same. Each robot's processes run on its view: the same
config with `robot_name` set and that robot's sections in place; their key identities are
`driver-<name>`, `actor-<name>`, `camera-<camera>-<name>` (robolearn.config.sockets).
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from pydantic import Field, field_validator

from robolearn.config.base import Frozen
from robolearn.errors import ConfigError

if TYPE_CHECKING:
    from robolearn.config.models import RunConfig

ROBOT_NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,23}$"
# The sections of a run config that belong to one robot of a fleet (the rest is shared).
ROBOT_SOCKET_KEYS = ("robot.state_address", "robot.command_address", "robot.frames_address",
                     "actor.control_address", "actor.telemetry_address",
                     "actor.files_address")


class FleetRobot(Frozen):
    name: str = Field(pattern=ROBOT_NAME_PATTERN,
                      description="The robot's name: in its processes' key identities, its "
                      "episodes, telemetry and the UI.")
    host: str | None = Field(
        None, description="Hostname or IP of the robot's PC, where its driver and actor "
        "bind their sockets; None: the template's host.")
    set: dict[str, Any] = Field(
        default_factory=dict,
        description="This robot's own settings as dotted keys (`robot.task: pick_cube`, "
        "`robot.host: 10.0.0.7`); its sockets and actor.seed are filled in when the config "
        "is read (see robolearn.config.fleet).")


class FleetConfig(Frozen):
    robots: tuple[FleetRobot, ...] = Field(
        (), description="The robots of the fleet; empty: the run's one robot is its robot.")
    port_stride: int = Field(100, ge=1, description="Robot i's socket ports are the "
                             "template's plus port_stride x i.")
    seed_stride: int = Field(1_000_000, ge=1, description="Robot i's first episode seed is "
                             "actor.seed plus seed_stride x i.")

    @field_validator("robots")
    @classmethod
    def _unique_names(cls, robots: tuple[FleetRobot, ...]) -> tuple[FleetRobot, ...]:
        names = [r.name for r in robots]
        if len(set(names)) != len(names):
            raise ValueError(f"fleet robot names must be unique, got {names}")
        return robots

    @property
    def names(self) -> list[str]:
        return [r.name for r in self.robots]


def _moved(address: str, index: int, stride: int, host: str | None) -> str:
    """`address` for robot `index`: tcp port + stride x index, host replaced; an ipc://
    path gets the index appended."""
    scheme, _, rest = address.partition("://")
    if scheme != "tcp":
        return address if index == 0 else f"{address}-{index}"
    where, _, port = rest.rpartition(":")
    if host is not None:
        where = f"[{host}]" if ":" in host else host
    return f"tcp://{where}:{int(port) + stride * index}"


def _get(data: dict[str, Any], key: str) -> Any:
    node: Any = data
    for part in key.split("."):
        if isinstance(node, list):
            node = node[int(part)] if part.isdigit() and int(part) < len(node) else None
        elif isinstance(node, dict):
            node = node.get(part)
        else:
            return None
    return node


def resolve_fleet(data: dict[str, Any]) -> dict[str, Any]:
    """A raw run config with every fleet robot's sockets and seed written into its `set`
    (values already there are kept, so a resolved config resolves to itself)."""
    fleet = data.get("fleet")
    if not isinstance(fleet, dict) or not fleet.get("robots"):
        return data
    data = copy.deepcopy(data)
    fleet = data["fleet"]
    stride = int(fleet.get("port_stride", 100))
    seed_stride = int(fleet.get("seed_stride", 1_000_000))
    cameras = data.get("cameras") or []
    keys = [*ROBOT_SOCKET_KEYS,
            *(f"cameras.{i}.address" for i, c in enumerate(cameras)
              if isinstance(c, dict) and c.get("address"))]
    for index, robot in enumerate(fleet["robots"]):
        if not isinstance(robot, dict):
            continue
        own = dict(robot.get("set") or {})
        for key in keys:
            template = _get(data, key)
            if isinstance(template, str) and key not in own:
                own[key] = _moved(template, index, stride, robot.get("host"))
        if "actor.seed" not in own:
            own["actor.seed"] = int(_get(data, "actor.seed") or 0) + seed_stride * index
        robot["set"] = own
    return data


def robot_view(cfg: RunConfig, name: str) -> RunConfig:
    """The config the processes of fleet robot `name` run on: the fleet's, with that robot's
    settings in place and `robot_name` set.

    Raises:
        ConfigError: no such robot, or `cfg` is already another robot's view.
    """
    from robolearn.config.load import apply_override, parse_config

    if name not in cfg.fleet.names:
        raise ConfigError(f"fleet: no robot {name!r} (robots: {cfg.fleet.names})")
    if cfg.robot_name is not None:
        if cfg.robot_name == name:
            return cfg
        raise ConfigError(f"fleet: this is robot {cfg.robot_name!r}'s config, not the fleet's")
    robot = next(r for r in cfg.fleet.robots if r.name == name)
    data = cfg.model_dump(mode="json")
    data["robot_name"] = name
    for key, value in robot.set.items():
        apply_override(data, f"{key}={_yaml(value)}")
    return parse_config(data, source=f"fleet robot {name!r}")


def robot_views(cfg: RunConfig) -> list[RunConfig]:
    """Every robot's view; the run itself for a run of one robot."""
    if not cfg.fleet.robots:
        return [cfg]
    return [robot_view(cfg, n) for n in cfg.fleet.names]


def robot_sockets(cfg: RunConfig, name: str) -> dict[str, str]:
    """Fleet robot `name`'s own sockets, {dotted key: address}, readable from any view."""
    robot = next(r for r in cfg.fleet.robots if r.name == name)
    return {k: v for k, v in robot.set.items()
            if (k in ROBOT_SOCKET_KEYS or (k.startswith("cameras.") and k.endswith(".address")))
            and isinstance(v, str)}


def _yaml(value: Any) -> str:
    import json

    return json.dumps(value)  # JSON is YAML: apply_override parses it back exactly
