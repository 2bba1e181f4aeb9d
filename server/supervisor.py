"""Runs started from the API: each is a supervised process group (drivers, learner, actor)
built by robolearn.processes, the same code `robolearn up` uses. The service never talks
to a driver itself; it only starts and stops processes.

One run per robot, across processes too: a run holds its robot's lock (robolearn.runlock)
from `reserve` until `stop`, so neither a second API run nor a `robolearn up` of the same arm
can start meanwhile (and this service cannot start one while an `up` holds the arm)."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor

from robolearn.config import RunConfig
from robolearn.processes import ProcessGroup
from robolearn.runlock import LockOwner, RobotLock, describe_owner

log = logging.getLogger(__name__)


class RunSupervisor:
    """At most one API-started run at a time: one robot, one control loop."""

    def __init__(self, log_level: str = "info") -> None:
        self._groups: dict[int, ProcessGroup] = {}
        self._locks: dict[int, RobotLock] = {}
        self._lock = threading.Lock()
        self._log_level = log_level
        # Children ask for SIGTERM when their parent dies (PR_SET_PDEATHSIG), and Linux means
        # the *thread* that forked them: a request's worker thread is retired when idle, which
        # would kill a run seconds after it started. Children are forked from this one
        # long-lived thread instead.
        self._spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="run-spawner")

    def processes(self, run_id: int) -> dict[str, str]:
        with self._lock:
            group = self._groups.get(run_id)
        if group is None:
            return {}
        return {c.name: ("running" if (rc := c.proc.poll()) is None else f"exited({rc})")
                for c in group.children}

    def died(self, run_id: int) -> bool:
        """Whether this service started the run and one of its processes has exited since
        (the run cannot be recording as configured, whatever its row says)."""
        with self._lock:
            group = self._groups.get(run_id)
        return group is not None and bool(group.exited())

    def active_run(self) -> int | None:
        with self._lock:
            for run_id, group in self._groups.items():
                if any(c.proc.poll() is None for c in group.children):
                    return run_id
        return None

    def reserve(self, run_id: int, cfg: RunConfig) -> LockOwner:
        """Take the robot's lock for run `run_id` (before anything is written or spawned).

        Returns:
            This service process as the run's owner (to record in the run row).

        Raises:
            RobotBusy: another run, of this service or any other process, holds the robot.
        """
        with self._lock:
            held = self._locks.get(run_id)
            if held is not None:
                return held.owner
            lock = RobotLock.acquire(cfg.robot.command_address,
                                     describe_owner(cfg.name, run_id=run_id, via="serve"))
            self._locks[run_id] = lock
            return lock.owner

    def release(self, run_id: int) -> None:
        """Let the robot go (after the run's processes stopped, or its start failed)."""
        with self._lock:
            lock = self._locks.pop(run_id, None)
        if lock is not None:
            lock.release()

    def start(self, run_id: int, cfg: RunConfig) -> dict[str, str]:
        """Spawn the run's drivers, learner (if enabled) and actor; the actor records into
        the existing run row `run_id`, so one API run is one row. Takes the robot's lock
        first unless `reserve` did; a failed start releases it."""
        self.reserve(run_id, cfg)
        try:
            self._spawner.submit(self._start, run_id, cfg).result()
        except BaseException:
            self.release(run_id)
            raise
        return self.processes(run_id)

    def _start(self, run_id: int, cfg: RunConfig) -> None:
        with self._lock:
            group = ProcessGroup(cfg, log_level=self._log_level)
            self._groups[run_id] = group
        try:
            group.start_drivers()
            if cfg.learner.enabled:
                group.start_learner(run_id=run_id)
            group.start_actor(run_id=run_id)
        except BaseException:
            group.stop()
            raise
        log.info("run %d started from the API (%d processes)", run_id, len(group.children))

    def stop(self, run_id: int) -> dict[str, str]:
        """Stop the run's processes (actor first, so it closes its episode)."""
        with self._lock:
            group = self._groups.get(run_id)
        try:
            if group is not None:
                group.stop()
        finally:
            self.release(run_id)
        return self.processes(run_id)

    def stop_all(self) -> None:
        with self._lock:
            groups = list(self._groups.values())
        try:
            for group in groups:
                group.stop()
        finally:
            with self._lock:
                run_ids = list(self._locks)
            for run_id in run_ids:
                self.release(run_id)

    def close(self) -> None:
        """Stop every run, then the spawner thread (its exit would SIGTERM any child left)."""
        self.stop_all()
        self._spawner.shutdown(wait=True)
