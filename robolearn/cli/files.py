"""Serve this robot host's episode videos to the run's operator service.

Example:
    robolearn files configs/fleet.yaml --robot left

In a run across hosts the service plays episodes recorded on robot PCs by asking the
recording host for them (`actor.files_address`, only the service's key admitted). `robolearn
up --role robot:NAME` starts this for its robots when the run's sockets leave the machine;
run it by hand to serve a host's videos while its robot is stopped.
"""

from __future__ import annotations

import argparse

from robolearn.cli.common import add_config_args, config_from_args, stop_on_signals


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("files", help="serve this host's episode videos to the service",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(p)
    p.add_argument("--robot", metavar="NAME", help="the fleet robot whose files these are "
                   "(needed for a fleet config; its view of the config is served)")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    import zmq

    from robolearn.actor.file_server import serve_episode_files
    from robolearn.config.fleet import robot_view

    cfg = config_from_args(args)
    if args.robot is not None:
        cfg = robot_view(cfg, args.robot)
    elif cfg.fleet.robots and cfg.robot_name is None:
        from robolearn.errors import ConfigError

        raise ConfigError(f"files: name the robot (--robot, one of {cfg.fleet.names})")
    stop = stop_on_signals()
    ctx = zmq.Context()
    try:
        serve_episode_files(cfg, ctx, stop)
    finally:
        ctx.term()
    return 0
