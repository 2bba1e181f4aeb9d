"""Database maintenance.

Example:
    robolearn db upgrade --data-dir data/sim_pick_cube
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("db", help="database maintenance", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    dsub = p.add_subparsers(dest="db_command", required=True)
    up = dsub.add_parser("upgrade", help="apply all migrations (creates the database)")
    where = up.add_mutually_exclusive_group(required=True)
    where.add_argument("--data-dir", type=Path, help="run data directory (SQLite inside)")
    where.add_argument("--url", help="SQLAlchemy database URL, e.g. postgresql+psycopg://...")
    up.set_defaults(func=main_upgrade)


def main_upgrade(args: argparse.Namespace) -> int:
    from robolearn.store.db import default_url, upgrade

    if args.data_dir is not None:
        args.data_dir.mkdir(parents=True, exist_ok=True)
    url = args.url or default_url(args.data_dir)
    upgrade(url)
    print(f"database at {url.split('@')[-1]} is at the newest schema")
    return 0
