"""The `Store` facade: runs, atomically written episodes and crash recovery under one data
directory plus one database.

The jobs live in their own modules: `records` (what callers get back), `layout` (paths,
locks, fsync), `recovery`, `writer` (validation and the atomic write protocol), and one
query module per table family (`runs`, `episodes`, `audit`, ...). This class ties them to
one engine and one folder.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import weakref
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Self

import numpy as np
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from robolearn.errors import EpisodeCorrupt, StoreError
from robolearn.store import audit, episodes, recovery, runs
from robolearn.store.db import default_url, make_engine, upgrade
from robolearn.store.episodes import EpisodeFilter
from robolearn.store.layout import Layout, fsync_dir
from robolearn.store.records import (
    EpisodeData,
    EpisodeRecord,
    RunRecord,
    episode_record,
    run_record,
)
from robolearn.store.video import encode_mp4
from robolearn.store.writer import (
    DEFAULT_FPS,
    EpisodeWriter,
    NpzWriter,
    VideoWriter,
    check_new_episode,
    write_npz,
)

log = logging.getLogger(__name__)


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
        self._layout = Layout(self.data_dir)
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
            Layout(data_dir).episodes_dir.mkdir(parents=True, exist_ok=True)
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
        """A new ORM session for the query modules (use with `with`; the caller commits)."""
        self._check_open()
        return self._sessions()

    @contextlib.contextmanager
    def transaction(self, what: str) -> Iterator[Session]:
        """One transaction, committed on leaving the block, rolled back on an exception.

        Raises:
            StoreError: the database failed; `what` names the operation in the message.
        """
        self._check_open()
        try:
            with self._sessions.begin() as session:
                yield session
        except SQLAlchemyError as exc:
            raise StoreError(
                f"store at {self.data_dir}: {what} failed in the database ({exc}); "
                "check the database is reachable and writable"
            ) from exc

    # -- what writers use (writer.WriterStore) -----------------------------------------

    @property
    def layout(self) -> Layout:
        return self._layout

    @property
    def npz_writer(self) -> NpzWriter:
        return self._npz_writer

    @property
    def video_writer(self) -> VideoWriter:
        return self._video_writer

    def writer_closed(self, writer: EpisodeWriter) -> None:
        """A writer finished or aborted: `close()` need no longer abort it."""
        with self._writers_lock:
            self._writers.discard(writer)

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"store at {self.data_dir}: used after close(); open a new one")

    # -- recovery ----------------------------------------------------------------------

    def recover(self) -> int:
        """Close out episodes whose writer died; delete leftover temp and lock files.

        An episode still "recording" whose lock no live process holds becomes "incomplete".
        Episodes of live writers (this or another process) and complete episodes are never
        touched.

        Returns:
            How many episodes were marked incomplete.
        """
        return recovery.recover(self._layout, self.transaction)

    # -- runs ----------------------------------------------------------------------------

    def create_run(self, name: str, config: dict, kind: str = "sim") -> int:
        """Insert a run with status "running"; returns its id."""
        with self.transaction(f"creating run {name!r}") as session:
            return runs.add_run(session, name, config, kind, "running").id

    def mark_running(self, run_id: int) -> RunRecord:
        """Set an existing run (one registered by the service, or resumed) to "running".

        Raises:
            StoreError: no run has this id.
        """
        with self.transaction(f"marking run {run_id} running") as session:
            run = runs.require_run(session, run_id, "create it first (POST /api/runs or "
                                   "create_run()) or leave the run id out")
            runs.mark_running(run)
            session.flush()
            return run_record(run)

    def end_run(self, run_id: int, status: str) -> None:
        """Set the run's final status ("finished", "failed", "stopped", ...) and end time."""
        if not status or status == "running":
            raise StoreError(
                f"run {run_id}: end_run() needs a final status such as 'finished' or "
                f"'failed', got {status!r}"
            )
        with self.transaction(f"ending run {run_id}") as session:
            runs.end_run(runs.require_run(session, run_id, "create it with create_run()"),
                         status)

    def get_run(self, run_id: int) -> RunRecord:
        with self.transaction(f"reading run {run_id}") as session:
            return run_record(runs.require_run(session, run_id))

    def list_runs(self) -> list[RunRecord]:
        """All runs, oldest first."""
        with self.transaction("listing runs") as session:
            return [run_record(r) for r in runs.list_runs(session)]

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
        robot: str | None = None,
    ) -> EpisodeWriter:
        """Start recording an episode: the row exists (status "recording") on return.

        Args:
            cameras: names of the cameras whose frames every step carries; letters, digits,
                "_" and "-" (they become file names).
            fps: playback rate of the MP4s.
            robot: the fleet robot recording it (None: the run's one robot).

        Raises:
            StoreError: unknown run or source episode, bad camera names, database failure.
        """
        cameras = list(cameras)
        check_new_episode(run_id, task, cameras, fps)
        run_dir = self._layout.run_dir(run_id)
        with self.transaction(f"beginning an episode of run {run_id}") as session:
            runs.require_run(session, run_id, "create it with create_run()")
            if (source_episode_id is not None
                    and episodes.get_episode(session, source_episode_id) is None):
                raise StoreError(f"run {run_id}: source episode {source_episode_id} does not exist")
            record = episodes.insert_recording(
                session, run_id, task, cameras, seed=seed, policy=policy, is_demo=is_demo,
                direction=direction, source_episode_id=source_episode_id, fps=fps,
                robot=robot)
            # Lock before the row becomes visible, so recovery elsewhere never sees a
            # recording row without its live lock.
            try:
                run_dir.mkdir(parents=True, exist_ok=True)
                lock = self._layout.lock_new_episode(run_id, record.id)
            except OSError as exc:
                raise StoreError(
                    f"run {run_id}: cannot create episode files in {run_dir} ({exc}); "
                    "check free space and permissions"
                ) from exc
        writer = EpisodeWriter(self, record, lock)
        with self._writers_lock:
            self._writers.add(writer)
        log.debug("episode %d of run %d: recording", record.id, run_id)
        return writer

    def get_episode(self, episode_id: int) -> EpisodeRecord:
        """Raises StoreError if there is no such episode."""
        with self.transaction(f"reading episode {episode_id}") as session:
            row = episodes.get_episode(session, episode_id)
            if row is None:
                raise StoreError(f"episode {episode_id}: no such episode")
            return episode_record(row)

    def list_episodes(
        self,
        run_id: int | None = None,
        task: str | None = None,
        status: str | None = "complete",
        is_demo: bool | None = None,
        limit: int | None = None,
    ) -> list[EpisodeRecord]:
        """Episodes matching every filter given (None = any), oldest first."""
        where = EpisodeFilter(run_id=run_id, task=task, status=status, is_demo=is_demo)
        with self.transaction("listing episodes") as session:
            return [episode_record(row)
                    for row in episodes.list_episodes(session, where, limit=limit)]

    def count_steps(self, episode_id: int) -> int:
        """Number of step rows stored for an episode."""
        with self.transaction(f"counting steps of episode {episode_id}") as session:
            return episodes.count_steps(session, episode_id)

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
        run_dir = self._layout.run_dir(record.run_id)
        target_dir = self._layout.quarantine_dir(record.run_id)
        npz = self.data_dir / record.npz_path if record.npz_path else None
        target = target_dir / (npz.name if npz is not None else f"{episode_id}.npz")
        try:
            target_dir.mkdir(parents=True, exist_ok=True)
            files = [npz] if npz is not None else []
            files += [self._layout.video_path(record.run_id, episode_id, camera)
                      for camera in record.cameras]
            for path in files:
                if path.exists():
                    os.replace(path, target_dir / path.name)
            fsync_dir(target_dir)
            fsync_dir(run_dir)
        except OSError as exc:
            raise StoreError(f"episode {episode_id}: could not move its files to {target_dir} "
                             f"({exc}); check the folder's permissions and free space") from exc
        with self.transaction(f"quarantining episode {episode_id}") as session:
            episodes.mark_quarantined(session, episode_id, self._layout.relative(target),
                                      reason)
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
        path = self._layout.video_path(record.run_id, episode_id, camera)
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
        with self.transaction(f"writing audit entry {action!r}") as session:
            entry = audit.add_entry(session, action, target, detail, user_id)
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
