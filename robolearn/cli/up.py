"""Start every process of a run on this machine and supervise them.

Example:
    robolearn up configs/sim_pick_cube.yaml

Starts the drivers (for the sim: one process with the arm and its cameras), the learner if
learner.enabled, then the actor, which records episodes under the config's data_dir, then
the operator service if server.enabled (its URL is printed; on the very first start also a
one-time admin password). Ctrl-C or SIGTERM stops the service, then the actor (its current
episode is closed and stored), then the learner
(it writes a checkpoint), then the drivers; nothing is left running. If any process dies, the
others are stopped and the exit code is non-zero.
"""

from __future__ import annotations

import argparse
import logging
import signal
import socket
import threading

from robolearn.cli.common import add_config_args, config_from_args
from robolearn.cli.processes import ProcessGroup
from robolearn.errors import ConfigError

log = logging.getLogger(__name__)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("up", help="run drivers, learner, actor and service; supervise them",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(p)
    p.add_argument("--resume", action="store_true",
                   help="the learner continues from its newest checkpoint")
    p.add_argument("--run-id", type=int, metavar="N",
                   help="the actor records into the existing run N instead of a new run")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from robolearn.config.calibrated import with_calibrations

    cfg = with_calibrations(config_from_args(args))  # taught workspace box, intrinsics
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    if cfg.server.enabled:
        check_port_free(cfg.server.host, cfg.server.port)
    group = ProcessGroup(cfg, log_level=args.log_level)
    rc = 0
    try:
        group.start_drivers()
        if cfg.learner.enabled:
            group.start_learner(*(["--resume"] if args.resume else []), run_id=args.run_id)
        group.start_actor(run_id=args.run_id)
        if cfg.server.enabled:
            group.start_server()
            print(f"operator service: {cfg.server.url}", flush=True)
        log.info("run %r is up: data in %s; Ctrl-C to stop", cfg.name, cfg.data_dir.resolve())
        while not stop.is_set():
            done = group.exited()
            if done:
                names = {n for n, _ in done}
                if names == {"actor"} and dict(done)["actor"] == 0:
                    log.info("actor finished its episodes: stopping the run")
                else:
                    log.error("process(es) exited unexpectedly: %s; stopping the run", done)
                    rc = 1
                break
            stop.wait(0.2)
    finally:
        group.stop()
    log.info("run %r stopped", cfg.name)
    return rc


def check_port_free(host: str, port: int) -> None:
    """Refuse to start the run when the service's port is taken, before anything moves.

    Raises:
        ConfigError: the port is in use.
    """
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ConfigError(
                f"server: cannot bind {host}:{port} ({exc.strerror}); another service holds "
                "it: pick another with --set server.port=N, or --set server.enabled=false"
            ) from exc

