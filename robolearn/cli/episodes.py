"""List recorded episodes.

Example:
    robolearn episodes list --data-dir data/sim_pick_cube --task pick_cube
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("episodes", help="browse recorded episodes", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    esub = p.add_subparsers(dest="episodes_command", required=True)
    ls = esub.add_parser("list", help="list episodes (complete ones unless --status)")
    ls.add_argument("--data-dir", type=Path, default=Path("data/sim_pick_cube"),
                    help="run data directory (default: %(default)s)")
    ls.add_argument("--database-url", help="database URL if not the SQLite file in data-dir")
    ls.add_argument("--run", type=int, help="only this run id")
    ls.add_argument("--task", help="only this task")
    ls.add_argument("--status", default="complete",
                    choices=["complete", "recording", "incomplete", "aborted", "all"])
    ls.add_argument("--demos", action="store_true", help="only demonstrations")
    ls.add_argument("--limit", type=int, help="at most N (newest first)")
    ls.set_defaults(func=main_list)


def main_list(args: argparse.Namespace) -> int:
    from robolearn.store import Store

    if not args.data_dir.exists() and args.database_url is None:
        print(f"no data directory {args.data_dir}: nothing recorded yet "
              "(run `make run` or `robolearn up CONFIG`)")
        return 1
    with Store.open(args.data_dir, args.database_url) as store:
        rows = store.list_episodes(
            run_id=args.run, task=args.task,
            status=None if args.status == "all" else args.status,
            is_demo=True if args.demos else None, limit=args.limit,
        )
    if not rows:
        print("no episodes match")
        return 0
    print(f"{'id':>5} {'run':>4} {'task':<14} {'status':<10} {'outcome':<8} {'steps':>5} "
          f"{'demo':<4} {'seed':>5}  created")
    for e in rows:
        print(f"{e.id:>5} {e.run_id:>4} {e.task:<14} {e.status:<10} {e.outcome or '-':<8} "
              f"{e.num_steps:>5} {'yes' if e.is_demo else '':<4} "
              f"{'' if e.seed is None else e.seed:>5}  {e.created_at:%Y-%m-%d %H:%M:%S}")
    print(f"{len(rows)} episode(s)")
    return 0
