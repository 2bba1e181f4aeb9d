"""robolearn: real-robot learning on the MuJoCo Panda sim or a real arm.

Example:
    robolearn up configs/sim_pick_cube.yaml
"""

from __future__ import annotations

import argparse
import logging
import sys

from robolearn.cli import (
    actor,
    calibrate,
    dataset,
    db,
    demos,
    driver,
    episodes,
    estop,
    evaluate,
    files,
    keys,
    learner,
    prefs,
    replay,
    reward,
    serve,
    teleop,
    up,
    user,
)
from robolearn.cli.common import setup_logging
from robolearn.errors import RobolearnError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="robolearn", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--log-level", default="info",
                   choices=["debug", "info", "warning", "error"], help="log verbosity")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (up, driver, actor, learner, evaluate, demos, episodes, db, estop, serve, user,
                   calibrate, replay, dataset, teleop, reward, prefs, keys, files):
        module.add_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level, component=args.command)
    try:
        return int(args.func(args) or 0)
    except RobolearnError as e:
        logging.getLogger("robolearn").error("%s", e)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
