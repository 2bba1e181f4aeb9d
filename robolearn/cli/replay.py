"""Replay a logged episode in simulation and report how closely the sim follows it.

Example:
    robolearn replay 12 --data-dir data/sim_pick_cube --mode joints

The replay is stored as a new episode linked to the source (its own run), with the sim
cameras' videos; the summary (tracking error mean/max in metres, success in the sim) is
printed as one JSON line. `--policy CKPT` also runs a learner checkpoint on every replayed
observation and reports its actions against the logged ones.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from robolearn.cli.common import setup_logging
from robolearn.config import parse_config
from robolearn.errors import ConfigError, RobolearnError

log = logging.getLogger(__name__)

# The service (server.playback) passes a database URL here rather than on the command line:
# the environment is private to the user, a command line is readable by everyone (ps).
CHILD_DATABASE_URL_ENV = "ROBOLEARN_REPLAY_DATABASE_URL"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("replay", help="replay a logged episode in simulation",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("episode", type=int, help="episode id (see `robolearn episodes list`)")
    p.add_argument("--data-dir", type=Path, default=Path("data/sim_pick_cube"),
                   help="run data directory holding the episode (default: %(default)s)")
    p.add_argument("--database-url", help="database URL if not the SQLite file in data-dir")
    # Not argparse choices: the list lives with the backends, whose imports --help skips;
    # an unknown name is refused with that list before anything runs.
    p.add_argument("--sim", default="mujoco", help="simulator: mujoco or rlbench "
                   "(default: %(default)s)")
    p.add_argument("--mode", choices=("joints", "actions"), default="joints",
                   help="follow the logged joint positions, or send the logged actions "
                        "through the sim's controller (default: %(default)s)")
    p.add_argument("--task", help="sim task to replay on (default: the episode's own)")
    p.add_argument("--policy", type=Path, metavar="CKPT",
                   help="also evaluate this learner checkpoint on the replayed observations")
    p.add_argument("--no-store", action="store_true", help="do not store the replay")
    p.set_defaults(func=main)


def policy_from_checkpoint(path: Path) -> Any:
    """A greedy CQN policy from a learner checkpoint, with the checkpoint's own config.

    Raises:
        ConfigError: the file is missing, unreadable or not a robolearn checkpoint.
    """
    import torch

    from robolearn.learn.policy import CQNPolicy

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises pickle, zip and runtime errors for a bad file
        raise ConfigError(f"checkpoint {path}: cannot read ({type(exc).__name__}: {exc})") from exc
    if not isinstance(state, dict) or "config" not in state or "agent" not in state:
        raise ConfigError(f"checkpoint {path}: not a robolearn learner checkpoint")
    config = dict(state["config"])
    config["actor"] = {**config["actor"], "policy": {"kind": "cqn", "checkpoint": str(path),
                                                     "eval_mode": True}}
    config["learner"] = {**config["learner"], "enabled": False}
    return CQNPolicy(parse_config(config, source=f"checkpoint {path}"))


def main(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from robolearn.playback import replay_episode
    from robolearn.store import Store

    if not args.data_dir.exists() and args.database_url is None:
        raise ConfigError(f"no data directory {args.data_dir}; pass --data-dir of the run "
                          "that recorded the episode")
    policy = policy_from_checkpoint(args.policy) if args.policy else None
    cameras = image_size = None
    if policy is not None and policy.spec.pixels:
        cameras, image_size = tuple(policy.spec.cameras), tuple(policy.spec.image_hw)
    with Store.open(args.data_dir, args.database_url) as store, \
            tqdm(desc=f"replay {args.episode} ({args.mode})", unit="step") as bar:

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        report = replay_episode(
            store, args.episode, mode=args.mode, backend=args.sim, task=args.task,
            policy=policy, policy_name=str(args.policy or ""), record=not args.no_store,
            cameras=cameras, image_size=image_size, progress=progress,
        )
    summary = report.model_dump(exclude={"tracking_error_m"})
    if report.policy is not None:
        summary["policy"] = report.policy.model_dump(exclude={"action_error"})
    print(json.dumps(summary))
    return 0


def child_main(argv: list[str]) -> int:
    """`robolearn replay ARGV` as the service's replay process (`python -m
    robolearn.cli.replay`), without importing the other subcommands: `robolearn.cli.main`
    loads torch for the actor and learner commands, which triples the child's start-up.

    Returns:
        The exit status: 2 for a refused replay, whose reason is logged at ERROR for the
        service to report.
    """
    parser = argparse.ArgumentParser(prog="robolearn")
    add_parser(parser.add_subparsers(dest="command", required=True))
    url = os.environ.get(CHILD_DATABASE_URL_ENV)
    args = parser.parse_args(["replay", *argv, *(["--database-url", url] if url else [])])
    setup_logging("warning", component="replay")
    try:
        return int(args.func(args) or 0)
    except RobolearnError as exc:
        # The parent reports this line as the job's failure.
        log.error("%s", exc)
        return 2


if __name__ == "__main__":
    sys.exit(child_main(sys.argv[1:]))
