"""Export store episodes as one LeRobotDataset v3.0 folder.

Layout written (LeRobot's v3.0 names; one data file and one video file per camera)::

    meta/info.json                              codebase_version "v3.0", fps, features
    meta/stats.json                             per feature: min/max/mean/std/count/q01..q99
    meta/tasks.parquet                          task text (index) -> task_index
    meta/episodes/chunk-000/file-000.parquet    one row per episode: length, data and video
                                                spans, and `stats/<feature>/<stat>`
    data/chunk-000/file-000.parquet             one row per frame
    videos/observation.images.<camera>/chunk-000/file-000.mp4
    meta/robolearn.json, meta/robolearn_final.npz   robolearn's own metadata and final
                                                observations (other tools ignore them)

Frames. A store episode of T steps becomes T frames, frame t holding observation t, action
t and what followed it (`next.reward`, `next.success`); the last frame carries `next.done`.
The final observation (after the last action) has no frame in LeRobot's layout; it is kept
in meta/robolearn_final.npz, so a robolearn import restores the episode whole. Task texts
are the task's own description (the task id stays in meta/robolearn.json).

Episodes are read and written one at a time; the folder is built in a temporary sibling and
renamed into place, so a failure leaves nothing half-written.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from robolearn.datasets.lerobot_format import (
    CHUNKS_SIZE,
    CODEBASE_VERSION,
    DATA_PATH,
    ENV_STATE_KEY,
    EPISODES_PATH,
    IMAGE_PREFIX,
    JOINT_KEY,
    ROBOLEARN_FINAL,
    ROBOLEARN_META,
    STATE_KEY,
    TASKS_PATH,
    VIDEO_PATH,
    Stats,
    aggregate_stats,
    feature_stats,
    image_stats,
    pyarrow,
    stats_columns,
    stats_json,
    write_parquet,
    write_tasks,
)
from robolearn.datasets.video import DEFAULT_CODEC, LOSSLESS_CODEC, VideoCodec, VideoWriter
from robolearn.errors import DatasetError
from robolearn.store import EpisodeData, EpisodeRecord, Store

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]

_PROPRIO_NAMES = ["ee_x_m", "ee_y_m", "ee_z_m", "ee_qw", "ee_qx", "ee_qy", "ee_qz",
                  "gripper_width_m"]
# Per-frame vector features: key -> (store array, dtype); scalars follow in _frame_columns.
_VECTORS = {STATE_KEY: "proprio", "action": "action", ENV_STATE_KEY: "state",
            JOINT_KEY: "joint_pos"}


class ExportReport(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = Field(description="The dataset folder written.")
    episode_ids: list[int] = Field(description="Store episodes exported, in dataset order.")
    frames: int = Field(description="Frames written (one per step).")


@dataclass
class _Plan:
    """What the checked records promise: one feature set, the task texts."""

    records: list[EpisodeRecord]
    fps: float
    cameras: tuple[str, ...]
    tasks: list[str]
    codec: VideoCodec
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)  # from the first episode


def task_text(task: str) -> str:
    """The text a dataset carries for a store task: a sim task's description, else its id."""
    from robolearn.sim.tasks import TASK_REGISTRY

    entry = TASK_REGISTRY.get(task)
    return entry.description if entry is not None else task


def _check_target(out_dir: Path) -> None:
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise DatasetError(f"export: {out_dir} exists and is not empty; choose a new folder")


def _plan(store: Store, episode_ids: list[int], codec: VideoCodec) -> _Plan:
    """Check the episodes' records before anything is read or written.

    Raises:
        DatasetError: no episodes, an incomplete or empty one, or mixed cameras or fps.
        StoreError: an episode does not exist.
    """
    if not episode_ids:
        raise DatasetError("export: no episodes given")
    records = [store.get_episode(i) for i in episode_ids]
    first = records[0]
    for rec in records:
        if rec.status != "complete" or rec.num_steps < 1:
            raise DatasetError(f"export: episode {rec.id} is {rec.status} with "
                               f"{rec.num_steps} steps; only complete episodes with steps export")
        if (rec.cameras, rec.fps) != (first.cameras, first.fps):
            raise DatasetError(
                f"export: episode {rec.id} has cameras {list(rec.cameras)} at {rec.fps} fps, "
                f"episode {first.id} has {list(first.cameras)} at {first.fps} fps; a LeRobot "
                "dataset has one feature set: export them separately")
    tasks = list(dict.fromkeys(task_text(r.task) for r in records))
    return _Plan(records, first.fps, first.cameras, tasks, codec)


def _shapes(data: EpisodeData) -> dict[str, tuple[int, ...]]:
    return {key: array.shape[1:] for key, array in data.arrays.items()
            if key.startswith("images_") or key in _VECTORS.values()}


def _check_shapes(plan: _Plan, data: EpisodeData) -> None:
    seen = _shapes(data)
    if not plan.shapes:
        plan.shapes = seen
    elif seen != plan.shapes:
        raise DatasetError(
            f"export: episode {data.record.id} has {seen}, episode {plan.records[0].id} has "
            f"{plan.shapes}; a LeRobot dataset has one feature set: export them separately")


def _frame_columns(plan: _Plan, data: EpisodeData, episode: int,
                   first_index: int) -> dict[str, np.ndarray]:
    """One episode's data rows: T frames, observation t with action t and what followed."""
    arrays, steps = data.arrays, data.record.num_steps
    columns: dict[str, np.ndarray] = {}
    for key, name in _VECTORS.items():
        if name in arrays:
            columns[key] = arrays[name][:steps].astype(np.float32)
    columns.update({
        "timestamp": (np.arange(steps) / plan.fps).astype(np.float32),
        "frame_index": np.arange(steps, dtype=np.int64),
        "episode_index": np.full(steps, episode, dtype=np.int64),
        "index": np.arange(first_index, first_index + steps, dtype=np.int64),
        "task_index": np.full(steps, plan.tasks.index(task_text(data.record.task)), np.int64),
        "next.reward": arrays["reward"].astype(np.float32),
        "next.done": np.arange(steps) == steps - 1,
        "next.success": arrays["success"].astype(bool),
        "intervention": arrays["intervention"].astype(bool),
        "stamp_ns": arrays["stamp_ns"].astype(np.int64),
    })
    return columns


def _table(pa: Any, columns: dict[str, np.ndarray]) -> Any:
    def arrow(values: np.ndarray) -> Any:
        if values.ndim == 1:
            return pa.array(values)
        flat = pa.array(np.ascontiguousarray(values).reshape(-1))
        return pa.FixedSizeListArray.from_arrays(flat, values.shape[1])

    return pa.table({key: arrow(values) for key, values in columns.items()})


def _features(plan: _Plan, columns: dict[str, np.ndarray]) -> dict[str, Any]:
    dtypes = {np.dtype(np.float32): "float32", np.dtype(np.int64): "int64",
              np.dtype(bool): "bool"}
    features: dict[str, Any] = {}
    for key, values in columns.items():
        shape = [values.shape[1]] if values.ndim == 2 else [1]
        names = _PROPRIO_NAMES if key == STATE_KEY and shape == [8] else None
        features[key] = {"dtype": dtypes[values.dtype], "shape": shape, "names": names}
    for camera in plan.cameras:
        h, w = plan.shapes[f"images_{camera}"][:2]
        features[IMAGE_PREFIX + camera] = {
            "dtype": "video", "shape": [h, w, 3], "names": ["height", "width", "channels"],
            "info": {"video.height": h, "video.width": w, "video.codec": "h264",
                     "video.pix_fmt": plan.codec.pix_fmt, "video.is_depth_map": False,
                     "video.fps": plan.fps, "video.channels": 3, "has_audio": False},
        }
    return features


def _info(plan: _Plan, features: dict[str, Any], frames: int) -> dict[str, Any]:
    fps = plan.fps
    return {
        "codebase_version": CODEBASE_VERSION, "robot_type": "panda",
        "total_episodes": len(plan.records), "total_frames": frames,
        "total_tasks": len(plan.tasks), "chunks_size": CHUNKS_SIZE,
        "data_files_size_in_mb": 100, "video_files_size_in_mb": 200,
        "fps": int(fps) if float(fps).is_integer() else fps,
        "splits": {"train": f"0:{len(plan.records)}"}, "data_path": DATA_PATH,
        "video_path": VIDEO_PATH if plan.cameras else None, "features": features,
    }


def _robolearn_meta(rec: EpisodeRecord, episode: int) -> dict[str, Any]:
    return {"episode_index": episode, "store_episode_id": rec.id, "task": rec.task,
            "seed": rec.seed, "policy": rec.policy, "is_demo": rec.is_demo,
            "outcome": rec.outcome, "end_reason": rec.end_reason,
            "direction": rec.direction, "has_intervention": rec.has_intervention}


def _final_observation(data: EpisodeData) -> dict[str, np.ndarray]:
    return {key: array[-1] for key, array in data.arrays.items()
            if key.startswith("images_") or key in ("proprio", "state", "joint_pos")}


class _Writer:
    """The dataset's files in a temporary folder, written one episode at a time."""

    def __init__(self, tmp: Path, plan: _Plan) -> None:
        self.tmp, self.plan = tmp, plan
        self.pa, self.pq = pyarrow()
        self.data_writer: Any = None
        self.videos: dict[str, VideoWriter] = {}
        self.episode_rows: list[dict[str, Any]] = []
        self.episode_stats: list[dict[str, Stats]] = []
        self.meta: list[dict[str, Any]] = []
        self.finals: list[dict[str, np.ndarray]] = []
        self.features: dict[str, Any] = {}
        self.frames = 0

    def add(self, episode: int, data: EpisodeData) -> None:
        plan, steps = self.plan, data.record.num_steps
        columns = _frame_columns(plan, data, episode, self.frames)
        table = _table(self.pa, columns)
        if self.data_writer is None:
            self.features = _features(plan, columns)
            path = self.tmp / DATA_PATH.format(chunk_index=0, file_index=0)
            path.parent.mkdir(parents=True, exist_ok=True)
            self.data_writer = self.pq.ParquetWriter(path, table.schema)
        self.data_writer.write_table(table)
        stats = {key: feature_stats(values) for key, values in columns.items()}
        row: dict[str, Any] = {
            "episode_index": episode, "tasks": [task_text(data.record.task)],
            "length": steps, "data/chunk_index": 0, "data/file_index": 0,
            "dataset_from_index": self.frames, "dataset_to_index": self.frames + steps,
        }
        for camera in plan.cameras:
            key = IMAGE_PREFIX + camera
            frames = data.images(camera)[:steps]
            video = self._video(key, frames.shape[1:3])
            start_s = video.frames_written / plan.fps
            video.write(frames)
            stats[key] = image_stats(frames)
            row.update({f"videos/{key}/chunk_index": 0, f"videos/{key}/file_index": 0,
                        f"videos/{key}/from_timestamp": start_s,
                        f"videos/{key}/to_timestamp": start_s + steps / plan.fps})
        row.update(stats_columns(stats))
        row.update({"meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0})
        self.episode_rows.append(row)
        self.episode_stats.append(stats)
        self.meta.append(_robolearn_meta(data.record, episode))
        self.finals.append(_final_observation(data))
        self.frames += steps

    def _video(self, key: str, size: tuple[int, ...]) -> VideoWriter:
        if key not in self.videos:
            path = self.tmp / VIDEO_PATH.format(video_key=key, chunk_index=0, file_index=0)
            path.parent.mkdir(parents=True, exist_ok=True)
            self.videos[key] = VideoWriter(path, self.plan.fps, int(size[0]), int(size[1]),
                                           self.plan.codec)
        return self.videos[key]

    def close(self) -> None:
        """Flush the data and video files (also after a failure, so nothing stays open)."""
        writers: list[Any] = [*self.videos.values()]
        if self.data_writer is not None:
            writers.append(self.data_writer)
        self.videos, self.data_writer = {}, None
        for writer in writers:
            writer.close()

    def finish(self) -> None:
        self.close()
        pa, pq, tmp = self.pa, self.pq, self.tmp
        write_parquet(pq, pa.Table.from_pylist(self.episode_rows),
                      tmp / EPISODES_PATH.format(chunk_index=0, file_index=0))
        write_tasks(pa, pq, self.plan.tasks, tmp / TASKS_PATH)
        dataset_stats = {key: aggregate_stats([s[key] for s in self.episode_stats])
                         for key in self.episode_stats[0]}
        (tmp / "meta" / "info.json").write_text(
            json.dumps(_info(self.plan, self.features, self.frames), indent=4))
        (tmp / "meta" / "stats.json").write_text(json.dumps(stats_json(dataset_stats), indent=4))
        (tmp / ROBOLEARN_META).write_text(json.dumps(
            {"format": 2, "cameras": list(self.plan.cameras), "episodes": self.meta,
             "final_observations": ROBOLEARN_FINAL}, indent=2))
        finals = {key: np.stack([f[key] for f in self.finals]) for key in self.finals[0]}
        with open(tmp / ROBOLEARN_FINAL, "wb") as file:
            np.savez_compressed(file, **finals)


def export_lerobot(
    store: Store,
    episode_ids: list[int],
    out_dir: Path,
    *,
    lossless: bool = False,
    progress: Progress | None = None,
) -> ExportReport:
    """Write episodes as one LeRobotDataset v3.0 folder.

    Args:
        store: the open store.
        episode_ids: complete episodes sharing cameras, image sizes, fps and array widths.
        out_dir: the dataset folder; must not exist (or be empty).
        lossless: encode video losslessly (H.264 in RGB, every pixel kept) instead of
            ordinary yuv420p H.264.
        progress: called with (episodes done, total).

    Raises:
        DatasetError: no episodes, mixed feature sets, odd image sizes for yuv420p, or
            out_dir is not empty.
        StoreError: an episode is missing or unreadable.
    """
    out_dir = Path(out_dir)
    _check_target(out_dir)
    plan = _plan(store, episode_ids, LOSSLESS_CODEC if lossless else DEFAULT_CODEC)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    writer = _Writer(tmp, plan)
    try:
        for episode, rec in enumerate(plan.records):
            data = store.load_episode(rec.id)
            _check_shapes(plan, data)
            writer.add(episode, data)
            if progress is not None:
                progress(episode + 1, len(plan.records))
        writer.finish()
        if out_dir.exists():
            out_dir.rmdir()  # checked empty above
        os.replace(tmp, out_dir)
    except BaseException:
        try:
            writer.close()
        except Exception as exc:  # the original error matters more; say both
            log.error("export: closing the partial files in %s failed: %s", tmp, exc)
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("exported %d episodes (%d frames) to %s", len(plan.records), writer.frames, out_dir)
    return ExportReport(path=str(out_dir), episode_ids=list(episode_ids), frames=writer.frames)
