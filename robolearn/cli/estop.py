"""Latch or release the e-stop of a run's arms, talking to their drivers directly.

Example:
    robolearn estop configs/sim_pick_cube.yaml            # latch (every robot of a fleet)
    robolearn estop configs/sim_pick_cube.yaml --release --robot left

A fleet config (`fleet.robots`) latches every robot's arm, concurrently, unless `--robot`
names one; each robot's result is printed. Release acts on one robot: a fleet of several
needs `--robot`. The exit status is 0 only when every robot confirmed: 1 when a driver
refused, 2 when one did not answer (then use that robot's hardware e-stop).
"""

from __future__ import annotations

import argparse
import getpass
import logging
import socket
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from robolearn.cli.common import add_config_args, config_from_args
from robolearn.config import RunConfig
from robolearn.errors import PeerTimeout, RobolearnError

log = logging.getLogger(__name__)

# Exit statuses.
_OK, _REFUSED, _NO_ANSWER = 0, 1, 2


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("estop", help="latch (or --release) the arms' e-stop",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(p)
    p.add_argument("--release", action="store_true", help="release instead of latching")
    p.add_argument("--robot", metavar="NAME", help="only this fleet robot (release: required "
                   "for a fleet of several robots)")
    p.add_argument("--timeout", type=float, default=1.0, help="seconds to wait for each driver")
    p.set_defaults(func=main)


@dataclass(frozen=True)
class _Result:
    robot: str | None  # None: the run's one robot
    address: str
    code: int
    message: str


def _robots(cfg: RunConfig, robot: str | None, release: bool) -> list[tuple[str | None,
                                                                           RunConfig]]:
    """(fleet name or None, that robot's config) of the robots to act on.

    Raises:
        RobolearnError: an unknown robot, or a release with no robot named in a fleet.
    """
    from robolearn.config.fleet import robot_view
    from robolearn.errors import ConfigError

    names = cfg.fleet.names
    if not names:
        if robot is not None:
            raise ConfigError(f"--robot {robot}: this run has one robot and no fleet; leave "
                              "--robot out")
        return [(None, cfg)]
    if cfg.robot_name is not None:  # one robot's own view of the fleet config
        names = [cfg.robot_name]
    if robot is not None:
        if robot not in names:
            raise ConfigError(f"--robot {robot}: no such robot (robots: {', '.join(names)})")
        names = [robot]
    elif release and len(names) > 1:
        raise ConfigError(f"--release acts on one robot: name it with --robot (robots: "
                          f"{', '.join(names)})")
    return [(name, robot_view(cfg, name)) for name in names]


def main(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    try:
        robots = _robots(cfg, args.robot, args.release)
    except RobolearnError as e:
        print(f"robolearn estop: {e}")
        return _REFUSED
    command = "estop_release" if args.release else "estop"
    # Every robot at once: one dead driver costs its own timeout, not the others'.
    with ThreadPoolExecutor(max_workers=len(robots)) as pool:
        results = list(pool.map(lambda r: _send(r[0], r[1], command, args.timeout), robots))
    for result, (_, view) in zip(results, robots, strict=True):
        prefix = "" if result.robot is None else f"{result.robot}: "
        print(prefix + result.message)
        if result.code == _OK:
            _audit(view, result.robot,
                   "control.estop_release" if args.release else "control.estop")
    return max(r.code for r in results)


def _send(robot: str | None, cfg: RunConfig, command: str, timeout_s: float) -> _Result:
    import zmq

    from robolearn.protocol import Requester
    from robolearn.protocol.messages import Reply

    address = cfg.robot.command_address
    ctx = zmq.Context()
    try:
        req = Requester(ctx, address, "cli",
                        security=cfg.socket_security(address, "operator"))
        try:
            reply = Reply.from_message(req.request(
                "arm_command", {"command": command, "reason": _who()}, timeout_s=timeout_s))
        finally:
            req.close()
    except PeerTimeout:
        return _Result(robot, address, _NO_ANSWER,
                       f"no answer from the driver at {address} within {timeout_s} s: is it "
                       "running? If the arm may be moving, use the hardware e-stop.")
    except RobolearnError as e:  # e.g. this host lacks the run's keys
        return _Result(robot, address, _REFUSED, f"cannot reach the driver at {address}: {e}")
    finally:
        ctx.term()
    if not reply.ok:
        return _Result(robot, address, _REFUSED, f"driver refused {command}: {reply.reason}")
    return _Result(robot, address, _OK,
                   "e-stop released" if command == "estop_release"
                   else "e-stop LATCHED: the arm will not move")


def _who() -> str:
    return f"{getpass.getuser()}@{socket.gethostname()} (cli)"


def _audit(cfg: RunConfig, robot: str | None, action: str) -> None:
    """Record the CLI's e-stop action in the run's audit log; a store that cannot be written
    (a full disk) is reported, never turned into a failed e-stop."""
    from robolearn.store import Store

    target = f"robot:{cfg.robot.name}" if robot is None else f"robot:{robot}"
    try:
        with Store.open(cfg.data_dir, cfg.database_url) as store:
            store.audit(action, target, {"by": _who(), "via": "cli"})
    except (RobolearnError, OSError) as e:
        log.error("the e-stop action was carried out but could not be written to the audit "
                  "log: %s", e)
