"""Preference queries: create them, answer them with a simulated teacher, train the model.

Example:
    robolearn prefs simulate configs/sim_pick_cube.yaml --teacher oracle -n 50

`simulate` makes sure N queries are pending (creating the missing ones with
rewards.preference.selection) and answers them from the sim's true returns: oracle,
mistake (wrong with probability --eps), noisy (Boltzmann, --beta) or equal (says equal
when the returns are within --equal-margin). Episodes need the world state
(actor.observe_state). `query` only creates queries; `train` fits the ensemble on every
answer of the run (but the held-out ones, on which it reports its agreement).

Without --run every command works on the active training run (the newest run that is
training now; replay and import runs never count), else the newest training run, and says
which run it chose. While a run trains with preference shaping the operator service makes
queries and retrains on its own (rewards.preference.queries_per_episode, retrain_every).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import TYPE_CHECKING

from robolearn.cli.common import add_config_args, config_from_args

if TYPE_CHECKING:
    from robolearn.store import Store

log = logging.getLogger(__name__)

RUN_HELP = "run id (default: the active training run, else the newest training run)"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("prefs", help="preference queries and the preference reward model",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    psub = p.add_subparsers(dest="prefs_command", required=True)
    sim = psub.add_parser("simulate", help="answer queries with a simulated teacher")
    add_config_args(sim)
    sim.add_argument("--teacher", required=True, choices=["oracle", "mistake", "noisy", "equal"])
    sim.add_argument("-n", "--num", type=int, required=True, help="queries to answer")
    sim.add_argument("--run", type=int, help=RUN_HELP)
    sim.add_argument("--eps", type=float, default=0.1, help="mistake: error probability")
    sim.add_argument("--beta", type=float, default=1.0, help="noisy: rationality")
    sim.add_argument("--equal-margin", type=float, default=0.1, help="equal: relative margin")
    sim.add_argument("--seed", type=int, default=0, help="seed of the teacher's randomness")
    sim.set_defaults(func=main_simulate)
    q = psub.add_parser("query", help="create pending queries")
    add_config_args(q)
    q.add_argument("-n", "--num", type=int, required=True)
    q.add_argument("--run", type=int, help=RUN_HELP)
    q.add_argument("--selection", choices=["uniform", "disagreement", "entropy"],
                   help="default: rewards.preference.selection")
    q.set_defaults(func=main_query)
    t = psub.add_parser("train", help="train the preference model on the run's answers")
    add_config_args(t)
    t.add_argument("--run", type=int, help=RUN_HELP)
    t.set_defaults(func=main_train)


def _run_id(store: Store, run: int | None) -> int:
    """The run to work on; says on stderr which one and why (stdout stays the result)."""
    from robolearn.rewards.preference_runs import choose_run

    chosen, why = choose_run(store, run)
    print(why, file=sys.stderr)
    return chosen.id


def _pending(store: Store, run_id: int) -> int:
    from robolearn.store.preferences import count_queries

    with store.session() as session:
        return count_queries(session, run_id, ("pending",))


def main_simulate(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from robolearn.rewards.queries import create_queries
    from robolearn.rewards.teachers import answer_pending
    from robolearn.store import Store

    cfg = config_from_args(args)
    pref = cfg.rewards.preference
    with Store.open(cfg.data_dir, cfg.database_url) as store:
        run_id = _run_id(store, args.run)
        missing = args.num - _pending(store, run_id)
        if missing > 0:
            create_queries(store, run_id, missing, pref.selection, cfg=pref)
        answered = 0
        with tqdm(total=args.num, desc=f"{args.teacher} teacher", unit="query") as bar:
            while answered < args.num:
                chunk = answer_pending(store, run_id, args.teacher, min(50, args.num - answered),
                                       seed=args.seed + answered, eps=args.eps, beta=args.beta,
                                       equal_margin=args.equal_margin)
                if chunk == 0:
                    break
                answered += chunk
                bar.update(chunk)
    print(f"run {run_id}: {answered} queries answered by the {args.teacher} teacher")
    return 0


def main_query(args: argparse.Namespace) -> int:
    from robolearn.rewards.queries import create_queries
    from robolearn.store import Store

    cfg = config_from_args(args)
    pref = cfg.rewards.preference
    with Store.open(cfg.data_dir, cfg.database_url) as store:
        run_id = _run_id(store, args.run)
        ids = create_queries(store, run_id, args.num, args.selection or pref.selection, cfg=pref)
    print(f"run {run_id}: created queries {ids}")
    return 0


def main_train(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from robolearn.rewards.preference import train_preference
    from robolearn.store import Store

    cfg = config_from_args(args)
    with Store.open(cfg.data_dir, cfg.database_url) as store:
        run_id = _run_id(store, args.run)
        with tqdm(total=cfg.rewards.preference.steps, desc="train", unit="step") as bar:
            report = train_preference(store, cfg.rewards.preference, run_id=run_id,
                                      progress=lambda _s, done, _t: bar.update(done - bar.n))
    print(json.dumps(report.model_dump(), indent=2))
    return 0
