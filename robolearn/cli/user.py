"""Manage operator-service accounts in a run's database.

Example:
    robolearn user add configs/sim_pick_cube.yaml alice --role operator

Roles: viewer (watch), operator (also label, answer preferences, start/stop runs and move
the robot), admin (also manage users and read the audit log). The password is asked twice
on the terminal, or read from one line of standard input with --password-stdin.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
import time

from robolearn.cli.common import add_config_args, config_from_args
from robolearn.errors import UserError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("user", help="manage operator-service accounts", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    usub = p.add_subparsers(dest="user_command", required=True)
    add = usub.add_parser("add", help="add an account")
    add_config_args(add)
    add.add_argument("username")
    add.add_argument("--role", choices=["viewer", "operator", "admin"], default="viewer")
    add.add_argument("--password-stdin", action="store_true",
                     help="read the password from one line of standard input")
    add.set_defaults(func=main_add)
    lst = usub.add_parser("list", help="list accounts")
    add_config_args(lst)
    lst.set_defaults(func=main_list)
    tok = usub.add_parser("token", help="print a bearer token for scripts (needs the "
                          "service's secret in the environment, see server.secret_env)")
    add_config_args(tok)
    tok.add_argument("username")
    tok.add_argument("--days", type=float, default=30.0, help="lifetime in days")
    tok.set_defaults(func=main_token)


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise UserError("the two passwords differ; nothing was changed")
    return first


def main_add(args: argparse.Namespace) -> int:
    # The CLI is where the library and the service meet: the account rules live in server/.
    from robolearn.server.deps import audit
    from robolearn.server.users import create_user
    from robolearn.store import Store

    cfg = config_from_args(args)
    password = _read_password(args.password_stdin)
    with Store.open(cfg.data_dir, cfg.database_url) as store, store.session() as db:
        user = create_user(db, args.username, password, args.role)
        audit(db, None, "user.create", f"user:{user.username}", {"role": user.role, "via": "cli"})
        db.commit()
    print(f"user {args.username!r} added as {args.role}")
    return 0


def main_list(args: argparse.Namespace) -> int:
    from robolearn.store import Store
    from robolearn.store.users import list_users

    cfg = config_from_args(args)
    with Store.open(cfg.data_dir, cfg.database_url) as store, store.session() as db:
        users = list_users(db)
    for u in users:
        print(f"{u.id:4d}  {u.username:<24} {u.role:<9} {'active' if u.active else 'inactive'}")
    print(f"{len(users)} user(s)")
    return 0


def main_token(args: argparse.Namespace) -> int:
    from robolearn.server.auth import TokenSigner
    from robolearn.server.deps import audit
    from robolearn.store import Store
    from robolearn.store.users import find_user

    cfg = config_from_args(args)
    if os.environ.get(cfg.server.secret_env) is None:
        raise UserError(f"{cfg.server.secret_env} is not set: the service would not accept "
                        "the token; set it here and for `robolearn serve`")
    if not 0 < args.days <= 366:
        raise UserError(f"--days must be in (0, 366], got {args.days}")
    signer = TokenSigner(cfg.server.token_secret(), time.time)
    with Store.open(cfg.data_dir, cfg.database_url) as store, store.session() as db:
        user = find_user(db, args.username)
        if user is None or not user.active:
            raise UserError(f"user {args.username!r}: no such active user")
        token = signer.issue(user.id, user.password_hash, args.days * 86400.0)
        audit(db, None, "auth.token_create", f"user:{user.username}", {"via": "cli"})
        db.commit()
    print(token)
    return 0
