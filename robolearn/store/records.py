"""Read-only records the store hands out: a run, an episode row, an episode's arrays.

Callers never hold ORM rows of the store's own tables: these frozen copies stay valid after
the session that read them is closed, in any thread.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import numpy as np

from robolearn.errors import StoreError
from robolearn.store.models import Episode, Run


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
    robot: str | None = None


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


def aware(value: dt.datetime | None) -> dt.datetime | None:
    """`value` as timezone-aware UTC: SQLite hands back naive datetimes, and every time the
    store writes is UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value


def episode_record(row: Episode) -> EpisodeRecord:
    """A frozen copy of an `episodes` row."""
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
        created_at=aware(row.created_at),
        finished_at=aware(row.finished_at),
        source_episode_id=row.source_episode_id,
        has_intervention=row.has_intervention,
        robot=row.robot,
    )


def run_record(row: Run) -> RunRecord:
    """A frozen copy of a `runs` row."""
    return RunRecord(
        id=row.id,
        name=row.name,
        config=dict(row.config),
        kind=row.kind,
        status=row.status,
        started_at=aware(row.started_at),
        ended_at=aware(row.ended_at),
    )
