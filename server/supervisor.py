"""Runs started from the API: each is a supervised process group (drivers, learner, actor)
built by robolearn.cli.processes, the same code `robolearn up` uses. The service never talks
to a driver itself; it only starts and stops processes."""

from __future__ import annotations

import logging
import threading

from robolearn.cli.processes import ProcessGroup
from robolearn.config import RunConfig

log = logging.getLogger(__name__)


class RunSupervisor:
    """At most one API-started run at a time: one robot, one control loop."""

    def __init__(self, log_level: str = "info") -> None:
        self._groups: dict[int, ProcessGroup] = {}
        self._lock = threading.Lock()
        self._log_level = log_level

    def processes(self, run_id: int) -> dict[str, str]:
        with self._lock:
            group = self._groups.get(run_id)
        if group is None:
            return {}
        return {c.name: ("running" if (rc := c.proc.poll()) is None else f"exited({rc})")
                for c in group.children}

    def active_run(self) -> int | None:
        with self._lock:
            for run_id, group in self._groups.items():
                if any(c.proc.poll() is None for c in group.children):
                    return run_id
        return None

    def start(self, run_id: int, cfg: RunConfig) -> dict[str, str]:
        """Spawn the run's drivers, learner (if enabled) and actor."""
        with self._lock:
            group = ProcessGroup(cfg, log_level=self._log_level)
            self._groups[run_id] = group
        try:
            group.start_drivers()
            if cfg.learner.enabled:
                group.start_learner()
            group.start_actor()
        except BaseException:
            group.stop()
            raise
        log.info("run %d started from the API (%d processes)", run_id, len(group.children))
        return self.processes(run_id)

    def stop(self, run_id: int) -> dict[str, str]:
        """Stop the run's processes (actor first, so it closes its episode)."""
        with self._lock:
            group = self._groups.get(run_id)
        if group is not None:
            group.stop()
        return self.processes(run_id)

    def stop_all(self) -> None:
        with self._lock:
            groups = list(self._groups.values())
        for group in groups:
            group.stop()
