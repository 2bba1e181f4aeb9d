"""Create, list and export the CURVE key pairs of a run's processes.

Example:
    robolearn keys create configs/sim_pick_cube.yaml
    robolearn keys list configs/sim_pick_cube.yaml
    robolearn keys export configs/rig_franka.yaml --identity driver --out /tmp/robot-pc-keys

Every process of a run (driver, actor, learner, service, operator CLI, each camera process)
has its own key pair; sockets admit only the run's keys (see the README's Security section).
`robolearn up` creates the keys of a run on one machine by itself. For processes on other
hosts, create the keys once, then export to each host the public keys plus the secrets of
the identities it runs, and point `security.keys_dir` there.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from robolearn.cli.common import add_config_args, config_from_args
from robolearn.config.sockets import keys_dir, run_identities, run_keys
from robolearn.errors import ConfigError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("keys", help="create, list or export the run's CURVE keys",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", choices=["create", "list", "export"])
    add_config_args(p)
    p.add_argument("--force", action="store_true",
                   help="create: replace existing key pairs (every process must restart)")
    p.add_argument("--identity", action="append", default=[], metavar="NAME",
                   help="export: an identity whose secret goes along (repeatable)")
    p.add_argument("--out", type=Path, help="export: the directory to write")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from robolearn.protocol.keys import KeyRing

    cfg = config_from_args(args)
    if cfg.security.insecure:
        raise ConfigError("security.insecure is set: this run uses no keys")
    if args.action == "create":
        ring = KeyRing.create(keys_dir(cfg), run_identities(cfg), force=args.force)
        print(f"keys of {ring.identities()} in {ring.directory}")
        return 0
    ring = run_keys(cfg, create=False)
    if args.action == "list":
        for name in ring.identities():
            has_secret = (ring.directory / f"{name}.key_secret").exists()
            print(f"{name:<20} {ring.public(name)}  {'secret here' if has_secret else ''}")
        return 0
    if args.out is None or not args.identity:
        raise ConfigError("keys export needs --out DIR and at least one --identity NAME "
                          f"(one of {ring.identities()})")
    written = ring.export(args.out, args.identity)
    print(f"wrote {len(written)} files to {args.out}: copy the directory to the other host "
          "(keep it 0700) and set security.keys_dir to it there")
    return 0
