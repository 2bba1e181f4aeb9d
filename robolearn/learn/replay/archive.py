"""The learner's own copy of the episodes it received, so it resumes on a host that does not
share the actors' disks.

Each episode with a store id is written as `<id>.npz` in the buffers' layout (a
`StoreEpisode`: frames, proprioception, actions, the rewards it trained on, success and
intervention flags), by a background thread so the learner's loop never waits on a disk.
A resumed learner reads these first and asks the store only for what they lack.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import zipfile
from pathlib import Path

import numpy as np

from robolearn.learn.replay.loading import StoreEpisode
from robolearn.store.writer import write_npz

log = logging.getLogger(__name__)

# Episodes waiting to be written; beyond this the newest is dropped with a warning (the
# actor's own copy and the store still hold it).
QUEUE_EPISODES = 256


class EpisodeArchive:
    """`directory`/<episode id>.npz, one per received episode; `close()` writes what waits."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._queue: queue.Queue[StoreEpisode | None] = queue.Queue(QUEUE_EPISODES)
        self._thread: threading.Thread | None = None
        self.written = 0
        self.failed = 0

    def ids(self) -> list[int]:
        """Archived episode ids, oldest first."""
        return sorted(int(p.stem) for p in self.directory.glob("*.npz") if p.stem.isdigit())

    def add(self, episode: StoreEpisode) -> None:
        """Queue `episode` for writing (never blocks)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._write_loop, name="episode-archive",
                                            daemon=True)
            self._thread.start()
        try:
            self._queue.put_nowait(episode)
        except queue.Full:
            self.failed += 1
            log.warning("learner: episode archive is %d episodes behind its disk; episode %d "
                        "is not kept (the store still has it)", QUEUE_EPISODES,
                        episode.episode_id)

    def _write_loop(self) -> None:
        while (episode := self._queue.get()) is not None:
            try:
                self.write(episode)
            except OSError as exc:
                self.failed += 1
                log.error("learner: could not keep episode %d in %s (%s); the store still "
                          "has it", episode.episode_id, self.directory, exc)

    def write(self, episode: StoreEpisode) -> Path:
        """Write `episode` atomically (temp file, fsync, rename).

        Raises:
            OSError: the file could not be written; nothing partial is left.
        """
        path = self.directory / f"{episode.episode_id}.npz"
        tmp = path.with_suffix(".tmp")
        arrays = {"pixels": episode.pixels, "low_dim": episode.low_dim,
                  "action": episode.action, "reward": episode.reward,
                  "success": np.array(episode.success)}
        if episode.intervention is not None:
            arrays["intervention"] = episode.intervention
        try:
            with open(tmp, "wb") as f:
                write_npz(f, arrays)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError:
            tmp.unlink(missing_ok=True)
            raise
        self.written += 1
        return path

    def read(self, episode_id: int) -> StoreEpisode | None:
        """The archived episode, or None (with an error logged) if its file is damaged."""
        path = self.directory / f"{episode_id}.npz"
        try:
            with np.load(path) as data:
                return StoreEpisode(
                    episode_id=episode_id, pixels=data["pixels"], low_dim=data["low_dim"],
                    action=data["action"], reward=data["reward"],
                    success=bool(data["success"]),
                    intervention=data["intervention"] if "intervention" in data else None)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            log.error("learner: kept episode %s is damaged (%s); the store's copy is used "
                      "if this host has it", path, exc)
            return None

    def close(self) -> None:
        """Write every queued episode, then stop the writer."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
