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

One run per robot: `up` first takes the robot's lock (robolearn.runlock, keyed by
robot.command_address); while another run (another `up`, or one started from a service)
holds it, `up` says which run and starts nothing. It then marks "died" any run of this
store whose starting process is gone (a SIGKILLed `up` left it "running"), removes
resolved configs such runs left under <data_dir>/run/, and records itself as the owner of
the new run's row.

A run across hosts starts part of itself on each host from the same config (`--role`,
repeatable): `learner`, `service`, `robots` (every robot) or `robot:NAME` (one fleet robot).
The part with the learner (with every robot, for a run without one) creates and ends the
run; start it first. The other parts join the newest live run of the config (or the one
`--run-id` names) and leave it running when they stop. Each host needs the run's keys
(`robolearn keys create` / `export`) and the one database (database_url).

`--continue` goes on with the newest earlier run of the config instead (`make run` does so
unless FRESH=1): the actor records into it on seeds it has not used, and the learner resumes
from its newest checkpoint with the episodes stored meanwhile. A run made with another
learner, task or cameras is not continued (its checkpoint would not fit): a new one starts,
and `up` says why.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import signal
import socket
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from robolearn.cli.common import add_config_args, config_from_args
from robolearn.config import RunConfig
from robolearn.errors import ConfigError

if TYPE_CHECKING:
    from robolearn.runlock import RobotLock

log = logging.getLogger(__name__)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("up", help="run drivers, learner, actor and service; supervise them",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(p)
    p.add_argument("--resume", action="store_true",
                   help="the learner continues from its newest checkpoint")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--run-id", type=int, metavar="N",
                       help="the actor records into the existing run N instead of a new run")
    which.add_argument("--continue", dest="continue_run", action="store_true",
                       help="continue the newest earlier run of this config (same name, "
                       "learner, task and cameras): record into it, the learner from its "
                       "newest checkpoint, episodes on new seeds; a new run if there is none")
    p.add_argument("--role", action="append", metavar="PART",
                   help="start only this part of the run here (repeatable): learner, "
                   "service, robots, or robot:NAME; default: every part")
    p.set_defaults(func=main)


@dataclasses.dataclass(frozen=True)
class Parts:
    """What of a run one `up` starts: robots (fleet names; None is a run's one robot), the
    learner, the service; `owner`: it creates, claims and ends the run's row."""

    robots: tuple[str | None, ...]
    learner: bool
    service: bool
    owner: bool


def parts_of(cfg: RunConfig, roles: list[str] | None) -> Parts:
    """The parts `--role` names (every part when None).

    Raises:
        ConfigError: an unknown role or robot, or a part the config does not have.
    """
    names: list[str | None] = list(cfg.fleet.names) or [None]
    if not roles:
        return Parts(tuple(names), cfg.learner.enabled, cfg.server.enabled, owner=True)
    robots: list[str | None] = []
    learner = service = False
    for role in roles:
        if role == "learner":
            if not cfg.learner.enabled:
                raise ConfigError("--role learner: learner.enabled is false in this config")
            learner = True
        elif role == "service":
            if not cfg.server.enabled:
                raise ConfigError("--role service: server.enabled is false in this config")
            service = True
        elif role == "robots":
            robots += [n for n in names if n not in robots]
        elif role.startswith("robot:"):
            name = role.partition(":")[2]
            if name not in cfg.fleet.names:
                raise ConfigError(f"--role {role}: no fleet robot {name!r} (robots: "
                                  f"{cfg.fleet.names or 'none: use --role robots'})")
            if name not in robots:
                robots.append(name)
        else:
            raise ConfigError(f"--role {role!r}: expected learner, service, robots or "
                              "robot:NAME")
    owner = learner if cfg.learner.enabled else set(robots) == set(names)
    return Parts(tuple(robots), learner, service, owner)


def main(args: argparse.Namespace) -> int:
    from robolearn.calibration.run_config import with_calibrations
    from robolearn.config.fleet import robot_views
    from robolearn.runlock import RobotLock, describe_owner

    cfg = with_calibrations(config_from_args(args))  # taught workspace box, intrinsics
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    # The robots first: a second run of an arm must name the first, not fail on a port.
    parts = parts_of(cfg, args.role)
    locks: list[RobotLock] = []
    try:
        for view in robot_views(cfg):
            if view.robot_name in parts.robots:
                locks.append(RobotLock.acquire(view.robot.command_address,
                                               describe_owner(cfg.name)))
        return _run(cfg, args, stop, locks, parts)
    finally:
        for lock in locks:
            lock.release()


def _run(cfg: RunConfig, args: argparse.Namespace, stop: threading.Event,
         locks: list[RobotLock], parts: Parts) -> int:
    from robolearn.config.sockets import single_host
    from robolearn.processes import RUN_FILES_DIRNAME, ProcessGroup
    from robolearn.runlock import remove_stale_configs

    if parts.service:
        check_port_free(cfg.server.host, cfg.server.port)
    remove_stale_configs(cfg.data_dir / RUN_FILES_DIRNAME)
    run_id = args.run_id
    if args.continue_run:
        run_id = _pick_run_to_continue(cfg)
        args.resume = args.resume or run_id is not None
    if parts.owner:
        run_id = own_run(cfg, locks, run_id)
    else:
        run_id = join_run(cfg, run_id)
    group = ProcessGroup(cfg, log_level=args.log_level, robots=list(parts.robots))
    rc = 0
    all_finished = False
    try:
        group.start_drivers()
        if parts.learner:
            group.start_learner(*(["--resume"] if args.resume else []), run_id=run_id)
        if parts.robots:
            group.start_actor(run_id=run_id)
            if not single_host(cfg):  # the service elsewhere plays these robots' videos
                group.start_file_servers()
        if parts.service:
            server = group.start_server()
            # The URL once it answers: a browser or curl right after the line must get a page.
            if wait_until_answering(cfg.server.url, lambda: server.proc.poll() is None, stop):
                print(f"operator service: {cfg.server.url}", flush=True)
        log.info("run %r is up: data in %s; Ctrl-C to stop", cfg.name, cfg.data_dir.resolve())
        while not stop.is_set():
            done = group.exited()
            # An actor that ran its episodes ends well; the run ends when every robot's has.
            # (A robot's file server then stops with the rest.)
            finished = [n for n, code in done if n.startswith("actor") and code == 0]
            if len(finished) < len(done):
                log.error("process(es) exited unexpectedly: %s; stopping the run", done)
                rc = 1
                break
            if group.robots and len(finished) == len(group.robots):
                log.info("%s finished %s episodes: stopping the run",
                         "every robot's actor" if cfg.fleet.robots else "the actor",
                         "their" if cfg.fleet.robots else "its")
                all_finished = True
                break
            stop.wait(0.2)
    except BaseException:
        rc = 1
        raise
    finally:
        group.stop()
        if run_id is not None and parts.owner:
            _end_unfinished(cfg, run_id, rc, all_finished)
    log.info("run %r stopped", cfg.name)
    return rc


def _end_unfinished(cfg: RunConfig, run_id: int, rc: int, all_finished: bool) -> None:
    """The actor of one robot ends its run itself; if it never could (it failed to start,
    or was killed), the row must not keep saying "started" or "running". A fleet's run is
    every robot's, so `up` ends it."""
    from robolearn.store import Store
    from robolearn.store.runs import end_if_live

    status = "failed" if rc else "finished" if all_finished else "stopped"
    reason = ("" if cfg.fleet.robots and not rc else
              "its actor exited without ending the run; see the log of `robolearn up`")
    with Store.open(cfg.data_dir, cfg.database_url) as store:
        end_if_live(store, run_id, status, reason)


def _pick_run_to_continue(cfg: RunConfig) -> int | None:
    """The run `--continue` goes on with (None: a new one); says which on stdout."""
    from robolearn.store import Store
    from robolearn.store.runs import reap_dead_runs, run_to_continue

    if not cfg.actor.record:
        print("continuing nothing: actor.record is off", flush=True)
        return None
    with Store.open(cfg.data_dir, cfg.database_url) as store:
        reap_dead_runs(store)  # a SIGKILLed run is "died", not "running": it may go on
        run_id, what = run_to_continue(store, cfg.name, cfg.model_dump(mode="json"))
    if run_id is None:
        print(f"starting a new run: {what}", flush=True)
    else:
        print(f"continuing {what}: its learner checkpoint and episodes, new seeds "
              "(a fresh start: leave --continue out, or `make run FRESH=1`)", flush=True)
    return run_id


def own_run(cfg: RunConfig, locks: list[RobotLock], run_id: int | None) -> int | None:
    """Mark dead runs of this store, then create (or claim) this run's row with this process
    as its owner; the actor (every robot's, in a fleet) records into it. None when the actor
    records nothing.

    Raises:
        StoreError: `run_id` names no run.
    """
    if not cfg.actor.record:
        return run_id
    from robolearn.runlock import describe_owner
    from robolearn.store import Store
    from robolearn.store.runs import claim_run, create_owned_run, reap_dead_runs

    # This process owns the run; a learner's part holds no robot lock to say so.
    owner = locks[0].owner if locks else describe_owner(cfg.name)
    with Store.open(cfg.data_dir, cfg.database_url) as store:
        reap_dead_runs(store)
        if run_id is None:
            run_id = create_owned_run(store, cfg.name, cfg.model_dump(mode="json"),
                                      cfg.robot.kind, owner)
        else:
            claim_run(store, run_id, owner)
    for lock in locks:
        lock.update(dataclasses.replace(lock.owner, run_id=run_id))
    return run_id


def join_run(cfg: RunConfig, run_id: int | None) -> int | None:
    """The run a part without the learner records into: `run_id`, else the newest live run
    of this config's name. None when the actor records nothing.

    Raises:
        ConfigError: there is no such run (start the learner's part first).
    """
    if not cfg.actor.record:
        return run_id
    from robolearn.store import Store
    from robolearn.store.runs import LIVE_STATUSES

    with Store.open(cfg.data_dir, cfg.database_url) as store:
        runs = [r for r in store.list_runs() if r.name == cfg.name]
        if run_id is not None:
            if not any(r.id == run_id for r in runs):
                raise ConfigError(f"--run-id {run_id}: no run of {cfg.name!r} has this id")
            return run_id
        live = [r for r in runs if r.status in LIVE_STATUSES]
        if not live:
            raise ConfigError(f"no live run of {cfg.name!r} to join: start the part with the "
                              "learner first (`robolearn up CONFIG --role learner`), or give "
                              "--run-id")
        chosen = max(live, key=lambda r: r.id)
    print(f"joining run {chosen.id} ({cfg.name!r})", flush=True)
    return chosen.id


def wait_until_answering(url: str, alive: Callable[[], bool], stop: threading.Event,
                         timeout_s: float = 120.0) -> bool:
    """Wait until `url` answers HTTP. False if the service died, `stop` was set, or it did
    not answer within `timeout_s` (then it says so; the run goes on)."""
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout_s
    while alive() and not stop.is_set():
        try:
            urllib.request.urlopen(url + "/api/auth/me", timeout=1.0).close()
            return True
        except urllib.error.HTTPError:  # 401: it answers
            return True
        except OSError:
            if time.monotonic() > deadline:
                log.warning("the operator service at %s has not answered in %.0f s; it may "
                            "still be starting", url, timeout_s)
                return False
            stop.wait(0.2)
    return False


def check_port_free(host: str, port: int) -> None:
    """Refuse to start the run when the service's port is taken, before anything moves.

    Raises:
        ConfigError: the port is in use.
    """
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        # As the service binds (uvicorn sets it): connections of a service that just stopped
        # linger in TIME_WAIT on the port and must not count as it being held; on Linux a
        # listening socket still refuses the bind.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ConfigError(
                f"server: cannot bind {host}:{port} ({exc.strerror}); another service holds "
                "it: pick another with --set server.port=N, or --set server.enabled=false"
            ) from exc

