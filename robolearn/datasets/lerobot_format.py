"""The LeRobotDataset v3.0 layout both directions share: file names, feature keys, the
statistics LeRobot keeps per episode and per dataset, and the tasks table.

Statistics follow LeRobot 0.4.4's writer (`lerobot.datasets.compute_stats`): per feature
min, max, mean, std, count and the quantiles q01, q10, q50, q90, q99; vectors per
dimension, images per channel in [0, 1] shaped [3, 1, 1]. Each episode's go into
`meta/episodes` as columns `stats/<feature>/<stat>`, from which LeRobot's dataset tools
rebuild `meta/stats.json`; the dataset's are the count-weighted aggregate LeRobot's
`aggregate_stats` computes, so both agree.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from robolearn.errors import DatasetError

CODEBASE_VERSION = "v3.0"
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
TASKS_PATH = "meta/tasks.parquet"
# robolearn's own metadata beside LeRobot's (other tools ignore both files): per-episode
# store fields, and each episode's final observation, which a LeRobot frame cannot hold.
ROBOLEARN_META = "meta/robolearn.json"
ROBOLEARN_FINAL = "meta/robolearn_final.npz"
CHUNKS_SIZE = 1000

STATE_KEY = "observation.state"
ENV_STATE_KEY = "observation.environment_state"
JOINT_KEY = "observation.joint_pos"
IMAGE_PREFIX = "observation.images."
SINGLE_IMAGE_KEY = "observation.image"

QUANTILES = {"q01": 0.01, "q10": 0.10, "q50": 0.50, "q90": 0.90, "q99": 0.99}
STAT_NAMES = ("min", "max", "mean", "std", "count", *QUANTILES)
# LeRobot samples at most this many frames of an episode, and about this many pixels along
# an image side, for image statistics.
_IMAGE_STAT_FRAMES = 100
_IMAGE_STAT_SIDE = 150

Stats = dict[str, np.ndarray]


def pyarrow() -> tuple[Any, Any]:
    """pyarrow and pyarrow.parquet, or a DatasetError saying how to get them."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise DatasetError("LeRobot datasets need pyarrow: pip install pyarrow") from exc
    return pa, pq


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise DatasetError(f"{path}: missing; is this a LeRobotDataset v3.0 folder?") from exc
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path}: not valid JSON ({exc})") from exc


def feature_stats(values: np.ndarray) -> Stats:
    """Statistics of one numeric feature over an episode's frames.

    Args:
        values: [N] or [N, D]; bool, integer or float.

    Returns:
        Each statistic shaped [D] ([1] for a scalar feature); min and max keep the dtype.
    """
    v = values.reshape(len(values), -1)
    x = v.astype(np.float64)
    stats: Stats = {"min": v.min(axis=0), "max": v.max(axis=0), "mean": x.mean(axis=0),
                    "std": x.std(axis=0), "count": np.array([len(v)], np.int64)}
    for name, q in QUANTILES.items():
        stats[name] = np.quantile(x, q, axis=0)
    return stats


def image_stats(frames: np.ndarray) -> Stats:
    """Per-channel statistics of uint8 [N, H, W, 3] frames in [0, 1], each shaped [3, 1, 1].

    Like LeRobot, it samples up to 100 evenly spaced frames and strides large images; the
    count is the number of frames sampled.
    """
    n = len(frames)
    picks = np.unique(np.round(np.linspace(0, n - 1, min(n, _IMAGE_STAT_FRAMES))).astype(int))
    step = max(1, max(frames.shape[1:3]) // _IMAGE_STAT_SIDE)
    pixels = frames[picks, ::step, ::step].reshape(-1, 3).astype(np.float64) / 255.0
    stats = feature_stats(pixels)
    out = {k: v.reshape(3, 1, 1) for k, v in stats.items() if k != "count"}
    out["count"] = np.array([len(picks)], np.int64)
    return out


def aggregate_stats(per_episode: list[Stats]) -> Stats:
    """One feature's dataset statistics from its episodes', as LeRobot aggregates them:
    exact min, max, mean and std; quantiles count-weighted means of the episodes'."""
    counts = np.stack([s["count"] for s in per_episode]).astype(np.float64)  # [E, 1]
    total = counts.sum(axis=0)
    means = np.stack([s["mean"] for s in per_episode])
    weights = counts.reshape(counts.shape + (1,) * (means.ndim - counts.ndim))
    mean = (means * weights).sum(axis=0) / total
    variance = ((np.stack([s["std"] for s in per_episode]) ** 2 + (means - mean) ** 2)
                * weights).sum(axis=0) / total
    out: Stats = {"min": np.min(np.stack([s["min"] for s in per_episode]), axis=0),
                  "max": np.max(np.stack([s["max"] for s in per_episode]), axis=0),
                  "mean": mean, "std": np.sqrt(variance),
                  "count": total.astype(np.int64)}
    for name in QUANTILES:
        out[name] = (np.stack([s[name] for s in per_episode]) * weights).sum(axis=0) / total
    return out


def stats_columns(stats: dict[str, Stats]) -> dict[str, Any]:
    """An episode's statistics as LeRobot's `meta/episodes` columns (plain lists)."""
    return {f"stats/{key}/{name}": value.tolist()
            for key, feature in stats.items() for name, value in feature.items()}


def stats_json(stats: dict[str, Stats]) -> dict[str, Any]:
    return {key: {name: value.tolist() for name, value in feature.items()}
            for key, feature in stats.items()}


def write_parquet(pq: Any, table: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)


def write_tasks(pa: Any, pq: Any, tasks: list[str], path: Path) -> None:
    """meta/tasks.parquet as LeRobot writes it: a pandas frame indexed by the task text."""
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
    write_parquet(pq, table, path)


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


def read_tasks(pq: Any, path: Path) -> dict[int, str]:
    """task_index -> task text from meta/tasks.parquet (empty when the file is absent).

    Raises:
        DatasetError: unreadable, or no task text in it.
    """
    if not path.exists():
        return {}
    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several types for a bad file
        raise DatasetError(f"{path}: cannot be read ({exc}); the file is truncated or not "
                           "parquet") from exc
    text = _task_text_column(table)
    if text is None or "task_index" not in table.column_names:
        raise DatasetError(f"{path}: no task text: neither a 'task' column nor a pandas index "
                           f"of strings beside task_index (columns {table.column_names})")
    return {int(i): str(t) for i, t in zip(table.column("task_index").to_pylist(),
                                           table.column(text).to_pylist(), strict=True)}
