"""Latch or release the e-stop of a run's arm, talking to its driver directly.

Example:
    robolearn estop configs/sim_pick_cube.yaml            # latch
    robolearn estop configs/sim_pick_cube.yaml --release
"""

from __future__ import annotations

import argparse
import getpass
import logging
import socket

from robolearn.cli.common import add_config_args, config_from_args
from robolearn.config import RunConfig
from robolearn.errors import PeerTimeout, RobolearnError

log = logging.getLogger(__name__)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("estop", help="latch (or --release) the arm's e-stop",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(p)
    p.add_argument("--release", action="store_true", help="release instead of latching")
    p.add_argument("--timeout", type=float, default=1.0, help="seconds to wait for the driver")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    import zmq

    from robolearn.protocol import Requester
    from robolearn.protocol.messages import Reply

    cfg = config_from_args(args)
    command = "estop_release" if args.release else "estop"
    ctx = zmq.Context()
    req = Requester(ctx, cfg.robot.command_address, "cli",
                    security=cfg.socket_security(cfg.robot.command_address, "operator"))
    try:
        reply = Reply.from_message(req.request(
            "arm_command", {"command": command, "reason": _who()}, timeout_s=args.timeout))
    except PeerTimeout:
        print(f"no answer from the driver at {cfg.robot.command_address} within "
              f"{args.timeout} s: is it running? If the arm may be moving, use the hardware "
              "e-stop.")
        return 2
    finally:
        req.close()
        ctx.term()
    if not reply.ok:
        print(f"driver refused {command}: {reply.reason}")
        return 1
    print("e-stop released" if args.release else "e-stop LATCHED: the arm will not move")
    _audit(cfg, "control.estop_release" if args.release else "control.estop")
    return 0


def _who() -> str:
    return f"{getpass.getuser()}@{socket.gethostname()} (cli)"


def _audit(cfg: RunConfig, action: str) -> None:
    """Record the CLI's e-stop action in the run's audit log; a store that cannot be written
    (a full disk) is reported, never turned into a failed e-stop."""
    from robolearn.store import Store

    try:
        with Store.open(cfg.data_dir, cfg.database_url) as store:
            store.audit(action, f"robot:{cfg.robot.name}", {"by": _who(), "via": "cli"})
    except (RobolearnError, OSError) as e:
        log.error("the e-stop action was carried out but could not be written to the audit "
                  "log: %s", e)
