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
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from robolearn.config import OpenCVCameraConfig, RunConfig

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:  # not Linux: the supervisor's own cleanup still applies
        pass


def write_resolved_config(cfg: RunConfig, directory: Path | None = None) -> Path:
    """Write the validated config (overrides applied) to a YAML file the children read."""
    fd, path = tempfile.mkstemp(prefix=f"robolearn-{cfg.name}-", suffix=".yaml",
                                dir=directory)
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump(cfg.model_dump(mode="json"), f, sort_keys=False)
    return Path(path)


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]


class ProcessGroup:
    def __init__(self, cfg: RunConfig, *, log_level: str = "info") -> None:
        self.cfg = cfg
        self.log_level = log_level
        self.config_path = write_resolved_config(cfg)
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
        self._spawn(f"driver:{self.cfg.robot.name}", "driver", str(self.config_path))
        for cam in self.cfg.cameras:
            if isinstance(cam, OpenCVCameraConfig):
                self._spawn(f"driver:{cam.name}", "driver", str(self.config_path),
                            "--camera", cam.name)

    def start_learner(self, *extra: str) -> Child:
        return self._spawn("learner", "learner", str(self.config_path), *extra)

    def start_actor(self, *extra: str) -> Child:
        return self._spawn("actor", "actor", str(self.config_path), *extra)

    def exited(self) -> list[tuple[str, int]]:
        return [(c.name, rc) for c in self.children if (rc := c.proc.poll()) is not None]

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM in reverse start order (actor before drivers), then SIGKILL stragglers."""
        for child in reversed(self.children):
            if child.proc.poll() is None:
                child.proc.send_signal(signal.SIGTERM)
                try:
                    child.proc.wait(timeout=timeout_s)
                except subprocess.TimeoutExpired:
                    log.error("%s did not stop within %.0f s: killing it", child.name, timeout_s)
                    child.proc.kill()
                    child.proc.wait()
            log.info("%s exited (%s)", child.name, child.proc.returncode)
        self.config_path.unlink(missing_ok=True)

    def wait_any(self, poll_s: float = 0.2) -> list[tuple[str, int]]:
        while not (done := self.exited()):
            time.sleep(poll_s)
        return done
