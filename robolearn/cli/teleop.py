"""Operator teleoperation devices that take over a running actor.

Example:
    robolearn teleop spacemouse configs/rig_franka.yaml

Press the SpaceMouse's takeover button (spacemouse.takeover_button, default 1: the right
button) to take over from the policy, push and twist the cap to move the end effector, press
the gripper button (default 0) to open or close the gripper, and press the takeover button
again to hand back to the policy. Those steps are recorded as interventions. Ctrl-C ends an
active takeover before exiting.
"""

from __future__ import annotations

import argparse
import logging
import threading
from typing import Any

from robolearn.cli.common import add_config_args, config_from_args, stop_on_signals
from robolearn.config import RunConfig

log = logging.getLogger(__name__)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("teleop", help="take over a running actor with a teleop device",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    devices = p.add_subparsers(dest="device", required=True, metavar="DEVICE")
    s = devices.add_parser("spacemouse", help="a 3Dconnexion SpaceMouse (extra: spacemouse)")
    add_config_args(s)
    s.add_argument("--timeout", type=float, default=0.5,
                   help="seconds to wait for each actor answer")
    s.set_defaults(func=main_spacemouse)


def run_spacemouse(cfg: RunConfig, stop: threading.Event, *, sdk: Any | None = None,
                   timeout_s: float = 0.5) -> None:
    """Teleoperate the run's actor with a SpaceMouse until `stop` is set.

    Args:
        cfg: the run config (actor control address, action space, spacemouse settings).
        stop: ends the loop (an active takeover is ended first).
        sdk: the pyspacemouse module or a stand-in; None imports pyspacemouse.
        timeout_s: wait for each actor answer.

    Raises:
        ConfigError: pyspacemouse is missing, or a configured button does not exist.
        DeviceNotConnected: no SpaceMouse could be opened.
    """
    from robolearn.actor.control import ActorControlClient
    from robolearn.hardware.spacemouse import SpaceMouseTeleop

    client = ActorControlClient(cfg.actor.control_address,
                                cfg.socket_security(cfg.actor.control_address, "operator"),
                                timeout_s=timeout_s, sender="spacemouse")
    try:
        with SpaceMouseTeleop(cfg.spacemouse, client,
                              use_yaw=cfg.actor.action_scale.use_yaw, sdk=sdk) as teleop:
            log.info("SpaceMouse ready: press button %d to take over %s",
                     cfg.spacemouse.takeover_button, cfg.actor.control_address)
            teleop.run(stop)
    finally:
        client.close()


def main_spacemouse(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    run_spacemouse(cfg, stop_on_signals(), timeout_s=args.timeout)
    return 0
