"""Run the actor: the fixed-rate control loop that records episodes.

Example:
    robolearn actor configs/sim_pick_cube.yaml --episodes 5 --policy random
"""

from __future__ import annotations

import argparse
import logging
from collections import deque
from typing import TYPE_CHECKING

from robolearn.cli.common import add_config_args, config_from_args, stop_on_signals

if TYPE_CHECKING:
    from robolearn.actor.loop import EpisodeResult

log = logging.getLogger(__name__)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("actor", help="run the control loop and record episodes",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(p)
    p.add_argument("--episodes", type=int, help="stop after N episodes (default: config)")
    p.add_argument("--policy", choices=["expert", "random", "zero"],
                   help="override actor.policy.kind")
    p.add_argument("--run-id", type=int, metavar="N",
                   help="record into the existing run N (e.g. one created through the "
                        "service) instead of creating a new run")
    p.set_defaults(func=main)


_RECENT: deque[bool] = deque(maxlen=20)


def log_episode(result: EpisodeResult) -> None:
    """One line per episode, with the success rate of the last 20 (evaluations apart)."""
    if not result.evaluation:
        _RECENT.append(result.success)
    log.info("%s %d (seed %d): %s after %d steps (%s)%s; success %d/%d of the last %d",
             "evaluation" if result.evaluation else "episode", result.index + 1, result.seed,
             result.outcome, result.steps, result.end_reason,
             f", stored as #{result.episode_id}" if result.episode_id is not None else "",
             sum(_RECENT), len(_RECENT), _RECENT.maxlen)


def main(args: argparse.Namespace) -> int:
    import zmq

    from robolearn.actor.loop import Actor
    from robolearn.store import Store

    if args.policy:
        args.overrides.append(f"actor.policy.kind={args.policy}")
    cfg = config_from_args(args)
    stop = stop_on_signals()
    ctx = zmq.Context()
    store = Store.open(cfg.data_dir, cfg.database_url) if cfg.actor.record else None
    try:
        actor = Actor(cfg, ctx, store=store, on_episode=log_episode, run_id=args.run_id)
    except BaseException:
        if store is not None:
            store.close()
        ctx.term()
        raise
    try:
        summary = actor.run(stop, episodes=args.episodes)
    finally:
        actor.close()
        if store is not None:
            store.close()
        ctx.term()
    timing = summary.timing_ms()
    log.info("actor done: %d episodes, %d successes, %d steps; jitter p99 %.2f ms, "
             "latency p99 %.2f ms", len(summary.episodes), summary.successes, summary.steps,
             timing.get("jitter_p99_ms", float("nan")), timing.get("latency_p99_ms", float("nan")))
    return 0
