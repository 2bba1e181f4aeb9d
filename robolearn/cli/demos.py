"""Collect scripted-expert demonstrations on the sim, through the real drivers and actor.

Example:
    robolearn demos collect --task pick_cube -n 20

The sim driver runs as its own process (as in `robolearn up`); the actor runs the task's
scripted expert and stores each episode with is_demo set. Failed attempts are stored too (as
ordinary episodes, outcome failure) and collection continues until n successes or
--max-attempts.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from robolearn.cli.common import stop_on_signals
from robolearn.config import RunConfig, apply_override, load_config, parse_config
from robolearn.config.rewards import LEARNED_SUCCESS

if TYPE_CHECKING:
    from robolearn.actor.loop import EpisodeResult

log = logging.getLogger(__name__)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demos", help="demonstrations", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    dsub = p.add_subparsers(dest="demos_command", required=True)
    c = dsub.add_parser("collect", help="record scripted-expert demos on the sim",
                        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    c.add_argument("--task", choices=["reach", "push_cube", "pick_cube", "drawer_open",
                                      "drawer_close", "bin_a_to_b", "bin_b_to_a"],
                   help="sim task (default: the config's)")
    c.add_argument("-n", "--num", type=int, default=20, help="successful demos to collect")
    c.add_argument("--max-attempts", type=int, help="give up after this many episodes "
                   "(default 2n)")
    c.add_argument("--config", type=Path, help="run config YAML (default: built-in sim)")
    c.add_argument("--data-dir", type=Path, help="where to store (default: data/demos_<task>)")
    c.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value (repeatable)")
    c.add_argument("--if-missing", action="store_true",
                   help="only collect what is missing: count the successful demos of this "
                   "task already stored and collect the difference")
    c.set_defaults(func=main_collect)


def demo_config(args: argparse.Namespace, sock_dir: Path) -> RunConfig:
    """The config for a collection: private ipc:// addresses so it never collides with a run."""
    from robolearn.processes import use_private_addresses

    if args.config is not None:
        base = load_config(args.config).model_dump(mode="json")
    else:
        base = RunConfig(name="demos").model_dump(mode="json")
    task = args.task or base.get("robot", {}).get("task", "pick_cube")
    base.setdefault("robot", {})["task"] = task
    base["name"] = f"demos_{task}"
    if args.data_dir is not None:
        base["data_dir"] = str(args.data_dir)
    elif args.config is None:
        base["data_dir"] = f"data/demos_{task}"
    use_private_addresses(base, sock_dir)
    base["actor"]["policy"] = {"kind": "expert"}
    base["learner"]["enabled"] = False
    rewards = base.setdefault("rewards", {})
    if rewards.get("sparse") in LEARNED_SUCCESS:
        # A demonstration ends when its operator says the task is done; the scripted
        # expert's operator is the sim. The learner judges the demos again with the
        # run's own detector, so this verdict never reaches its rewards.
        rewards.update(sparse="sim_success", shaping=[])
    for ov in args.overrides:
        apply_override(base, ov)
    return parse_config(base, source="demos collect")


def main_collect(args: argparse.Namespace) -> int:
    from robolearn.store import Store

    stop = stop_on_signals()
    with tempfile.TemporaryDirectory(prefix="robolearn-demos-") as tmp:
        cfg = demo_config(args, Path(tmp))
        n = args.num
        if args.if_missing and (cfg.data_dir / "robolearn.db").exists():
            with Store.open(cfg.data_dir, cfg.database_url) as store:
                have = sum(e.outcome == "success"
                           for e in store.list_episodes(task=cfg.robot.task, is_demo=True))
            n = max(0, n - have)
            if n == 0:
                print(f"{have} demonstrations of {cfg.robot.task} already stored in "
                      f"{cfg.data_dir}: nothing to collect")
                return 0
        return collect(cfg, n, args.max_attempts or 2 * n, stop, args.log_level)


def collect(cfg: RunConfig, n: int, max_attempts: int, stop: threading.Event,
            log_level: str = "warning") -> int:
    from tqdm import tqdm

    from robolearn.processes import run_episodes_on_sim

    successes = 0
    inner_stop = threading.Event()
    threading.Thread(target=lambda: (stop.wait(), inner_stop.set()), daemon=True).start()
    with tqdm(total=n, desc=f"demos {cfg.robot.task}", unit="demo") as bar:

        def on_episode(r: EpisodeResult) -> None:
            nonlocal successes
            if r.success:
                successes += 1
                bar.update(1)
            bar.set_postfix(attempts=r.index + 1)
            if successes >= n:
                inner_stop.set()

        run_episodes_on_sim(cfg, max_attempts, inner_stop, on_episode, is_demo=True,
                            log_level=log_level)
    print(f"{successes}/{n} demonstrations of {cfg.robot.task} stored in {cfg.data_dir}")
    return 0 if successes >= n else 1
