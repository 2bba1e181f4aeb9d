"""Where an episode's files live under the data directory, their locks, and fsync.

Layout under the data directory::

    episodes/<run_id>/<episode_id>.npz             (training arrays)
    episodes/<run_id>/<episode_id>_<camera>.mp4    (H.264, one per camera)
    episodes/<run_id>/<episode_id>.lock            (held while a writer lives)
    episodes/<run_id>/<name>.tmp                   (a file being written)
    episodes/<run_id>/quarantine/                  (unreadable episode files, kept aside)
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import time
from pathlib import Path

from robolearn.errors import StoreError

try:  # POSIX advisory locks; elsewhere recovery cannot tell live writers from dead ones.
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

EPISODES_DIRNAME = "episodes"
QUARANTINE_DIRNAME = "quarantine"
TEMP_SUFFIX = ".tmp"
LOCK_SUFFIX = ".lock"
# How long a new writer waits for a lock a recovery elsewhere may hold for a moment.
LOCK_WAIT_S = 5.0
_LEFTOVER_ID = re.compile(r"^(\d+)[._]")


def fsync_file(path: Path) -> None:
    """Flush a closed file's data to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    """Flush a folder's entries (renames into it) to disk."""
    if os.name != "posix":  # pragma: no cover - directories cannot be opened on Windows
        return
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temp_path(path: Path) -> Path:
    """Where `path` is written before it is renamed into place."""
    return path.with_name(path.name + TEMP_SUFFIX)


class EpisodeLock:
    """An exclusive flock on `<episode_id>.lock`, held while a writer is alive.

    The kernel releases it when the process dies, which is how recovery tells a crashed
    writer from a live one in another process.
    """

    def __init__(self, path: Path, fd: int | None) -> None:
        self.path = path
        self._fd = fd

    @classmethod
    def acquire(cls, path: Path, *, blocking: bool) -> EpisodeLock | None:
        """Lock `path` (creating it); None if another open file holds it and not blocking."""
        if fcntl is None:  # pragma: no cover - Windows
            return cls(path, None)
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            except BlockingIOError:
                os.close(fd)
                return None
            except BaseException:
                os.close(fd)
                raise
            # Someone may have unlinked the file between our open and flock (a finished
            # writer or a recovery cleaning up): a lock on a dead inode protects nothing.
            try:
                same = os.stat(path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                return cls(path, fd)
            os.close(fd)

    def release(self, *, unlink: bool) -> None:
        if unlink:
            # Unlink while still holding the lock, so nobody locks the old inode afterwards.
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


@dataclasses.dataclass(frozen=True)
class Layout:
    """The paths of every episode file under one data directory (an absolute path)."""

    data_dir: Path

    @property
    def episodes_dir(self) -> Path:
        return self.data_dir / EPISODES_DIRNAME

    def run_dir(self, run_id: int) -> Path:
        return self.episodes_dir / str(run_id)

    def lock_path(self, run_id: int, episode_id: int) -> Path:
        return self.run_dir(run_id) / f"{episode_id}{LOCK_SUFFIX}"

    def npz_path(self, run_id: int, episode_id: int) -> Path:
        return self.run_dir(run_id) / f"{episode_id}.npz"

    def video_path(self, run_id: int, episode_id: int, camera: str) -> Path:
        return self.run_dir(run_id) / f"{episode_id}_{camera}.mp4"

    def quarantine_dir(self, run_id: int) -> Path:
        return self.run_dir(run_id) / QUARANTINE_DIRNAME

    def relative(self, path: Path) -> str:
        """`path` relative to the data directory, as stored in the database."""
        return path.relative_to(self.data_dir).as_posix()

    def lock_new_episode(self, run_id: int, episode_id: int) -> EpisodeLock:
        """Lock a new episode's id, waiting briefly for a recovery that may hold it.

        Raises:
            StoreError: another process still holds it after LOCK_WAIT_S.
        """
        # A recovery in another process may hold a stale lock of this id for a moment while
        # it sweeps leftovers; anything longer means a live writer already owns the id.
        deadline = time.monotonic() + LOCK_WAIT_S
        while (
            lock := EpisodeLock.acquire(self.lock_path(run_id, episode_id), blocking=False)
        ) is None:
            if time.monotonic() > deadline:
                raise StoreError(
                    f"episode {episode_id} of run {run_id}: its lock file is held by another "
                    f"process after {LOCK_WAIT_S} s; is a writer of this id still running?"
                )
            time.sleep(0.01)
        return lock

    def remove_temp_files(self, run_id: int, episode_id: int) -> None:
        run_dir = self.run_dir(run_id)
        for pattern in (f"{episode_id}.*{TEMP_SUFFIX}", f"{episode_id}_*{TEMP_SUFFIX}"):
            for path in run_dir.glob(pattern):
                path.unlink(missing_ok=True)

    def leftovers(self) -> list[tuple[int, int]]:
        """(run id, episode id) of every episode that has a temp or lock file on disk."""
        found: list[tuple[int, int]] = []
        for run_dir in self.episodes_dir.iterdir():
            if not run_dir.is_dir() or not run_dir.name.isdigit():
                continue
            ids = {
                int(match.group(1))
                for path in run_dir.iterdir()
                if path.name.endswith((TEMP_SUFFIX, LOCK_SUFFIX))
                and (match := _LEFTOVER_ID.match(path.name))
            }
            found += [(int(run_dir.name), episode_id) for episode_id in sorted(ids)]
        return found
