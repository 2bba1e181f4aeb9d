"""Export store episodes to the LeRobotDataset v3.0 layout, and import such a folder.

Layout written (LeRobot's v3.0 names; one data file and one video file per camera)::

    meta/info.json                                  codebase_version "v3.0", fps, features, paths
    meta/stats.json                                 mean/std/min/max/count per feature
    meta/tasks.parquet                              task (index) -> task_index
    meta/episodes/chunk-000/file-000.parquet        one row per episode: length, data and
                                                    video spans (dataset_from/to_index,
                                                    videos/<key>/from/to_timestamp)
    data/chunk-000/file-000.parquet                 one row per frame
    videos/observation.images.<camera>/chunk-000/file-000.mp4
    meta/robolearn.json                             robolearn's own episode metadata
                                                    (outcome, seed, policy, ...); other
                                                    tools ignore it

Frames. A robolearn episode of T steps has T+1 observations; it becomes T+1 frames, frame
t holding observation t and action t. The final frame (the final observation) repeats the
last action and has `next.done` set. Import reads every episode the same way, so an episode
of L frames from any LeRobot dataset becomes L-1 steps plus its final observation.

Videos are lossless H.264 RGB (see `robolearn.datasets.video`), so export -> import gives the
same arrays. Import validates the whole folder before it writes anything: a truncated or
malformed dataset raises `DatasetError` and imports nothing.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from robolearn.datasets.importing import ImportedEpisode, ImportReport, write_episodes
from robolearn.datasets.video import decode_frames, encode_lossless
from robolearn.errors import DatasetError
from robolearn.store import EpisodeData, Store

log = logging.getLogger(__name__)

CODEBASE_VERSION = "v3.0"
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
ROBOLEARN_META = "meta/robolearn.json"
CHUNKS_SIZE = 1000

STATE_KEY = "observation.state"
ENV_STATE_KEY = "observation.environment_state"
JOINT_KEY = "observation.joint_pos"
IMAGE_PREFIX = "observation.images."
_SINGLE_IMAGE_KEY = "observation.image"
_PROPRIO_NAMES = ["ee_x_m", "ee_y_m", "ee_z_m", "ee_qw", "ee_qx", "ee_qy", "ee_qz",
                  "gripper_width_m"]
_BAD_CAMERA_CHARS = re.compile(r"[^A-Za-z0-9_-]")

Progress = Callable[[int, int], None]


def _pyarrow() -> tuple[Any, Any]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise DatasetError("LeRobot datasets need pyarrow: pip install pyarrow") from exc
    return pa, pq


class ExportReport(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = Field(description="The dataset folder written.")
    episode_ids: list[int] = Field(description="Store episodes exported, in dataset order.")
    frames: int = Field(description="Frames written (sum of T+1 over episodes).")


# ----------------------------------------------------------------------------- export


def _check_uniform(episodes: list[EpisodeData]) -> None:
    """Every episode must share cameras, sizes, fps and array widths (one feature set)."""
    first = episodes[0]

    def signature(data: EpisodeData) -> dict[str, Any]:
        sig: dict[str, Any] = {"cameras": data.record.cameras, "fps": data.record.fps}
        for key, array in data.arrays.items():
            if key.startswith("images_") or key in ("proprio", "action", "state", "joint_pos"):
                sig[key] = array.shape[1:]
        return sig

    expected = signature(first)
    for data in episodes[1:]:
        seen = signature(data)
        if seen != expected:
            raise DatasetError(
                f"export: episode {data.record.id} has {seen}, episode {first.record.id} has "
                f"{expected}; a LeRobot dataset has one feature set: export them separately")


def _fixed_list(pa: Any, array: np.ndarray) -> Any:
    array = np.ascontiguousarray(array)
    return pa.FixedSizeListArray.from_arrays(pa.array(array.reshape(-1)), array.shape[1])


def _stats(values: np.ndarray) -> dict[str, Any]:
    values = np.asarray(values, dtype=np.float64)
    return {"mean": values.mean(axis=0).tolist(), "std": values.std(axis=0).tolist(),
            "min": values.min(axis=0).tolist(), "max": values.max(axis=0).tolist(),
            "count": [int(values.shape[0])]}


def _image_stats(frames: np.ndarray) -> dict[str, Any]:
    # LeRobot keeps image stats per channel in [0, 1], shaped [3, 1, 1].
    pixels = frames.reshape(-1, 3).astype(np.float64) / 255.0
    out = _stats(pixels)
    return {k: ([[[v]] for v in vals] if k != "count" else vals) for k, vals in out.items()}


def _scalar_feature(dtype: str) -> dict[str, Any]:
    return {"dtype": dtype, "shape": [1], "names": None}


def export_lerobot(
    store: Store,
    episode_ids: list[int],
    out_dir: Path,
    *,
    progress: Progress | None = None,
) -> ExportReport:
    """Write episodes as one LeRobotDataset v3.0 folder.

    Args:
        store: the open store.
        episode_ids: complete episodes sharing cameras, image sizes, fps and array widths.
        out_dir: the dataset folder; must not exist (or be empty). Written to a temporary
            sibling first and renamed into place, so a failure leaves nothing half-written.
        progress: called with (episodes done, total).

    Raises:
        DatasetError: no episodes, mixed feature sets, or out_dir is not empty.
        StoreError: an episode is missing or unreadable.
    """
    pa, pq = _pyarrow()
    if not episode_ids:
        raise DatasetError("export: no episodes given")
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise DatasetError(f"export: {out_dir} exists and is not empty; choose a new folder")
    episodes = [store.load_episode(i) for i in episode_ids]
    _check_uniform(episodes)
    first = episodes[0]
    fps = first.record.fps
    cameras = first.record.cameras
    tasks: list[str] = list(dict.fromkeys(e.record.task for e in episodes))

    columns: dict[str, list[np.ndarray]] = {}

    def add(key: str, values: np.ndarray) -> None:
        columns.setdefault(key, []).append(values)

    video_frames: dict[str, list[np.ndarray]] = {c: [] for c in cameras}
    episode_rows: list[dict[str, Any]] = []
    meta_episodes: list[dict[str, Any]] = []
    index = 0
    for e, data in enumerate(episodes):
        rec, arrays = data.record, data.arrays
        steps = rec.num_steps
        length = steps + 1
        add(STATE_KEY, arrays["proprio"].astype(np.float32))
        add("action", np.concatenate([arrays["action"], arrays["action"][-1:]]))
        add("timestamp", (np.arange(length) / fps).astype(np.float32))
        add("frame_index", np.arange(length, dtype=np.int64))
        add("episode_index", np.full(length, e, dtype=np.int64))
        add("index", np.arange(index, index + length, dtype=np.int64))
        add("task_index", np.full(length, tasks.index(rec.task), dtype=np.int64))
        add("next.reward", np.append(arrays["reward"], 0.0).astype(np.float32))
        add("next.done", np.arange(length) == steps)
        add("next.success", np.append(arrays["success"], False))
        add("intervention", np.append(arrays["intervention"], False))
        add("stamp_ns", np.append(arrays["stamp_ns"], arrays["stamp_ns"][-1]).astype(np.int64))
        if "state" in arrays:
            add(ENV_STATE_KEY, arrays["state"].astype(np.float32))
        if "joint_pos" in arrays:
            add(JOINT_KEY, arrays["joint_pos"].astype(np.float32))
        row: dict[str, Any] = {
            "episode_index": e, "tasks": [rec.task], "length": length,
            "data/chunk_index": 0, "data/file_index": 0,
            "dataset_from_index": index, "dataset_to_index": index + length,
            "meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0,
        }
        start_s = sum(len(f) for f in video_frames[cameras[0]]) / fps if cameras else 0.0
        for camera in cameras:
            key = IMAGE_PREFIX + camera
            video_frames[camera].append(data.images(camera))
            row.update({f"videos/{key}/chunk_index": 0, f"videos/{key}/file_index": 0,
                        f"videos/{key}/from_timestamp": start_s,
                        f"videos/{key}/to_timestamp": start_s + length / fps})
        episode_rows.append(row)
        meta_episodes.append({
            "episode_index": e, "store_episode_id": rec.id, "task": rec.task,
            "seed": rec.seed, "policy": rec.policy, "is_demo": rec.is_demo,
            "outcome": rec.outcome, "end_reason": rec.end_reason,
            "direction": rec.direction, "has_intervention": rec.has_intervention,
        })
        index += length
        if progress is not None:
            progress(e + 1, len(episodes))

    frames = {key: np.concatenate(parts) for key, parts in columns.items()}
    features: dict[str, Any] = {}
    for key, values in frames.items():
        dtype = {np.dtype(np.float32): "float32", np.dtype(np.int64): "int64",
                 np.dtype(bool): "bool"}[values.dtype]
        if values.ndim == 2:
            names = (_PROPRIO_NAMES if key == STATE_KEY and values.shape[1] == 8 else None)
            features[key] = {"dtype": dtype, "shape": [values.shape[1]], "names": names}
        else:
            features[key] = _scalar_feature(dtype)
    for camera in cameras:
        h, w = first.images(camera).shape[1:3]
        features[IMAGE_PREFIX + camera] = {
            "dtype": "video", "shape": [h, w, 3], "names": ["height", "width", "channels"],
            "info": {"video.height": h, "video.width": w, "video.codec": "h264",
                     "video.pix_fmt": "rgb24", "video.is_depth_map": False,
                     "video.fps": fps, "video.channels": 3, "has_audio": False},
        }
    info = {
        "codebase_version": CODEBASE_VERSION, "robot_type": "panda",
        "total_episodes": len(episodes), "total_frames": index, "total_tasks": len(tasks),
        "chunks_size": CHUNKS_SIZE, "data_files_size_in_mb": 100,
        "video_files_size_in_mb": 200, "fps": int(fps) if float(fps).is_integer() else fps,
        "splits": {"train": f"0:{len(episodes)}"}, "data_path": DATA_PATH,
        "video_path": VIDEO_PATH if cameras else None, "features": features,
    }
    stats = {key: _stats(v if v.ndim == 2 else v[:, None]) for key, v in frames.items()
             if v.dtype != bool}
    for camera in cameras:
        stats[IMAGE_PREFIX + camera] = _image_stats(np.concatenate(video_frames[camera]))

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        data_table = pa.table({
            key: (_fixed_list(pa, v) if v.ndim == 2 else pa.array(v))
            for key, v in frames.items()
        })
        _write_parquet(pq, data_table, tmp / DATA_PATH.format(chunk_index=0, file_index=0))
        _write_parquet(pq, pa.Table.from_pylist(episode_rows),
                       tmp / EPISODES_PATH.format(chunk_index=0, file_index=0))
        _write_tasks(pa, pq, tasks, tmp / "meta" / "tasks.parquet")
        for camera in cameras:
            path = tmp / VIDEO_PATH.format(video_key=IMAGE_PREFIX + camera, chunk_index=0,
                                           file_index=0)
            path.parent.mkdir(parents=True, exist_ok=True)
            encode_lossless(path, np.concatenate(video_frames[camera]), fps)
        (tmp / "meta" / "info.json").write_text(json.dumps(info, indent=4))
        (tmp / "meta" / "stats.json").write_text(json.dumps(stats, indent=4))
        (tmp / ROBOLEARN_META).write_text(json.dumps(
            {"format": 1, "cameras": list(cameras), "episodes": meta_episodes}, indent=2))
        if out_dir.exists():
            out_dir.rmdir()  # checked empty above
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("exported %d episodes (%d frames) to %s", len(episodes), index, out_dir)
    return ExportReport(path=str(out_dir), episode_ids=list(episode_ids), frames=index)


def _write_parquet(pq: Any, table: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)


def _write_tasks(pa: Any, pq: Any, tasks: list[str], path: Path) -> None:
    # LeRobot reads this with pandas, the task text being the frame's index: say so in the
    # pandas metadata pandas itself would have written.
    pandas_meta = {
        "index_columns": ["task"], "column_indexes": [],
        "columns": [{"name": "task_index", "field_name": "task_index", "pandas_type": "int64",
                     "numpy_type": "int64", "metadata": None},
                    {"name": "task", "field_name": "task", "pandas_type": "unicode",
                     "numpy_type": "object", "metadata": None}],
        "creator": {"library": "pyarrow", "version": pa.__version__},
        "pandas_version": "2.2.0",
    }
    table = pa.table({"task_index": pa.array(range(len(tasks)), pa.int64()),
                      "task": pa.array(tasks, pa.string())})
    table = table.replace_schema_metadata({b"pandas": json.dumps(pandas_meta).encode()})
    _write_parquet(pq, table, path)


# ----------------------------------------------------------------------------- import


def _camera_name(key: str) -> str | None:
    if key.startswith(IMAGE_PREFIX):
        raw = key[len(IMAGE_PREFIX):]
    elif key == _SINGLE_IMAGE_KEY:
        raw = "image"
    else:
        return None
    return _BAD_CAMERA_CHARS.sub("_", raw)[:64] or "image"


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise DatasetError(f"{path}: missing; is this a LeRobotDataset v3.0 folder?") from exc
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path}: not valid JSON ({exc})") from exc


def _read_tables(pa: Any, pq: Any, paths: list[Path], what: str) -> Any:
    if not paths:
        raise DatasetError(f"{what}: no parquet files found")
    try:
        return pa.concat_tables([pq.read_table(p) for p in paths], promote_options="default")
    except (pa.ArrowException, OSError) as exc:
        raise DatasetError(f"{what}: cannot read {[str(p) for p in paths]} ({exc}); the "
                           "file is truncated or not parquet") from exc


def _column(table: Any, key: str, what: str) -> np.ndarray:
    if key not in table.column_names:
        raise DatasetError(f"{what}: column {key!r} is missing; it has {table.column_names}")
    col = table.column(key).combine_chunks()
    import pyarrow as pa

    if pa.types.is_fixed_size_list(col.type) or pa.types.is_list(col.type):
        values = col.to_pylist()
        if any(v is None for v in values) or len({len(v) for v in values}) > 1:
            raise DatasetError(f"{what}: column {key!r} has missing or ragged rows")
        return np.asarray(values)
    if col.null_count:
        raise DatasetError(f"{what}: column {key!r} has {col.null_count} missing values")
    return col.to_numpy(zero_copy_only=False)


def _decode_png_column(table: Any, key: str, rows: np.ndarray, what: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    cells = table.column(key).take(rows).to_pylist()
    images = []
    for cell in cells:
        data = cell.get("bytes") if isinstance(cell, dict) else None
        if not data:
            raise DatasetError(f"{what}: image column {key!r} holds no embedded image bytes")
        try:
            images.append(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")))
        except (UnidentifiedImageError, OSError) as exc:
            raise DatasetError(f"{what}: an image in {key!r} cannot be decoded ({exc})") from exc
    return np.stack(images)


def read_lerobot(path: Path, *, progress: Progress | None = None) -> list[ImportedEpisode]:
    """Read and validate a whole LeRobotDataset v3.0 folder (nothing is written).

    Raises:
        DatasetError: missing or malformed files, inconsistent counts or indices,
            truncated videos.
    """
    pa, pq = _pyarrow()
    root = Path(path)
    if not root.is_dir():
        raise DatasetError(f"import: {root} is not a folder")
    info = _read_json(root / "meta" / "info.json")
    version = str(info.get("codebase_version", "")) if isinstance(info, dict) else ""
    if not version.startswith("v3"):
        raise DatasetError(f"{root}: codebase_version {version or 'missing'!r}; only "
                           "LeRobotDataset v3.0 is read (convert older datasets with "
                           "LeRobot's converter first)")
    try:
        fps = float(info["fps"])
        features: dict[str, Any] = dict(info["features"])
        total_frames, total_episodes = int(info["total_frames"]), int(info["total_episodes"])
    except (KeyError, TypeError, ValueError) as exc:
        raise DatasetError(f"{root}/meta/info.json: missing or bad field ({exc})") from exc
    if not fps > 0:
        raise DatasetError(f"{root}/meta/info.json: fps must be > 0, got {fps}")
    robolearn_path = root / ROBOLEARN_META
    extra = _read_json(robolearn_path) if robolearn_path.exists() else None
    meta_by_index = ({int(m["episode_index"]): m for m in extra.get("episodes", [])}
                     if isinstance(extra, dict) else {})

    episodes_table = _read_tables(pa, pq, sorted(root.glob("meta/episodes/chunk-*/file-*.parquet")),
                                  f"{root}/meta/episodes")
    data = _read_tables(pa, pq, sorted(root.glob("data/chunk-*/file-*.parquet")), f"{root}/data")
    if data.num_rows != total_frames:
        raise DatasetError(f"{root}: info.json says {total_frames} frames, the data files "
                           f"hold {data.num_rows}; the dataset is truncated")
    if episodes_table.num_rows != total_episodes:
        raise DatasetError(f"{root}: info.json says {total_episodes} episodes, "
                           f"meta/episodes holds {episodes_table.num_rows}")
    what = f"{root}/data"
    episode_index = _column(data, "episode_index", what).astype(np.int64)
    frame_index = _column(data, "frame_index", what).astype(np.int64)
    action = _column(data, "action", what).astype(np.float32)
    proprio = (_column(data, STATE_KEY, what).astype(np.float32) if STATE_KEY in data.column_names
               else np.zeros((data.num_rows, 0), np.float32))
    task_text = _task_texts(pa, pq, root, data)

    camera_keys = {k: _camera_name(k) for k, f in features.items()
                   if isinstance(f, dict) and f.get("dtype") in ("video", "image")
                   and _camera_name(k) is not None}
    video_cache: dict[Path, np.ndarray] = {}
    rows_meta = episodes_table.to_pylist()
    rows_meta.sort(key=lambda r: int(r.get("episode_index", -1)))
    out: list[ImportedEpisode] = []
    for n, row in enumerate(rows_meta):
        e = int(row.get("episode_index", -1))
        where = f"{root}: episode {e}"
        rows = np.flatnonzero(episode_index == e)
        length = int(row.get("length", -1))
        if rows.size != length or length < 2:
            raise DatasetError(f"{where}: meta/episodes says {length} frames, the data holds "
                               f"{rows.size} (an episode needs at least 2 frames)")
        rows = rows[np.argsort(frame_index[rows], kind="stable")]
        if not np.array_equal(frame_index[rows], np.arange(length)):
            raise DatasetError(f"{where}: frame_index is not 0..{length - 1}")
        images: dict[str, np.ndarray] = {}
        for key, camera in camera_keys.items():
            if features[key]["dtype"] == "image":
                images[camera] = _decode_png_column(data, key, rows, where)
            else:
                images[camera] = _episode_video(root, info, row, key, fps, length, where,
                                                video_cache)
        m = meta_by_index.get(e, {})
        steps = length - 1

        def optional(key: str, rows: np.ndarray = rows, where: str = where) -> np.ndarray | None:
            return (_column(data, key, where)[rows].astype(np.float32)
                    if key in data.column_names else None)

        def scalar(key: str, default: Any, dtype: Any, rows: np.ndarray = rows,
                   where: str = where, steps: int = steps) -> np.ndarray:
            if key in data.column_names:
                return _column(data, key, where)[rows][:steps].astype(dtype)
            return np.full(steps, default, dtype=dtype)

        reward = scalar("next.reward", 0.0, np.float32)
        success = scalar("next.success", False, bool)
        if "next.reward" not in data.column_names and "next.success" not in data.column_names:
            # A plain demonstration dataset: its episodes end in success.
            reward[-1], success[-1] = 1.0, True
        out.append(ImportedEpisode(
            task=str(m.get("task", task_text.get(int(rows[0]), "")))[:200],
            images=images,
            proprio=proprio[rows],
            action=action[rows][:steps],
            reward=reward,
            success=success,
            intervention=scalar("intervention", False, bool),
            stamp_ns=scalar("stamp_ns", 0, np.int64),
            state=optional(ENV_STATE_KEY),
            joint_pos=optional(JOINT_KEY),
            meta=m,
        ))
        if progress is not None:
            progress(n + 1, len(rows_meta))
    for ep in out:
        if not (np.all(np.isfinite(ep.proprio)) and np.all(np.isfinite(ep.action))):
            raise DatasetError(f"{root}: an episode of task {ep.task!r} has NaN or inf in "
                               "observation.state or action")
    return out


def _task_text_column(table: Any) -> str | None:
    """The column holding the task texts: `task`, or the pandas index LeRobot's writer
    stores them in (a DataFrame indexed by task text: `__index_level_0__` when unnamed)."""
    if "task" in table.column_names:
        return "task"
    meta = table.schema.pandas_metadata or {}
    for name in meta.get("index_columns", []):
        if (isinstance(name, str) and name in table.column_names
                and str(table.schema.field(name).type) in ("string", "large_string")):
            return name
    return None


def _task_texts(pa: Any, pq: Any, root: Path, data: Any) -> dict[int, str]:
    """Frame row -> task text (from meta/tasks.parquet), where the dataset has tasks."""
    path = root / "meta" / "tasks.parquet"
    if not path.exists() or "task_index" not in data.column_names:
        return {}
    table = _read_tables(pa, pq, [path], str(path))
    text = _task_text_column(table)
    if text is None:
        raise DatasetError(f"{path}: no task text: neither a 'task' column nor a pandas index "
                           f"of strings (columns {table.column_names})")
    by_index = dict(zip(_column(table, "task_index", str(path)).tolist(),
                        table.column(text).to_pylist(), strict=True))
    task_index = _column(data, "task_index", f"{root}/data")
    return {row: str(by_index.get(int(t), "")) for row, t in enumerate(task_index)}


def _episode_video(root: Path, info: dict[str, Any], row: dict[str, Any], key: str,
                   fps: float, length: int, where: str,
                   cache: dict[Path, np.ndarray]) -> np.ndarray:
    try:
        path = root / str(info["video_path"]).format(
            video_key=key, chunk_index=int(row[f"videos/{key}/chunk_index"]),
            file_index=int(row[f"videos/{key}/file_index"]))
        start = round(float(row[f"videos/{key}/from_timestamp"]) * fps)
    except (KeyError, TypeError, ValueError) as exc:
        raise DatasetError(f"{where}: no video span for {key!r} in meta/episodes ({exc})") from exc
    if path not in cache:
        cache[path] = decode_frames(path)
    frames = cache[path][start:start + length]
    if frames.shape[0] != length:
        raise DatasetError(f"{where}: video {path} has {frames.shape[0]} of the {length} "
                           f"frames from {start}; the video is truncated")
    return frames


def import_lerobot(
    store: Store,
    path: Path,
    *,
    run_name: str | None = None,
    is_demo: bool | None = None,
    progress: Progress | None = None,
) -> ImportReport:
    """Import a LeRobotDataset v3.0 folder as store episodes (by default demonstrations).

    The whole folder is read and validated first; only then is anything written.

    Args:
        store: the open store; a new run (kind "import") holds the episodes.
        path: the dataset folder.
        run_name: name of the new run (default: "import <folder name>").
        is_demo: mark episodes as demonstrations; None keeps what a robolearn export
            recorded, and marks foreign episodes as demonstrations.
        progress: called with (episodes done, total) while reading, then while writing.

    Raises:
        DatasetError: the folder is not a valid dataset; nothing was imported.
        StoreError: writing failed (the run is marked failed; episodes written so far stay).
    """
    root = Path(path)
    episodes = read_lerobot(root, progress=progress)
    fps = float(_read_json(root / "meta" / "info.json")["fps"])
    return write_episodes(store, episodes, fps=fps, run_name=run_name or f"import {root.name}",
                           source={"format": "lerobot-v3.0", "path": str(root.resolve())},
                           is_demo=is_demo, default_policy="lerobot-import", progress=progress)
