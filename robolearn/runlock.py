"""One run per robot: an exclusive lock on a file keyed by the robot's command address.

Whoever starts a run's processes (`robolearn up`, or the operator service's supervisor)
takes the robot's lock first and holds it for as long as the run's processes live. The lock
is a kernel `flock`, so it is released when its holder exits, however it exits (SIGKILL
included); nothing has to clean it up. The file also says who holds it (run name and id,
pid, host, the process's start time, the config), so a second start can name the run that
holds the robot, and the next holder can tell that the previous one died.

Lock files live in one directory per machine (`ROBOLEARN_LOCK_DIR`, default
`<tmp>/robolearn-locks`), not under a run's data directory: two runs with different data
directories still drive the same arm.

Example::

    with RobotLock.acquire(cfg.robot.command_address, owner=describe_owner(cfg.name)):
        ...  # start drivers, actor
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import socket
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil

from robolearn.errors import RobolearnError

log = logging.getLogger(__name__)

LOCK_DIR_ENV = "ROBOLEARN_LOCK_DIR"


class RobotBusy(RobolearnError):
    """Another run holds the robot's lock. `holder` says who, when known."""

    def __init__(self, message: str, holder: LockOwner | None) -> None:
        super().__init__(message)
        self.holder = holder


@dataclass(frozen=True)
class LockOwner:
    """Who holds (or held) a robot: enough to name it and to tell whether it still lives."""

    pid: int
    host: str
    process_started_at: float
    run_name: str
    run_id: int | None = None
    via: str = "up"
    since: float = 0.0

    def describe(self) -> str:
        run = f"run {self.run_id} ({self.run_name!r})" if self.run_id else f"run {self.run_name!r}"
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.since))
        return (f"{run}, started by `robolearn {self.via}` (pid {self.pid} on {self.host}) "
                f"at {started}")

    def alive(self) -> bool:
        """Whether the owning process still runs (only decidable on its own host; a process
        on another host counts as alive, so nothing of another machine is ever reaped)."""
        return process_alive(self.host, self.pid, self.process_started_at)


def process_started_at(pid: int) -> float:
    """The kernel's start time of `pid` (seconds since the epoch); pairs with the pid so a
    recycled pid is not mistaken for the original process."""
    return psutil.Process(pid).create_time()


def process_alive(host: str, pid: int, started_at: float) -> bool:
    """Whether the process `pid` that started at `started_at` on `host` still runs."""
    if host != socket.gethostname():
        return True
    try:
        # create_time is rounded differently across reads on some kernels: allow 1 s.
        return abs(psutil.Process(pid).create_time() - started_at) < 1.0
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return False
    except psutil.AccessDenied:
        return True


def describe_owner(run_name: str, *, run_id: int | None = None, via: str = "up") -> LockOwner:
    """This process as the owner of a run."""
    pid = os.getpid()
    return LockOwner(pid=pid, host=socket.gethostname(), process_started_at=process_started_at(pid),
                     run_name=run_name, run_id=run_id, via=via, since=time.time())


def lock_dir() -> Path:
    return Path(os.environ.get(LOCK_DIR_ENV) or Path(tempfile.gettempdir()) / "robolearn-locks")


def robot_key(command_address: str) -> str:
    """A stable key of the robot behind a command address: `tcp://localhost:5552` and
    `tcp://127.0.0.1:5552` are the same arm; an ipc path is resolved."""
    address = command_address.strip()
    scheme, _, rest = address.partition("://")
    if scheme == "ipc":
        rest = str(Path(rest).resolve())
    elif scheme == "tcp":
        host, _, port = rest.rpartition(":")
        if host in ("localhost", "*", "0.0.0.0", "[::1]", "::1"):
            host = "127.0.0.1"
        rest = f"{host}:{port}"
    return f"{scheme}://{rest}"


def lock_path(command_address: str) -> Path:
    digest = hashlib.sha256(robot_key(command_address).encode()).hexdigest()[:20]
    return lock_dir() / f"robot-{digest}.lock"


def read_owner(path: Path) -> LockOwner | None:
    """The owner written in a lock file; None when empty or unreadable."""
    try:
        data: dict[str, Any] = json.loads(path.read_text() or "null") or {}
        return LockOwner(**{k: data[k] for k in LockOwner.__dataclass_fields__ if k in data})
    except (OSError, ValueError, TypeError):
        return None


class RobotLock:
    """A held robot lock; release() (or leaving the `with`) lets the next run take it."""

    def __init__(self, path: Path, fd: int, owner: LockOwner, previous: LockOwner | None,
                 command_address: str) -> None:
        self.path = path
        self.owner = owner
        self.command_address = command_address
        self.previous = previous
        """Who held the lock before, as its file said; a run of a holder that died (never
        released cleanly) may still be marked running in its store."""
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, command_address: str, owner: LockOwner) -> RobotLock:
        """Take the robot's lock without waiting.

        Raises:
            RobotBusy: another live run holds it (the message names that run).
        """
        path = lock_path(command_address)
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):  # shared by every user of this machine
            os.chmod(path.parent, 0o1777)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except PermissionError as exc:
            raise RobotBusy(
                f"robot at {command_address}: cannot open its lock file {path} ({exc}); "
                f"another user's run made it: ask them, or point {LOCK_DIR_ENV} at a "
                "directory all robot users can write", read_owner(path)) from exc
        # Another user's run of the same arm must be able to open it to lock it too (the
        # umask would narrow the mode given to open). Its content only informs; the flock
        # itself cannot be taken from its holder.
        with contextlib.suppress(OSError):
            os.fchmod(fd, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            holder = read_owner(path)
            who = holder.describe() if holder else "another run (its lock file names nobody)"
            raise RobotBusy(
                f"robot at {command_address} is in use by {who}; stop that run first (Ctrl-C "
                "on its `robolearn up`, or Stop on the service's Runs page): one robot, one "
                "run at a time", holder) from exc
        previous = read_owner(path)
        lock = cls(path, fd, owner, previous, command_address)
        lock.update(owner)
        log.debug("took the lock of robot %s (%s)", command_address, path)
        return lock

    def update(self, owner: LockOwner) -> None:
        """Rewrite who holds the lock (e.g. once the run has its id)."""
        if self._fd is None:
            raise RobolearnError(f"robot lock {self.path}: update() after release()")
        self.owner = owner
        data = json.dumps({**asdict(owner), "command_address": self.command_address}).encode()
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, data, 0)

    def release(self) -> None:
        """Clear the owner and unlock (idempotent). The file stays: unlinking it would race
        with a process that opened it and is about to lock it."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)
        finally:
            os.close(fd)  # closing the last descriptor releases the flock

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> RobotLock:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.release()


def remove_stale_configs(directory: Path) -> list[Path]:
    """Delete resolved run configs (`config-<pid>-*.yaml`, see
    `robolearn.processes.write_resolved_config`) whose writer is gone: a SIGKILLed
    `robolearn up` never ran its cleanup.

    A writer counts as gone when no process has its pid, or the process with that pid
    started after the file was written (the pid was recycled).

    Returns:
        The files removed.
    """
    removed: list[Path] = []
    if not directory.is_dir():
        return removed
    for path in directory.glob("config-*.yaml"):
        pid_text = path.name.split("-", 2)[1]
        if not pid_text.isdigit():
            continue
        try:
            written = path.stat().st_mtime
            alive = process_started_at(int(pid_text)) <= written + 1.0
        except psutil.NoSuchProcess:
            alive = False
        except (psutil.AccessDenied, OSError):
            alive = True
        if alive:
            continue
        try:
            path.unlink()
        except OSError as exc:
            log.warning("could not remove the stale run config %s: %s", path, exc)
            continue
        log.info("removed %s, left by a run whose process (pid %s) is gone", path, pid_text)
        removed.append(path)
    return removed
