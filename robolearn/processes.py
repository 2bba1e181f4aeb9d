"""Start and supervise the processes of a run on this machine.

Children run `python -m robolearn.cli.main ...` on a resolved copy of the config (overrides
applied), each in its own session so a terminal's Ctrl-C reaches only the supervisor, which
then stops them in order: the actor first (it closes its episode), then the drivers. Each
child also asks the kernel for SIGTERM when its parent dies, so a killed supervisor leaves no
orphan driver holding the robot.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
import zmq

from robolearn.config import RunConfig
from robolearn.config.fleet import robot_views
from robolearn.config.sockets import run_keys

if TYPE_CHECKING:
    from robolearn.actor.loop import EpisodeResult

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:  # not Linux: the supervisor's own cleanup still applies
        pass


RUN_FILES_DIRNAME = "run"
"""Under the data directory: the resolved configs of the runs started from it."""


def write_resolved_config(cfg: RunConfig, directory: Path | None = None) -> Path:
    """Write the validated config (overrides applied) to a YAML file the children read.

    The file goes to `<data_dir>/run/` (not the shared /tmp), named after this process's
    pid, so a start after a SIGKILL finds and removes the files of dead writers
    (`robolearn.runlock.remove_stale_configs`). Readable by this user only (mkstemp).
    """
    if directory is None:
        directory = Path(cfg.data_dir) / RUN_FILES_DIRNAME
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, path = tempfile.mkstemp(prefix=f"config-{os.getpid()}-{cfg.name}-", suffix=".yaml",
                                dir=directory)
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump(cfg.model_dump(mode="json"), f, sort_keys=False)
    return Path(path)


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]


class ProcessGroup:
    def __init__(self, cfg: RunConfig, *, log_level: str = "info",
                 robots: list[str | None] | None = None) -> None:
        """Args:
            robots: the robots whose drivers and actors this group starts, by fleet name
                (None for a run's one robot); None: every robot.
        """
        self.cfg = cfg
        self.log_level = log_level
        if not cfg.security.insecure:
            # Make a one-machine run's keys before any child starts, so no two race to
            # create them. A run across hosts uses the keys exported to this host: making
            # pairs for the identities whose secrets live elsewhere would replace their
            # public keys, and this host's processes would then trust no one else's.
            run_keys(cfg)
        self.config_path = write_resolved_config(cfg)
        # A fleet's robots each run their driver and actor on their own view of the config.
        self.robots: list[tuple[RunConfig, Path]] = [
            (view, write_resolved_config(view) if cfg.fleet.robots else self.config_path)
            for view in robot_views(cfg) if robots is None or view.robot_name in robots]
        self.children: list[Child] = []

    def _spawn(self, name: str, *args: str) -> Child:
        cmd = [sys.executable, "-m", "robolearn.cli.main", "--log-level", self.log_level,
               *args]
        proc = subprocess.Popen(cmd, start_new_session=True, preexec_fn=_die_with_parent)
        child = Child(name, proc)
        self.children.append(child)
        log.info("started %s (pid %d)", name, proc.pid)
        return child

    def start_drivers(self) -> None:
        """Every robot's driver and camera processes."""
        for view, path in self.robots:
            at = f"@{view.robot_name}" if view.robot_name is not None else ""
            self._spawn(f"driver:{view.robot.name}{at}", "driver", str(path))
            for cam in view.cameras:
                if cam.kind != "sim":  # sim cameras are served by the robot process
                    self._spawn(f"driver:{cam.name}{at}", "driver", str(path), "--camera",
                                cam.name)

    def start_file_servers(self) -> None:
        """Every robot's `robolearn files`: its host serves its episode videos to the
        service of a run across hosts."""
        for view, path in self.robots:
            at = f"@{view.robot_name}" if view.robot_name is not None else ""
            self._spawn(f"files{at}", "files", str(path))

    def start_learner(self, *extra: str, run_id: int | None = None) -> Child:
        """The learner; with `run_id` its metrics rows belong to that run."""
        run_args = ("--run-id", str(run_id)) if run_id is not None else ()
        return self._spawn("learner", "learner", str(self.config_path), *run_args, *extra)

    def start_actor(self, *extra: str, run_id: int | None = None) -> Child:
        """The actor (every robot's, in a fleet: the last is returned); with `run_id` it
        records into that existing run instead of a new one."""
        run_args = ("--run-id", str(run_id)) if run_id is not None else ()
        children = [self._spawn("actor" if view.robot_name is None
                                else f"actor@{view.robot_name}", "actor", str(path),
                                *run_args, *extra)
                    for view, path in self.robots]
        if not children:
            raise ValueError("start_actor: this group runs no robot")
        return children[-1]

    def start_server(self) -> Child:
        """The operator service (`robolearn serve`); it only reads the store and talks to
        the actor, so it starts last and is stopped first."""
        return self._spawn("server", "serve", str(self.config_path))

    def exited(self) -> list[tuple[str, int]]:
        return [(c.name, rc) for c in self.children if (rc := c.proc.poll()) is not None]

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM in reverse start order (actor before drivers), then SIGKILL stragglers."""
        for child in reversed(self.children):
            if child.proc.poll() is not None:
                # Ended before (reported then): a stopped run's processes are stopped again
                # when the service shuts down, and their old exit codes are no news.
                log.debug("%s had exited (%s)", child.name, child.proc.returncode)
                continue
            child.proc.send_signal(signal.SIGTERM)
            try:
                child.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                log.error("%s did not stop within %.0f s: killing it", child.name, timeout_s)
                child.proc.kill()
                child.proc.wait()
            log.info("%s exited (%s)", child.name, child.proc.returncode)
        for view, path in self.robots:
            if view.robot_name is not None:
                path.unlink(missing_ok=True)
        self.config_path.unlink(missing_ok=True)

    def wait_any(self, poll_s: float = 0.2) -> list[tuple[str, int]]:
        while not (done := self.exited()):
            time.sleep(poll_s)
        return done


def use_private_addresses(raw: dict[str, Any], sock_dir: Path) -> None:
    """Point a raw config's sockets at ipc:// files in `sock_dir`, so a one-off job (demo
    collection, evaluation) never collides with a run on the same machine. A one-off job
    runs one sim robot: a fleet config's robots are dropped, its template kept."""
    raw.pop("fleet", None)
    raw.pop("robot_name", None)
    raw.setdefault("robot", {}).update({
        "state_address": f"ipc://{sock_dir}/state", "command_address": f"ipc://{sock_dir}/cmd",
        "frames_address": f"ipc://{sock_dir}/frames",
    })
    actor = raw.setdefault("actor", {})
    actor["telemetry_address"] = f"ipc://{sock_dir}/telemetry"
    actor["control_address"] = f"ipc://{sock_dir}/control"
    actor["files_address"] = f"ipc://{sock_dir}/files"
    learner = raw.setdefault("learner", {})
    learner["transitions_address"] = f"ipc://{sock_dir}/transitions"
    learner["weights_address"] = f"ipc://{sock_dir}/weights"


def run_episodes_on_sim(
    cfg: RunConfig,
    episodes: int,
    stop: threading.Event,
    on_episode: Callable[[EpisodeResult], None],
    *,
    is_demo: bool = False,
    log_level: str = "warning",
) -> None:
    """Start the config's drivers as processes, run an in-process actor for up to `episodes`
    episodes (recording into the config's store), then stop everything."""
    from robolearn.actor.loop import Actor
    from robolearn.store import Store

    group = ProcessGroup(cfg, log_level=log_level)
    ctx = zmq.Context()
    try:
        group.start_drivers()
        with Store.open(cfg.data_dir, cfg.database_url) as store:
            actor = Actor(cfg, ctx, store=store, is_demo=is_demo, on_episode=on_episode)
            try:
                actor.run(stop, episodes=episodes)
            finally:
                actor.close()
    finally:
        ctx.term()
        group.stop()
