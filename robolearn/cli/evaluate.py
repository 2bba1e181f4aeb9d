"""Evaluate a learner checkpoint: greedy episodes on the sim, success rate and return.

Example:
    robolearn eval data/sim_reach_cqn/checkpoints/ckpt_000005000.pt --task reach -n 50

The checkpoint's own run config supplies the networks' shapes; the sim driver runs as its own
process on private addresses. Episodes are stored (policy "cqn-eval") under --data-dir.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from robolearn.cli.common import stop_on_signals
from robolearn.config import RunConfig, apply_override, parse_config
from robolearn.errors import ConfigError

if TYPE_CHECKING:
    from robolearn.actor.loop import EpisodeResult


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a checkpoint on the sim", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", type=Path, help="a learner checkpoint (ckpt_*.pt)")
    p.add_argument("--task", help="sim task (default: the checkpoint's)")
    p.add_argument("-n", "--episodes", type=int, default=50, help="episodes to run")
    p.add_argument("--seed", type=int, default=10_000, help="seed of the first episode")
    p.add_argument("--data-dir", type=Path, help="where to store (default: <run>/eval)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value (repeatable)")
    p.set_defaults(func=main)


def eval_config(args: argparse.Namespace, sock_dir: Path) -> RunConfig:
    import torch

    from robolearn.learn.observation import check_checkpoint_layout, obs_spec_for
    from robolearn.processes import use_private_addresses

    try:
        state = torch.load(args.checkpoint, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises pickle, zip and runtime errors for a bad file
        raise ConfigError(f"checkpoint {args.checkpoint}: cannot read "
                          f"({type(e).__name__}: {e})") from e
    if "config" not in state or "agent" not in state:
        raise ConfigError(f"checkpoint {args.checkpoint}: not a robolearn learner checkpoint")
    base = state["config"]
    if args.task:
        base["robot"]["task"] = args.task
    base["name"] = f"eval_{base['robot']['task']}"
    base["data_dir"] = str(args.data_dir or Path(base["data_dir"]) / "eval")
    use_private_addresses(base, sock_dir)
    base["actor"].update({
        "seed": args.seed, "eval_every": None,
        "policy": {"kind": "cqn", "checkpoint": str(args.checkpoint), "eval_mode": True},
    })
    base["learner"]["enabled"] = False
    for ov in args.overrides:
        apply_override(base, ov)
    cfg = parse_config(base, source=f"eval {args.checkpoint}")
    check_checkpoint_layout(state, obs_spec_for(cfg), args.checkpoint)  # before anything runs
    return cfg


def main(args: argparse.Namespace) -> int:
    import numpy as np

    stop = stop_on_signals()
    with tempfile.TemporaryDirectory(prefix="robolearn-eval-") as tmp:
        cfg = eval_config(args, Path(tmp))
        results = evaluate(cfg, args.episodes, stop)
    successes = sum(r.success for r in results)
    returns = [float(r.success) for r in results]  # sparse reward: 1 at success
    summary = {"task": cfg.robot.task, "episodes": len(results),
               "success_rate": successes / max(1, len(results)),
               "mean_return": float(np.mean(returns)) if returns else 0.0,
               "mean_steps": float(np.mean([r.steps for r in results])) if results else 0.0,
               "checkpoint": str(args.checkpoint)}
    print(json.dumps(summary))
    return 0


def evaluate(cfg: RunConfig, n: int, stop: threading.Event) -> list[EpisodeResult]:
    from tqdm import tqdm

    from robolearn.processes import run_episodes_on_sim

    results: list[EpisodeResult] = []
    with tqdm(total=n, desc=f"eval {cfg.robot.task}", unit="episode") as bar:

        def on_episode(r: EpisodeResult) -> None:
            results.append(r)
            bar.update(1)
            bar.set_postfix(success=f"{sum(x.success for x in results)}/{len(results)}")

        run_episodes_on_sim(cfg, n, stop, on_episode)
    return results
