"""The episode writer: validates each step as it is buffered, then writes the episode
atomically on `finish()`.

Write protocol of one episode (so a crash never leaves a half episode that looks whole):

1. `Store.begin_episode` inserts the row with status "recording" and holds an exclusive
   lock on `<episode_id>.lock` for as long as the writer lives (see `layout.EpisodeLock`).
2. `add_step` only buffers in memory; the control loop never waits on disk or database.
3. `finish` writes every file to `<name>.tmp` in the same folder, fsyncs it, renames it
   into place and fsyncs the folder; only then ONE transaction inserts the step rows and
   flips the episode to "complete". A row that says "complete" therefore always has its
   files; any failure leaves the row "aborted" or "incomplete" and no temp files.

The writer reaches the store only through `WriterStore`, the public members it needs.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import numbers
import os
import re
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, BinaryIO, Protocol, Self

import numpy as np
from sqlalchemy.orm import Session

from robolearn.errors import StoreError
from robolearn.store import episodes
from robolearn.store.layout import EpisodeLock, Layout, fsync_dir, fsync_file, temp_path
from robolearn.store.models import EPISODE_OUTCOMES, utcnow
from robolearn.store.records import EpisodeRecord

log = logging.getLogger(__name__)

DEFAULT_FPS = 10.0
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


class WriterStore(Protocol):
    """What an `EpisodeWriter` uses of the store that made it (`Store` provides it)."""

    @property
    def layout(self) -> Layout: ...

    @property
    def npz_writer(self) -> NpzWriter: ...

    @property
    def video_writer(self) -> VideoWriter: ...

    def transaction(self, what: str) -> AbstractContextManager[Session]: ...

    def writer_closed(self, writer: EpisodeWriter) -> None: ...


def check_new_episode(run_id: int, task: str, cameras: Sequence[object], fps: object) -> None:
    """Refuse camera names that cannot be file names and a non-positive fps.

    Raises:
        StoreError: saying which value is wrong.
    """
    bad = [c for c in cameras if not isinstance(c, str) or not _CAMERA_NAME.match(c)]
    if bad or len(set(cameras)) != len(cameras):
        raise StoreError(
            f"run {run_id}, task {task!r}: camera names must be unique and made of letters, "
            f"digits, '_' or '-' (at most 64); got {list(cameras)!r}"
        )
    if not (isinstance(fps, numbers.Real) and math.isfinite(fps) and fps > 0):
        raise StoreError(f"run {run_id}, task {task!r}: fps must be > 0, got {fps!r}")


class EpisodeWriter:
    """Buffers one episode's steps and writes it atomically on `finish()`.

    Obtain from `Store.begin_episode`. Usable as a context manager: leaving the block
    without `finish()` (or by an exception) aborts the episode.
    """

    def __init__(self, store: WriterStore, record: EpisodeRecord, lock: EpisodeLock) -> None:
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
        layout = store.layout
        run_id, episode_id = self.record.run_id, self.record.id
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

        npz_final = layout.npz_path(run_id, episode_id)
        finals = [npz_final] + [layout.video_path(run_id, episode_id, c) for c in self.cameras]
        temps = [temp_path(path) for path in finals]
        placed: list[Path] = []
        try:
            with open(temps[0], "wb") as file:
                store.npz_writer(file, arrays)
                file.flush()
                os.fsync(file.fileno())
            for camera, temp in zip(self.cameras, temps[1:], strict=True):
                store.video_writer(temp, arrays[f"images_{camera}"], self.fps)
                fsync_file(temp)
            for temp, final in zip(temps, finals, strict=True):
                os.replace(temp, final)
                placed.append(final)
            fsync_dir(layout.run_dir(run_id))

            completed = {
                "status": "complete",
                "outcome": outcome,
                "end_reason": end_reason,
                "num_steps": len(rows),
                "npz_path": layout.relative(npz_final),
                "has_intervention": bool(arrays["intervention"].any()),
                "finished_at": utcnow(),
            }
            with store.transaction(f"completing episode {episode_id}") as session:
                if not episodes.complete_recording(session, episode_id, rows, completed):
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
            with self._store.transaction(f"marking episode {self.record.id} {status}") as session:
                episodes.close_recording(session, self.record.id, status, reason)
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
        self._store.writer_closed(self)
