"""Crash recovery: close out episodes whose writer died, delete leftover temp and lock files.

A writer holds its episode's lock for as long as it lives and the kernel drops it when the
process dies, so an episode still "recording" whose lock can be taken has no live writer.
Episodes of live writers (this or another process) and complete episodes are never touched.

The lock file is made in the writer's data directory before its row exists, so a recording
row with no lock file here is being recorded from another data directory: another host of
a fleet sharing the database. Only that directory's store may judge it (its lock is there).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager

from sqlalchemy.orm import Session

from robolearn.errors import StoreError
from robolearn.store import episodes
from robolearn.store.layout import EpisodeLock, Layout

log = logging.getLogger(__name__)

Transaction = Callable[[str], AbstractContextManager[Session]]
"""Opens one transaction, named for error messages (`Store.transaction`)."""

RECOVERED_REASON = "recovered: the writer stopped before finish()"


def recover(layout: Layout, transaction: Transaction) -> int:
    """Mark "incomplete" every recording episode no live writer holds; sweep leftovers.

    Returns:
        How many episodes were marked incomplete.

    Raises:
        StoreError: the database or the episode folders could not be read or cleaned.
    """
    try:
        return _recover(layout, transaction)
    except OSError as exc:
        raise StoreError(
            f"store at {layout.data_dir}: recovery could not clean the episode folders "
            f"({exc}); check the folder's permissions and free space"
        ) from exc


def _recover(layout: Layout, transaction: Transaction) -> int:
    with transaction("listing recording episodes") as session:
        recording = episodes.recording_episodes(session)
    fixed = 0
    for episode_id, run_id in recording:
        if not layout.lock_path(run_id, episode_id).exists():
            continue  # recorded from another data directory (another host)
        lock = EpisodeLock.acquire(layout.lock_path(run_id, episode_id), blocking=False)
        if lock is None:
            continue  # a live writer holds it
        try:
            layout.remove_temp_files(run_id, episode_id)
            with transaction(f"recovering episode {episode_id}") as session:
                fixed += episodes.close_recording(session, episode_id, "incomplete",
                                                  RECOVERED_REASON)
        finally:
            lock.release(unlink=True)
    sweep_leftovers(layout)
    if fixed:
        log.warning(
            "store at %s: %d episode(s) left recording by a stopped writer marked incomplete",
            layout.data_dir,
            fixed,
        )
    return fixed


def sweep_leftovers(layout: Layout) -> None:
    """Delete temp and lock files whose episode no live writer holds (e.g. its row rolled
    back)."""
    for run_id, episode_id in layout.leftovers():
        lock = EpisodeLock.acquire(layout.lock_path(run_id, episode_id), blocking=False)
        if lock is None:
            continue
        try:
            layout.remove_temp_files(run_id, episode_id)
        finally:
            lock.release(unlink=True)
