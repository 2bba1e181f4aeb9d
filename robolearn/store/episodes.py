"""The episode store: runs, atomically written episodes, crash recovery.

Layout under the data directory::

    robolearn.db                         (default SQLite database)
    episodes/<run_id>/<episode_id>.npz   (training arrays, np.savez_compressed)
    episodes/<run_id>/<episode_id>_<camera>.mp4   (H.264, one per camera)

Write protocol of one episode (so a crash never leaves a half episode that looks whole):

1. `begin_episode` inserts the row with status "recording" and holds an exclusive lock
   on `<episode_id>.lock` for as long as the writer lives (released by the kernel when the
   process dies, which is how `recover()` tells a crashed writer from a live one in
   another process).
2. `add_step` only buffers in memory; the control loop never waits on disk or database.
3. `finish` writes every file to `<name>.tmp` in the same folder, fsyncs it, renames it
   into place and fsyncs the folder; only then ONE transaction inserts the step rows and
   flips the episode to "complete". A row that says "complete" therefore always has its
   files; any failure leaves the row "aborted" or "incomplete" and no temp files.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
import math
import numbers
import os
import re
import threading
import time
import weakref
import zipfile
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO, Self

import numpy as np
from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from robolearn.errors import EpisodeCorrupt, StoreError
from robolearn.store.db import default_url, make_engine, upgrade
from robolearn.store.models import EPISODE_OUTCOMES, AuditEntry, Episode, Run, Step
from robolearn.store.video import encode_mp4

try:  # POSIX advisory locks; elsewhere recover() cannot tell live writers from dead ones.
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

EPISODES_DIRNAME = "episodes"
QUARANTINE_DIRNAME = "quarantine"  # episodes/<run_id>/quarantine/: unreadable episode files
TEMP_SUFFIX = ".tmp"
LOCK_SUFFIX = ".lock"
DEFAULT_FPS = 10.0
LOCK_WAIT_S = 5.0
# Per-step scalars with their own (queryable) column in `steps`; the rest go to `scalars`.
COLUMN_SCALARS = ("success_prob", "q_value")
_CAMERA_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_INT64_MAX = 2**63 - 1

NpzWriter = Callable[[BinaryIO, Mapping[str, np.ndarray]], None]
"""Writes the episode's arrays to an open binary file (default: np.savez_compressed)."""
VideoWriter = Callable[[Path, Sequence[np.ndarray], float], None]
"""Writes one camera's frames, uint8 [H, W, 3], at an fps to an MP4 file path."""


def write_npz(file: BinaryIO, arrays: Mapping[str, np.ndarray]) -> None:
    """The default NpzWriter."""
    np.savez_compressed(file, **arrays)


@dataclasses.dataclass(frozen=True)
class RunRecord:
    id: int
    name: str
    config: dict[str, Any]
    kind: str
    status: str
    started_at: dt.datetime
    ended_at: dt.datetime | None


@dataclasses.dataclass(frozen=True)
class EpisodeRecord:
    """A read-only copy of one `episodes` row (times are timezone-aware UTC)."""

    id: int
    run_id: int
    task: str
    direction: str | None
    seed: int | None
    policy: str
    is_demo: bool
    status: str
    outcome: str | None
    end_reason: str
    num_steps: int
    npz_path: str | None
    cameras: tuple[str, ...]
    fps: float
    created_at: dt.datetime
    finished_at: dt.datetime | None
    source_episode_id: int | None
    has_intervention: bool


@dataclasses.dataclass(frozen=True)
class EpisodeData:
    """A complete episode read back from disk.

    `arrays` holds `images_<camera>` [T+1, H, W, 3] uint8, `proprio` [T+1, P] float32,
    `action` [T, A] float32, `reward`/`success`/`intervention`/`stamp_ns` [T]. Index t of
    the images and proprio is the observation the action at index t was taken from; index T
    is the final observation. Optional: `state` [T+1, Q] (world state) and `joint_pos`
    [T+1, J] (measured arm joint positions, radians), when the recorder gave them.
    """

    record: EpisodeRecord
    arrays: dict[str, np.ndarray]

    @property
    def num_steps(self) -> int:
        return self.record.num_steps

    def images(self, camera: str) -> np.ndarray:
        """[T+1, H, W, 3] uint8 frames of one camera."""
        try:
            return self.arrays[f"images_{camera}"]
        except KeyError as exc:
            raise StoreError(
                f"episode {self.record.id}: no camera {camera!r}; "
                f"it has {list(self.record.cameras)}"
            ) from exc


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    # SQLite hands back naive datetimes; every time the store writes is UTC.
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value


def _episode_record(row: Episode) -> EpisodeRecord:
    return EpisodeRecord(
        id=row.id,
        run_id=row.run_id,
        task=row.task,
        direction=row.direction,
        seed=row.seed,
        policy=row.policy,
        is_demo=row.is_demo,
        status=row.status,
        outcome=row.outcome,
        end_reason=row.end_reason,
        num_steps=row.num_steps,
        npz_path=row.npz_path,
        cameras=tuple(row.cameras),
        fps=row.fps,
        created_at=_aware(row.created_at),
        finished_at=_aware(row.finished_at),
        source_episode_id=row.source_episode_id,
        has_intervention=row.has_intervention,
    )


def _run_record(row: Run) -> RunRecord:
    return RunRecord(
        id=row.id,
        name=row.name,
        config=dict(row.config),
        kind=row.kind,
        status=row.status,
        started_at=_aware(row.started_at),
        ended_at=_aware(row.ended_at),
    )


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    if os.name != "posix":  # pragma: no cover - directories cannot be opened on Windows
        return
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _EpisodeLock:
    """An exclusive flock on `<episode_id>.lock`, held while a writer is alive."""

    def __init__(self, path: Path, fd: int | None) -> None:
        self.path = path
        self._fd = fd

    @classmethod
    def acquire(cls, path: Path, *, blocking: bool) -> _EpisodeLock | None:
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


class Store:
    """Runs, episodes and their files under one data directory plus one database.

    Safe for one episode-writer thread plus any number of reader threads: every call
    uses its own short session. Create with `Store.open(...)`.
    """

    def __init__(
        self,
        data_dir: Path,
        database_url: str,
        *,
        npz_writer: NpzWriter = write_npz,
        video_writer: VideoWriter = encode_mp4,
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.database_url = database_url
        self.engine = make_engine(database_url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._npz_writer = npz_writer
        self._video_writer = video_writer
        self._writers: weakref.WeakSet[EpisodeWriter] = weakref.WeakSet()
        self._writers_lock = threading.Lock()
        self._closed = False

    @classmethod
    def open(
        cls,
        data_dir: Path,
        database_url: str | None = None,
        *,
        npz_writer: NpzWriter | None = None,
        video_writer: VideoWriter | None = None,
    ) -> Store:
        """Open (creating if needed) the store, migrate the database, recover from crashes.

        Args:
            data_dir: folder for the episode files (and the default SQLite database).
            database_url: SQLAlchemy URL; None means `sqlite:///<data_dir>/robolearn.db`.
            npz_writer, video_writer: replace the file writers (tests inject failures).

        Raises:
            StoreError: the folder cannot be created or the migration failed.
        """
        data_dir = Path(data_dir)
        try:
            (data_dir / EPISODES_DIRNAME).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"store at {data_dir}: cannot create the data folder ({exc}); "
                "check the path and its permissions"
            ) from exc
        url = database_url or default_url(data_dir)
        upgrade(url)
        store = cls(
            data_dir,
            url,
            npz_writer=npz_writer or write_npz,
            video_writer=video_writer or encode_mp4,
        )
        try:
            store.recover()
        except BaseException:
            store.close()
            raise
        return store

    def close(self) -> None:
        """Abort writers still open, then release the database connections."""
        if self._closed:
            return
        with self._writers_lock:
            writers = list(self._writers)
        for writer in writers:
            writer.abort("store closed before the episode finished")
        self._closed = True
        self.engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def session(self) -> Session:
        """A new ORM session for code that works on the other tables (use with `with`)."""
        self._check_open()
        return self._sessions()

    # -- internals -------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"store at {self.data_dir}: used after close(); open a new one")

    @contextlib.contextmanager
    def _transaction(self, what: str) -> Iterator[Session]:
        self._check_open()
        try:
            with self._sessions.begin() as session:
                yield session
        except SQLAlchemyError as exc:
            raise StoreError(
                f"store at {self.data_dir}: {what} failed in the database ({exc}); "
                "check the database is reachable and writable"
            ) from exc

    def _run_dir(self, run_id: int) -> Path:
        return self.data_dir / EPISODES_DIRNAME / str(run_id)

    def _lock_path(self, run_id: int, episode_id: int) -> Path:
        return self._run_dir(run_id) / f"{episode_id}{LOCK_SUFFIX}"

    def _register(self, writer: EpisodeWriter) -> None:
        with self._writers_lock:
            self._writers.add(writer)

    def _unregister(self, writer: EpisodeWriter) -> None:
        with self._writers_lock:
            self._writers.discard(writer)

    # -- recovery ----------------------------------------------------------------------

    def recover(self) -> int:
        """Close out episodes whose writer died; delete leftover temp and lock files.

        An episode still "recording" whose lock no live process holds becomes "incomplete".
        Episodes of live writers (this or another process) and complete episodes are never
        touched.

        Returns:
            How many episodes were marked incomplete.
        """
        try:
            return self._recover()
        except OSError as exc:
            raise StoreError(
                f"store at {self.data_dir}: recovery could not clean the episode folders "
                f"({exc}); check the folder's permissions and free space"
            ) from exc

    def _recover(self) -> int:
        with self._transaction("listing recording episodes") as session:
            recording = session.execute(
                select(Episode.id, Episode.run_id).where(Episode.status == "recording")
            ).all()
        fixed = 0
        for episode_id, run_id in recording:
            self._run_dir(run_id).mkdir(parents=True, exist_ok=True)
            lock = _EpisodeLock.acquire(self._lock_path(run_id, episode_id), blocking=False)
            if lock is None:
                continue  # a live writer holds it
            try:
                self._remove_temp_files(run_id, episode_id)
                with self._transaction(f"recovering episode {episode_id}") as session:
                    result = session.execute(
                        update(Episode)
                        .where(Episode.id == episode_id, Episode.status == "recording")
                        .values(
                            status="incomplete",
                            end_reason="recovered: the writer stopped before finish()",
                            finished_at=_utcnow(),
                        )
                    )
                    fixed += result.rowcount
            finally:
                lock.release(unlink=True)
        self._sweep_leftovers()
        if fixed:
            log.warning(
                "store at %s: %d episode(s) left recording by a stopped writer marked incomplete",
                self.data_dir,
                fixed,
            )
        return fixed

    def _remove_temp_files(self, run_id: int, episode_id: int) -> None:
        run_dir = self._run_dir(run_id)
        for pattern in (f"{episode_id}.*{TEMP_SUFFIX}", f"{episode_id}_*{TEMP_SUFFIX}"):
            for path in run_dir.glob(pattern):
                path.unlink(missing_ok=True)

    def _sweep_leftovers(self) -> None:
        """Temp and lock files whose episode no live writer holds (e.g. its row rolled back)."""
        episodes_dir = self.data_dir / EPISODES_DIRNAME
        for run_dir in episodes_dir.iterdir():
            if not run_dir.is_dir() or not run_dir.name.isdigit():
                continue
            names = [p.name for p in run_dir.iterdir()]
            leftover_ids = {
                int(match.group(1))
                for name in names
                if (name.endswith((TEMP_SUFFIX, LOCK_SUFFIX)))
                and (match := re.match(r"^(\d+)[._]", name))
            }
            for episode_id in sorted(leftover_ids):
                lock = _EpisodeLock.acquire(run_dir / f"{episode_id}{LOCK_SUFFIX}", blocking=False)
                if lock is None:
                    continue
                try:
                    self._remove_temp_files(int(run_dir.name), episode_id)
                finally:
                    lock.release(unlink=True)

    # -- runs ----------------------------------------------------------------------------

    def create_run(self, name: str, config: dict, kind: str = "sim") -> int:
        """Insert a run with status "running"; returns its id."""
        with self._transaction(f"creating run {name!r}") as session:
            run = Run(name=name, config=config, kind=kind, status="running")
            session.add(run)
            session.flush()
            return run.id

    def mark_running(self, run_id: int) -> RunRecord:
        """Set an existing run (one registered by the service, or resumed) to "running".

        Raises:
            StoreError: no run has this id.
        """
        with self._transaction(f"marking run {run_id} running") as session:
            run = session.get(Run, run_id)
            if run is None:
                raise StoreError(f"run {run_id}: no such run; create it first (POST /api/runs "
                                 "or create_run()) or leave the run id out")
            run.status = "running"
            run.ended_at = None
            session.flush()
            return _run_record(run)

    def end_run(self, run_id: int, status: str) -> None:
        """Set the run's final status ("finished", "failed", "stopped", ...) and end time."""
        if not status or status == "running":
            raise StoreError(
                f"run {run_id}: end_run() needs a final status such as 'finished' or "
                f"'failed', got {status!r}"
            )
        with self._transaction(f"ending run {run_id}") as session:
            run = session.get(Run, run_id)
            if run is None:
                raise StoreError(f"run {run_id}: no such run; create it with create_run()")
            run.status = status
            run.ended_at = _utcnow()

    def get_run(self, run_id: int) -> RunRecord:
        with self._transaction(f"reading run {run_id}") as session:
            run = session.get(Run, run_id)
            if run is None:
                raise StoreError(f"run {run_id}: no such run")
            return _run_record(run)

    def list_runs(self) -> list[RunRecord]:
        """All runs, oldest first."""
        with self._transaction("listing runs") as session:
            return [_run_record(r) for r in session.scalars(select(Run).order_by(Run.id))]

    # -- episodes ------------------------------------------------------------------------

    def begin_episode(
        self,
        run_id: int,
        task: str,
        cameras: list[str],
        *,
        seed: int | None = None,
        policy: str = "",
        is_demo: bool = False,
        direction: str | None = None,
        source_episode_id: int | None = None,
        fps: float = DEFAULT_FPS,
    ) -> EpisodeWriter:
        """Start recording an episode: the row exists (status "recording") on return.

        Args:
            cameras: names of the cameras whose frames every step carries; letters, digits,
                "_" and "-" (they become file names).
            fps: playback rate of the MP4s.

        Raises:
            StoreError: unknown run or source episode, bad camera names, database failure.
        """
        cameras = list(cameras)
        bad = [c for c in cameras if not isinstance(c, str) or not _CAMERA_NAME.match(c)]
        if bad or len(set(cameras)) != len(cameras):
            raise StoreError(
                f"run {run_id}, task {task!r}: camera names must be unique and made of letters, "
                f"digits, '_' or '-' (at most 64); got {cameras!r}"
            )
        if not (isinstance(fps, numbers.Real) and math.isfinite(fps) and fps > 0):
            raise StoreError(f"run {run_id}, task {task!r}: fps must be > 0, got {fps!r}")
        run_dir = self._run_dir(run_id)
        with self._transaction(f"beginning an episode of run {run_id}") as session:
            if session.get(Run, run_id) is None:
                raise StoreError(f"run {run_id}: no such run; create it with create_run()")
            if source_episode_id is not None and session.get(Episode, source_episode_id) is None:
                raise StoreError(f"run {run_id}: source episode {source_episode_id} does not exist")
            row = Episode(
                run_id=run_id,
                task=task,
                direction=direction,
                seed=seed,
                policy=policy,
                is_demo=is_demo,
                status="recording",
                cameras=cameras,
                fps=float(fps),
                source_episode_id=source_episode_id,
            )
            session.add(row)
            session.flush()
            # Lock before the row becomes visible, so recover() elsewhere never sees a
            # recording row without its live lock.
            try:
                run_dir.mkdir(parents=True, exist_ok=True)
                lock = self._lock_new_episode(run_id, row.id)
            except OSError as exc:
                raise StoreError(
                    f"run {run_id}: cannot create episode files in {run_dir} ({exc}); "
                    "check free space and permissions"
                ) from exc
            record = _episode_record(row)
        writer = EpisodeWriter(self, record, lock)
        self._register(writer)
        log.debug("episode %d of run %d: recording", record.id, run_id)
        return writer

    def _lock_new_episode(self, run_id: int, episode_id: int) -> _EpisodeLock:
        # recover() in another process may hold a stale lock of this id for a moment while
        # it sweeps leftovers; anything longer means a live writer already owns the id.
        deadline = time.monotonic() + LOCK_WAIT_S
        while (
            lock := _EpisodeLock.acquire(self._lock_path(run_id, episode_id), blocking=False)
        ) is None:
            if time.monotonic() > deadline:
                raise StoreError(
                    f"episode {episode_id} of run {run_id}: its lock file is held by another "
                    f"process after {LOCK_WAIT_S} s; is a writer of this id still running?"
                )
            time.sleep(0.01)
        return lock

    def get_episode(self, episode_id: int) -> EpisodeRecord:
        """Raises StoreError if there is no such episode."""
        with self._transaction(f"reading episode {episode_id}") as session:
            row = session.get(Episode, episode_id)
            if row is None:
                raise StoreError(f"episode {episode_id}: no such episode")
            return _episode_record(row)

    def list_episodes(
        self,
        run_id: int | None = None,
        task: str | None = None,
        status: str | None = "complete",
        is_demo: bool | None = None,
        limit: int | None = None,
    ) -> list[EpisodeRecord]:
        """Episodes matching every filter given (None = any), oldest first."""
        query = select(Episode).order_by(Episode.id)
        if run_id is not None:
            query = query.where(Episode.run_id == run_id)
        if task is not None:
            query = query.where(Episode.task == task)
        if status is not None:
            query = query.where(Episode.status == status)
        if is_demo is not None:
            query = query.where(Episode.is_demo == is_demo)
        if limit is not None:
            query = query.limit(limit)
        with self._transaction("listing episodes") as session:
            return [_episode_record(row) for row in session.scalars(query)]

    def count_steps(self, episode_id: int) -> int:
        """Number of step rows stored for an episode."""
        with self._transaction(f"counting steps of episode {episode_id}") as session:
            return session.scalar(
                select(func.count()).select_from(Step).where(Step.episode_id == episode_id)
            )

    def episode_file(self, record: EpisodeRecord) -> Path:
        """Absolute path of a complete episode's .npz."""
        if record.npz_path is None:
            raise StoreError(f"episode {record.id}: has no files (status {record.status!r})")
        return self.data_dir / record.npz_path

    def load_episode(self, episode_id: int) -> EpisodeData:
        """Read a complete episode's arrays.

        Raises:
            EpisodeCorrupt: its file exists but is corrupt (see `quarantine_episode`).
            StoreError: no such episode, not complete, or its file is missing.
        """
        record = self.get_episode(episode_id)
        if record.status != "complete":
            raise StoreError(
                f"episode {episode_id}: status is {record.status!r} ({record.end_reason}); "
                "only complete episodes can be loaded"
            )
        path = self.episode_file(record)
        try:
            with np.load(path, allow_pickle=False) as npz:
                arrays = {key: npz[key] for key in npz.files}
        except FileNotFoundError as exc:
            raise StoreError(
                f"episode {episode_id}: file {path} is missing; was the data folder moved?"
            ) from exc
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
            # zlib.error: the zip directory is intact but a member's data is not.
            raise EpisodeCorrupt(f"episode {episode_id}: file {path} is corrupt "
                                 f"({type(exc).__name__}: {exc})") from exc
        _check_loaded(record, path, arrays)
        return EpisodeData(record=record, arrays=arrays)

    def quarantine_episode(self, episode_id: int, reason: str) -> Path:
        """Move a complete episode's unreadable files aside and mark it incomplete.

        The files go to `episodes/<run_id>/quarantine/` (kept for inspection, never read
        again); the row becomes "incomplete" with `end_reason` saying why and where, so the
        learner, datasets and the UI skip it from now on.

        Returns:
            Where its .npz went.

        Raises:
            StoreError: no such episode, or the files cannot be moved.
        """
        record = self.get_episode(episode_id)
        run_dir = self._run_dir(record.run_id)
        target_dir = run_dir / QUARANTINE_DIRNAME
        npz = self.data_dir / record.npz_path if record.npz_path else None
        target = target_dir / (npz.name if npz is not None else f"{episode_id}.npz")
        try:
            target_dir.mkdir(parents=True, exist_ok=True)
            files = [npz] if npz is not None else []
            files += [run_dir / f"{episode_id}_{camera}.mp4" for camera in record.cameras]
            for path in files:
                if path.exists():
                    os.replace(path, target_dir / path.name)
            _fsync_dir(target_dir)
            _fsync_dir(run_dir)
        except OSError as exc:
            raise StoreError(f"episode {episode_id}: could not move its files to {target_dir} "
                             f"({exc}); check the folder's permissions and free space") from exc
        with self._transaction(f"quarantining episode {episode_id}") as session:
            session.execute(
                update(Episode).where(Episode.id == episode_id).values(
                    status="incomplete",
                    end_reason=f"quarantined to {target.relative_to(self.data_dir)}: "
                               f"{reason}"[:1000],
                    npz_path=str(target.relative_to(self.data_dir)),
                )
            )
        return target

    def video_path(self, episode_id: int, camera: str) -> Path:
        """The MP4 of one camera of a complete episode.

        Raises:
            StoreError: unknown episode or camera, episode not complete, or file missing.
        """
        record = self.get_episode(episode_id)
        if camera not in record.cameras:
            raise StoreError(
                f"episode {episode_id}: no camera {camera!r}; it has {list(record.cameras)}"
            )
        if record.status != "complete":
            raise StoreError(
                f"episode {episode_id}: status is {record.status!r}; only complete episodes "
                "have videos"
            )
        path = self._run_dir(record.run_id) / f"{episode_id}_{camera}.mp4"
        if not path.is_file():
            raise StoreError(f"episode {episode_id}: video {path} is missing")
        return path

    # -- audit -----------------------------------------------------------------------------

    def audit(
        self,
        action: str,
        target: str = "",
        detail: dict | None = None,
        user_id: int | None = None,
    ) -> int:
        """Append an operator/system action to the audit log; returns the entry id."""
        with self._transaction(f"writing audit entry {action!r}") as session:
            entry = AuditEntry(
                action=action, target=target, detail=dict(detail or {}), user_id=user_id
            )
            session.add(entry)
            session.flush()
            return entry.id


def _check_loaded(record: EpisodeRecord, path: Path, arrays: dict[str, np.ndarray]) -> None:
    steps = record.num_steps
    expected = {
        "proprio": steps + 1,
        "action": steps,
        "reward": steps,
        "success": steps,
        "intervention": steps,
        "stamp_ns": steps,
    }
    expected.update({f"images_{camera}": steps + 1 for camera in record.cameras})
    expected.update({key: steps + 1 for key in ("state", "joint_pos") if key in arrays})
    for key, length in expected.items():
        array = arrays.get(key)
        if array is None or array.ndim == 0 or array.shape[0] != length:
            seen = "missing" if array is None else f"shape {array.shape}"
            raise EpisodeCorrupt(
                f"episode {record.id}: file {path} is corrupt: {key!r} should have "
                f"{length} entries, {seen}"
            )


class EpisodeWriter:
    """Buffers one episode's steps and writes it atomically on `finish()`.

    Obtain from `Store.begin_episode`. Usable as a context manager: leaving the block
    without `finish()` (or by an exception) aborts the episode.
    """

    def __init__(self, store: Store, record: EpisodeRecord, lock: _EpisodeLock) -> None:
        self._store = store
        self.record = record
        self._lock = lock
        self._closed = False
        self._images: dict[str, list[np.ndarray]] = {camera: [] for camera in record.cameras}
        self._image_shapes: dict[str, tuple[int, ...]] = {}
        self._proprio: list[np.ndarray] = []
        self._state: list[np.ndarray] = []
        self._joint_pos: list[np.ndarray] = []
        self._final_state: np.ndarray | None = None
        self._final_joint_pos: np.ndarray | None = None
        self._action: list[np.ndarray] = []
        self._step_rows: list[dict[str, Any]] = []

    @property
    def episode_id(self) -> int:
        return self.record.id

    @property
    def cameras(self) -> tuple[str, ...]:
        return self.record.cameras

    @property
    def fps(self) -> float:
        return self.record.fps

    @property
    def num_steps(self) -> int:
        return len(self._step_rows)

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: object, _tb: object) -> None:
        if not self._closed:
            reason = "writer left without finish()"
            if exc_type is not None:
                reason = f"{exc_type.__name__}: {exc}"
            self.abort(reason)

    # -- validation --------------------------------------------------------------------

    def _where(self) -> str:
        return f"episode {self.record.id} (run {self.record.run_id}, task {self.record.task!r})"

    def _check_writable(self) -> None:
        if self._closed:
            raise StoreError(f"{self._where()}: already finished or aborted")

    def _check_images(self, images: Mapping[str, np.ndarray], what: str) -> dict[str, np.ndarray]:
        if not isinstance(images, Mapping) or set(images) != set(self.cameras):
            seen = sorted(images) if isinstance(images, Mapping) else type(images).__name__
            raise StoreError(
                f"{self._where()}: {what} must have one image per camera {list(self.cameras)}, "
                f"got {seen}"
            )
        checked = {}
        for camera in self.cameras:
            image = np.asarray(images[camera])
            if (
                image.dtype != np.uint8
                or image.ndim != 3
                or image.shape[2] != 3
                or 0 in image.shape
            ):
                raise StoreError(
                    f"{self._where()}: {what}[{camera!r}] must be uint8 [H, W, 3] RGB, got "
                    f"{image.dtype} {image.shape}; convert with np.asarray(img, np.uint8)"
                )
            first = self._image_shapes.get(camera)
            if first is not None and image.shape != first:
                raise StoreError(
                    f"{self._where()}: {what}[{camera!r}] has shape {image.shape} but earlier "
                    f"frames of this camera are {first}; every frame must have the same size"
                )
            checked[camera] = np.array(image, copy=True)  # the caller may reuse its buffer
        return checked

    def _check_vector(self, value: np.ndarray, name: str, first: np.ndarray | None) -> np.ndarray:
        array = np.asarray(value)
        if array.dtype.kind not in "fiu" or array.ndim != 1:
            raise StoreError(
                f"{self._where()}: {name} must be a 1-D float array, got {array.dtype} "
                f"{array.shape}"
            )
        with np.errstate(over="ignore"):  # overflow becomes inf, refused below
            vector = array.astype(np.float32)  # copies
        if first is not None and vector.shape != first.shape:
            raise StoreError(
                f"{self._where()}: {name} has shape {vector.shape} but earlier steps had "
                f"{first.shape}"
            )
        if not np.all(np.isfinite(vector)):
            raise StoreError(
                f"{self._where()}: {name} contains NaN or inf (as float32): {array.tolist()}; "
                "non-finite values are never stored"
            )
        return vector

    def _check_scalar(self, value: object, name: str) -> float:
        if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
            raise StoreError(f"{self._where()}: {name} must be a real number, got {value!r}")
        number = float(value)
        if not math.isfinite(number):
            raise StoreError(f"{self._where()}: {name} must be finite, got {number}")
        return number

    def _check_flag(self, value: object, name: str) -> bool:
        if not isinstance(value, bool | np.bool_):
            raise StoreError(f"{self._where()}: {name} must be a bool, got {value!r}")
        return bool(value)

    # -- recording ---------------------------------------------------------------------

    def add_step(
        self,
        images: dict[str, np.ndarray],
        proprio: np.ndarray,
        action: np.ndarray,
        reward: float,
        success: bool,
        *,
        intervention: bool = False,
        stamp_ns: int = 0,
        scalars: dict[str, float] | None = None,
        state: np.ndarray | None = None,
        joint_pos: np.ndarray | None = None,
    ) -> None:
        """Buffer one step: the observation BEFORE `action`, the action, and its result.

        `scalars["success_prob"]` and `scalars["q_value"]` go to their own step columns,
        other names to the `scalars` JSON column. `state` is an optional low-dimensional
        world state (the sim's object positions) stored as the `state` array; give it on
        every step of an episode or on none. `joint_pos` (radians, the arm's measured joint
        positions) likewise becomes the `joint_pos` array, which joint-mode replay follows.

        Raises:
            StoreError: a value has the wrong type/shape/dtype or is not finite; nothing
                is recorded and the writer stays usable.
        """
        self._check_writable()
        checked_images = self._check_images(images, "images")
        proprio_vec = self._check_vector(
            proprio, "proprio", self._proprio[0] if self._proprio else None
        )
        action_vec = self._check_vector(action, "action", self._action[0] if self._action else None)
        reward_value = self._check_scalar(reward, "reward")
        success_flag = self._check_flag(success, "success")
        intervention_flag = self._check_flag(intervention, "intervention")
        if (state is not None) != bool(self._state) and self._step_rows:
            raise StoreError(f"{self._where()}: state given on some steps but not others")
        state_vec = (
            None if state is None
            else self._check_vector(state, "state", self._state[0] if self._state else None)
        )
        if (joint_pos is not None) != bool(self._joint_pos) and self._step_rows:
            raise StoreError(f"{self._where()}: joint_pos given on some steps but not others")
        joint_vec = (
            None if joint_pos is None
            else self._check_vector(joint_pos, "joint_pos",
                                    self._joint_pos[0] if self._joint_pos else None)
        )
        if (
            isinstance(stamp_ns, bool)
            or not isinstance(stamp_ns, numbers.Integral)
            or not -_INT64_MAX <= int(stamp_ns) <= _INT64_MAX
        ):
            raise StoreError(f"{self._where()}: stamp_ns must be an int64, got {stamp_ns!r}")
        extra: dict[str, float] = {}
        for key, value in (scalars or {}).items():
            if not isinstance(key, str):
                raise StoreError(f"{self._where()}: scalar names must be str, got {key!r}")
            extra[key] = self._check_scalar(value, f"scalars[{key!r}]")
        columns = {name: extra.pop(name, None) for name in COLUMN_SCALARS}

        # Everything is valid: only now change state.
        for camera, image in checked_images.items():
            self._images[camera].append(image)
            self._image_shapes.setdefault(camera, image.shape)
        self._proprio.append(proprio_vec)
        if state_vec is not None:
            self._state.append(state_vec)
        if joint_vec is not None:
            self._joint_pos.append(joint_vec)
        self._action.append(action_vec)
        self._step_rows.append(
            {
                "index": len(self._step_rows),
                "reward": reward_value,
                "success": success_flag,
                "intervention": intervention_flag,
                "stamp_ns": int(stamp_ns),
                "scalars": extra,
                **columns,
            }
        )

    def abort(self, reason: str) -> None:
        """Mark the episode "aborted" and drop its buffered steps. No-op once closed."""
        if self._closed:
            return
        self._close_as("aborted", reason)

    def finish(
        self,
        final_images: dict[str, np.ndarray],
        final_proprio: np.ndarray,
        outcome: str,
        end_reason: str = "",
        final_state: np.ndarray | None = None,
        final_joint_pos: np.ndarray | None = None,
    ) -> int:
        """Write the episode's files, then mark it complete with its step rows, atomically.

        Args:
            final_images: the observation after the last action (one image per camera).
            final_proprio: proprioception after the last action.
            final_state: the world state after the last action; required when the steps
                carried `state`.
            final_joint_pos: the joint positions after the last action; required when the
                steps carried `joint_pos`.
            outcome: "success", "failure", "timeout" or "aborted".

        Returns:
            The episode id.

        Raises:
            StoreError: zero steps, bad arguments (episode aborted), or a file/database
                failure (episode left "incomplete", temp files removed, earlier episodes
                untouched). The writer is closed either way.
        """
        self._check_writable()
        try:
            if not self._step_rows:
                raise StoreError(
                    f"{self._where()}: finish() with zero steps; an episode needs at least one "
                    "add_step() (the episode is aborted)"
                )
            if outcome not in EPISODE_OUTCOMES:
                raise StoreError(
                    f"{self._where()}: outcome must be one of {list(EPISODE_OUTCOMES)}, "
                    f"got {outcome!r}"
                )
            images = self._check_images(final_images, "final_images")
            proprio = self._check_vector(final_proprio, "final_proprio", self._proprio[0])
            if self._state:
                if final_state is None:
                    raise StoreError(f"{self._where()}: the steps carried state: finish() "
                                     "needs final_state")
                self._final_state = self._check_vector(final_state, "final_state",
                                                       self._state[0])
            if self._joint_pos:
                if final_joint_pos is None:
                    raise StoreError(f"{self._where()}: the steps carried joint_pos: finish() "
                                     "needs final_joint_pos")
                self._final_joint_pos = self._check_vector(final_joint_pos, "final_joint_pos",
                                                           self._joint_pos[0])
        except StoreError as exc:
            self._close_as("aborted", str(exc))
            raise

        try:
            self._write_and_commit(images, proprio, outcome, end_reason)
        except BaseException as exc:
            reason = f"write failed: {type(exc).__name__}: {exc}"
            self._close_as("incomplete", reason)
            if isinstance(exc, StoreError) or not isinstance(exc, Exception):
                raise
            raise StoreError(
                f"{self._where()}: {reason}; the episode is marked incomplete, earlier "
                "episodes are unaffected (check free disk space and permissions)"
            ) from exc
        log.debug("%s: complete, %d steps, %s", self._where(), self.num_steps, outcome)
        return self.record.id

    def _write_and_commit(
        self,
        final_images: dict[str, np.ndarray],
        final_proprio: np.ndarray,
        outcome: str,
        end_reason: str,
    ) -> None:
        store = self._store
        run_dir = store._run_dir(self.record.run_id)
        episode_id = self.record.id
        arrays: dict[str, np.ndarray] = {}
        for camera in self.cameras:
            arrays[f"images_{camera}"] = np.stack([*self._images[camera], final_images[camera]])
        arrays["proprio"] = np.stack([*self._proprio, final_proprio])  # [T+1, P]
        if self._state:
            arrays["state"] = np.stack([*self._state, self._final_state])  # [T+1, Q]
        if self._joint_pos:
            arrays["joint_pos"] = np.stack([*self._joint_pos, self._final_joint_pos])  # [T+1, 7]
        arrays["action"] = np.stack(self._action)  # [T, A]
        rows = self._step_rows
        arrays["reward"] = np.array([r["reward"] for r in rows], dtype=np.float32)
        arrays["success"] = np.array([r["success"] for r in rows], dtype=bool)
        arrays["intervention"] = np.array([r["intervention"] for r in rows], dtype=bool)
        arrays["stamp_ns"] = np.array([r["stamp_ns"] for r in rows], dtype=np.int64)

        npz_final = run_dir / f"{episode_id}.npz"
        finals = [npz_final] + [run_dir / f"{episode_id}_{c}.mp4" for c in self.cameras]
        temps = [path.with_name(path.name + TEMP_SUFFIX) for path in finals]
        placed: list[Path] = []
        try:
            with open(temps[0], "wb") as file:
                store._npz_writer(file, arrays)
                file.flush()
                os.fsync(file.fileno())
            for camera, temp in zip(self.cameras, temps[1:], strict=True):
                store._video_writer(temp, arrays[f"images_{camera}"], self.fps)
                _fsync_file(temp)
            for temp, final in zip(temps, finals, strict=True):
                os.replace(temp, final)
                placed.append(final)
            _fsync_dir(run_dir)

            completed = {
                "status": "complete",
                "outcome": outcome,
                "end_reason": end_reason,
                "num_steps": len(rows),
                "npz_path": npz_final.relative_to(store.data_dir).as_posix(),
                "has_intervention": bool(arrays["intervention"].any()),
                "finished_at": _utcnow(),
            }
            with store._transaction(f"completing episode {episode_id}") as session:
                session.execute(insert(Step), [{"episode_id": episode_id, **r} for r in rows])
                result = session.execute(
                    update(Episode)
                    .where(Episode.id == episode_id, Episode.status == "recording")
                    .values(**completed)
                )
                if result.rowcount != 1:
                    raise StoreError(
                        f"{self._where()}: the row is no longer 'recording' (another process "
                        "recovered it?); the episode is not marked complete"
                    )
        except BaseException:
            # Nothing may point at files of an episode that is not complete.
            for path in temps + placed:
                try:
                    path.unlink(missing_ok=True)
                except OSError as cleanup_exc:
                    log.warning("%s: could not remove %s: %s", self._where(), path, cleanup_exc)
            raise
        self.record = dataclasses.replace(self.record, **completed)
        self._close()

    def _close_as(self, status: str, reason: str) -> None:
        """Mark the row (if still recording) and release everything; logs DB failures."""
        try:
            with self._store._transaction(f"marking episode {self.record.id} {status}") as session:
                session.execute(
                    update(Episode)
                    .where(Episode.id == self.record.id, Episode.status == "recording")
                    .values(status=status, end_reason=reason, finished_at=_utcnow())
                )
        except StoreError as exc:
            # The row stays "recording"; recover() turns it incomplete on the next open.
            log.error("%s: could not mark %s: %s", self._where(), status, exc)
        self._close()
        log.info("%s: %s (%s)", self._where(), status, reason)

    def _close(self) -> None:
        self._closed = True
        self._images = {camera: [] for camera in self.cameras}
        self._proprio.clear()
        self._state.clear()
        self._joint_pos.clear()
        self._action.clear()
        self._lock.release(unlink=True)
        self._store._unregister(self)
