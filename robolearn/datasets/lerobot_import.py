"""Import a LeRobotDataset v3.0 folder (LeRobot's own writer's, or a robolearn export) into
the store, as demonstrations by default.

Two steps. `plan_lerobot` validates the whole folder and writes nothing: metadata, every
data file's indices, feature sizes against the robot's (`RobotSpec`), task texts, and each
video decoded once to prove it whole (frames are discarded). Then `iter_lerobot` decodes and
yields one episode at a time, which `write_episodes` stores before the next is read, so
memory holds one episode and one data file, never the dataset.

Frames. A LeRobot episode of L frames becomes L store steps: frame t's observation, action,
`next.reward` and `next.success` are step t's. The observation after the last action is not
in LeRobot's layout: a robolearn export keeps it in meta/robolearn_final.npz; otherwise the
last frame's observation stands in for it. A dataset without `next.reward` and
`next.success` is a plain demonstration set: its episodes end in success.
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from robolearn.datasets.importing import ImportedEpisode, ImportReport, RobotSpec, write_episodes
from robolearn.datasets.lerobot_format import (
    ENV_STATE_KEY,
    IMAGE_PREFIX,
    JOINT_KEY,
    ROBOLEARN_FINAL,
    ROBOLEARN_META,
    SINGLE_IMAGE_KEY,
    STATE_KEY,
    TASKS_PATH,
    pyarrow,
    read_json,
    read_tasks,
)
from robolearn.datasets.video import count_frames, decode_span
from robolearn.errors import DatasetError
from robolearn.store import Store

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]

_BAD_CAMERA_CHARS = re.compile(r"[^A-Za-z0-9_-]")
_MAP_ITEM = re.compile(r"^(?P<target>proprio|action|state|joint_pos|camera\.[A-Za-z0-9_-]+)="
                       r"(?P<key>[^\[\]]+)(?:\[(?P<select>[0-9:, ]+)\])?$")
_VECTOR_DEFAULTS = {"proprio": STATE_KEY, "action": "action", "state": ENV_STATE_KEY,
                    "joint_pos": JOINT_KEY}


@dataclass(frozen=True)
class FeatureSource:
    """Where one store field comes from: a dataset feature and, for vectors, which of its
    values (None: all)."""

    key: str
    select: tuple[int, ...] | None = None


@dataclass(frozen=True)
class FeatureMap:
    """Dataset features -> store fields. Empty: LeRobot's usual names (observation.state ->
    proprio, action, observation.environment_state -> state, observation.joint_pos ->
    joint_pos, every observation.images.<name> -> camera <name>)."""

    vectors: dict[str, FeatureSource] = field(default_factory=dict)
    cameras: dict[str, str] = field(default_factory=dict)  # store camera -> dataset key

    @classmethod
    def parse(cls, items: list[str]) -> FeatureMap:
        """From `TARGET=KEY[SELECT]` items: `proprio=observation.ee[0:8]`,
        `action=action[0,1,2,6]`, `camera.front=observation.images.top`.

        Raises:
            DatasetError: an item does not parse.
        """
        vectors: dict[str, FeatureSource] = {}
        cameras: dict[str, str] = {}
        for item in items:
            m = _MAP_ITEM.match(item.strip())
            if m is None:
                raise DatasetError(
                    f"--map {item!r}: expected TARGET=KEY or TARGET=KEY[SELECT], TARGET one of "
                    "proprio, action, state, joint_pos, camera.<name>; SELECT like 0:8 or 0,1,2")
            target, key = m["target"], m["key"].strip()
            if target.startswith("camera."):
                cameras[target[len("camera."):]] = key
            else:
                vectors[target] = FeatureSource(key, _selection(m["select"], item))
        return cls(vectors, cameras)

    @property
    def is_default(self) -> bool:
        return not self.vectors and not self.cameras


def _selection(text: str | None, item: str) -> tuple[int, ...] | None:
    if not text:
        return None
    picks: list[int] = []
    for part in text.split(","):
        if ":" in part:
            lo, _, hi = part.partition(":")
            if not lo.strip() or not hi.strip():
                raise DatasetError(f"--map {item!r}: a range needs both ends, like 0:8")
            picks.extend(range(int(lo), int(hi)))
        elif part.strip():
            picks.append(int(part))
    return tuple(picks)


@dataclass
class _Episode:
    index: int
    length: int
    data_file: Path
    task_text: str
    task: str
    video_starts: dict[str, tuple[Path, int]]  # dataset key -> (file, first frame)
    meta: dict[str, Any]


@dataclass
class LeRobotPlan:
    """A validated dataset, ready to import: what each episode reads from where."""

    root: Path
    fps: float
    features: dict[str, Any]
    vectors: dict[str, FeatureSource]  # store field -> source (absent fields: none)
    cameras: dict[str, str]  # store camera -> dataset key
    episodes: list[_Episode]
    finals: dict[str, np.ndarray] | None  # robolearn export: final observations by episode
    has_outcome: bool  # next.reward or next.success present

    @property
    def frames(self) -> int:
        return sum(e.length for e in self.episodes)


def _camera_name(key: str) -> str | None:
    if key.startswith(IMAGE_PREFIX):
        raw = key[len(IMAGE_PREFIX):]
    elif key == SINGLE_IMAGE_KEY:
        raw = "image"
    else:
        return None
    return _BAD_CAMERA_CHARS.sub("_", raw)[:64] or "image"


def _read_info(root: Path) -> tuple[dict[str, Any], float, dict[str, Any]]:
    info = read_json(root / "meta" / "info.json")
    version = str(info.get("codebase_version", "")) if isinstance(info, dict) else ""
    if not version.startswith("v3"):
        raise DatasetError(f"{root}: codebase_version {version or 'missing'!r}; only "
                           "LeRobotDataset v3.0 is read (convert older datasets with "
                           "LeRobot's converter first)")
    try:
        fps = float(info["fps"])
        features: dict[str, Any] = dict(info["features"])
        int(info["total_frames"]), int(info["total_episodes"])
    except (KeyError, TypeError, ValueError) as exc:
        raise DatasetError(f"{root}/meta/info.json: missing or bad field ({exc})") from exc
    if not fps > 0:
        raise DatasetError(f"{root}/meta/info.json: fps must be > 0, got {fps}")
    return info, fps, features


def _read_table(pq: Any, path: Path, columns: list[str] | None = None) -> Any:
    try:
        return pq.read_table(path, columns=columns)
    except Exception as exc:  # pyarrow raises several types for a bad file
        raise DatasetError(f"{path}: cannot be read ({exc}); the file is truncated or not "
                           "parquet") from exc


def _episode_rows(pq: Any, root: Path) -> list[dict[str, Any]]:
    """meta/episodes rows without their stats columns, by episode_index."""
    paths = sorted(root.glob("meta/episodes/chunk-*/file-*.parquet"))
    if not paths:
        raise DatasetError(f"{root}/meta/episodes: no parquet files found")
    rows: list[dict[str, Any]] = []
    for path in paths:
        try:
            names = pq.read_schema(path).names
        except Exception as exc:
            raise DatasetError(f"{path}: cannot be read ({exc}); the file is truncated or "
                               "not parquet") from exc
        keep = [n for n in names if not n.startswith("stats/")]
        rows.extend(_read_table(pq, path, keep).to_pylist())
    rows.sort(key=lambda r: int(r.get("episode_index", -1)))
    return rows


def _resolve_map(root: Path, features: dict[str, Any], feature_map: FeatureMap,
                 spec: RobotSpec) -> tuple[dict[str, FeatureSource], dict[str, str]]:
    """Which dataset feature feeds each store field, checked against the robot's sizes."""
    vectors: dict[str, FeatureSource] = {}
    for target, default in _VECTOR_DEFAULTS.items():
        source = feature_map.vectors.get(target)
        if source is None and default in features:
            source = FeatureSource(default)
        if source is None:
            continue
        if source.key not in features:
            raise DatasetError(f"{root}: --map {target}={source.key}: the dataset has no such "
                               f"feature; it has {sorted(features)}")
        width = int(np.prod(features[source.key].get("shape") or [1]))
        if source.select is not None and any(not 0 <= i < width for i in source.select):
            raise DatasetError(f"{root}: --map {target}={source.key}[...]: {source.key} has "
                               f"{width} values, the selection {list(source.select)} is outside")
        vectors[target] = source
    wants = {"proprio": spec.proprio_dim, "action": spec.action_dim}
    for target, want in wants.items():
        source = vectors.get(target)
        have = 0 if source is None else (
            len(source.select) if source.select is not None
            else int(np.prod(features[source.key].get("shape") or [1])))
        if have != want:
            what = "no feature" if source is None else f"{source.key} with {have} values"
            raise DatasetError(
                f"{root}: the robot's {target} has {want} values, the dataset gives {what}; "
                f"map a feature that fits (--map {target}=KEY[START:END]) or import into a "
                "run whose robot matches (--config)")

    if feature_map.cameras:
        cameras = dict(feature_map.cameras)
        for camera, key in cameras.items():
            if features.get(key, {}).get("dtype") not in ("video", "image"):
                raise DatasetError(f"{root}: --map camera.{camera}={key}: not an image or "
                                   f"video feature of the dataset")
    else:
        cameras = {}
        for key, feature in features.items():
            name = _camera_name(key)
            if name is not None and isinstance(feature, dict) and feature.get("dtype") in (
                    "video", "image"):
                cameras[name] = key
    if spec.cameras is not None:
        for camera, hw in spec.cameras.items():
            key = cameras.get(camera)
            if key is None:
                raise DatasetError(
                    f"{root}: the run's camera {camera!r} is not in the dataset, which has "
                    f"{sorted(cameras)}; map one with --map camera.{camera}=KEY")
            shape = tuple(int(v) for v in features[key].get("shape", [])[:2])
            if shape != tuple(hw):
                raise DatasetError(
                    f"{root}: {key} is {shape[0] if shape else '?'}x"
                    f"{shape[1] if len(shape) > 1 else '?'} (HxW), the run's camera "
                    f"{camera!r} is {hw[0]}x{hw[1]}; the learner would refuse these episodes")
        cameras = {c: cameras[c] for c in spec.cameras}
    return vectors, cameras


def _resolve_task(text: str, meta: dict[str, Any], tasks: dict[str, str]) -> str:
    if text in tasks:
        return tasks[text]
    if "*" in tasks:
        return tasks["*"]
    if meta.get("task"):
        return str(meta["task"])[:200]
    from robolearn.sim.tasks import TASK_REGISTRY

    for name, entry in TASK_REGISTRY.items():
        if text in (name, entry.description):
            return name
    return text[:200]


def _robolearn_extra(root: Path, total: int) -> tuple[dict[int, dict[str, Any]],
                                                       dict[str, np.ndarray] | None]:
    path = root / ROBOLEARN_META
    if not path.exists():
        return {}, None
    extra = read_json(path)
    meta = ({int(m["episode_index"]): m for m in extra.get("episodes", [])}
            if isinstance(extra, dict) else {})
    finals = None
    final_path = root / ROBOLEARN_FINAL
    if final_path.exists():
        try:
            with np.load(final_path) as npz:
                finals = {key: npz[key] for key in npz.files}
        except (OSError, ValueError) as exc:
            raise DatasetError(f"{final_path}: cannot be read ({exc})") from exc
        if any(len(v) != total for v in finals.values()):
            finals = None  # not this dataset's episodes any more (edited by another tool)
    return meta, finals


def _check_data_file(pq: Any, path: Path, vectors: dict[str, FeatureSource],
                     episodes: list[_Episode], image_keys: list[str],
                     task_texts: dict[int, str]) -> int:
    """Indices, finiteness and embedded images of one data file's episodes, whose task text
    (of their first frame) it sets; returns its row count."""
    from PIL import Image, UnidentifiedImageError

    wanted = {"episode_index", "frame_index", "task_index", *(s.key for s in vectors.values()),
              *image_keys}
    names = pq.read_schema(path).names if path.exists() else []
    if not path.exists():
        raise DatasetError(f"{path}: missing; the dataset is truncated")
    missing = sorted({"episode_index", "frame_index"} - set(names))
    if missing:
        raise DatasetError(f"{path}: columns {missing} are missing; it has {names}")
    table = _read_table(pq, path, [n for n in names if n in wanted])
    episode_index = table.column("episode_index").to_numpy()
    frame_index = table.column("frame_index").to_numpy()
    for ep in episodes:
        rows = np.flatnonzero(episode_index == ep.index)
        where = f"{path}: episode {ep.index}"
        if rows.size != ep.length:
            raise DatasetError(f"{where}: meta/episodes says {ep.length} frames, the data file "
                               f"holds {rows.size}; the dataset is truncated")
        if not np.array_equal(np.sort(frame_index[rows]), np.arange(ep.length)):
            raise DatasetError(f"{where}: frame_index is not 0..{ep.length - 1}")
        if task_texts and "task_index" in table.column_names:
            first = rows[np.argmin(frame_index[rows])]
            ep.task_text = task_texts.get(int(table.column("task_index")[first].as_py()),
                                          ep.task_text)
        for target, source in vectors.items():
            values = _vector(table, source, rows, where)
            if not np.all(np.isfinite(values)):
                raise DatasetError(f"{where}: {source.key} (the store's {target}) has NaN or "
                                   "inf")
        for key in image_keys:
            for cell in table.column(key).take(rows).to_pylist():
                data = cell.get("bytes") if isinstance(cell, dict) else None
                try:
                    Image.open(io.BytesIO(data or b"")).verify()
                except (UnidentifiedImageError, OSError) as exc:
                    raise DatasetError(f"{where}: an image in {key!r} is missing or cannot be "
                                       f"decoded ({exc})") from exc
    return int(table.num_rows)


def _vector(table: Any, source: FeatureSource, rows: np.ndarray, where: str) -> np.ndarray:
    import pyarrow as pa

    if source.key not in table.column_names:
        raise DatasetError(f"{where}: column {source.key!r} is missing")
    column = table.column(source.key).take(rows).combine_chunks()
    if pa.types.is_fixed_size_list(column.type) or pa.types.is_list(column.type):
        if column.null_count or column.flatten().null_count:
            raise DatasetError(f"{where}: column {source.key!r} has missing values")
        values = np.asarray(column.flatten().to_numpy(zero_copy_only=False), np.float64)
        width = len(values) // max(1, len(column))
        if width * len(column) != len(values):
            raise DatasetError(f"{where}: column {source.key!r} has ragged rows")
        values = values.reshape(len(column), width)
    else:
        if column.null_count:
            raise DatasetError(f"{where}: column {source.key!r} has missing values")
        values = np.asarray(column.to_numpy(zero_copy_only=False), np.float64)[:, None]
    if source.select is not None:
        values = values[:, list(source.select)]
    return values.astype(np.float32)


def plan_lerobot(
    path: Path,
    *,
    spec: RobotSpec | None = None,
    feature_map: FeatureMap | None = None,
    tasks: dict[str, str] | None = None,
) -> LeRobotPlan:
    """Validate a LeRobotDataset v3.0 folder for import; nothing is written.

    Args:
        path: the dataset folder.
        spec: the robot the episodes must fit (default: `RobotSpec.default()`).
        feature_map: dataset features -> store fields (default: LeRobot's usual names).
        tasks: dataset task text -> store task; the key "*" maps every text. Unmapped texts
            keep a robolearn export's task id, or a sim task whose description or name they
            are, else the text itself.

    Raises:
        DatasetError: missing or malformed files, inconsistent counts or indices, truncated
            videos, sizes that do not fit the robot, or a --task text the dataset lacks.
    """
    _, pq = pyarrow()
    root = Path(path)
    if not root.is_dir():
        raise DatasetError(f"import: {root} is not a folder")
    info, fps, features = _read_info(root)
    spec = spec or RobotSpec.default()
    vectors, cameras = _resolve_map(root, features, feature_map or FeatureMap(), spec)
    rows = _episode_rows(pq, root)
    if len(rows) != int(info["total_episodes"]):
        raise DatasetError(f"{root}: info.json says {info['total_episodes']} episodes, "
                           f"meta/episodes holds {len(rows)}")
    task_texts = read_tasks(pq, root / TASKS_PATH)
    tasks = dict(tasks or {})
    unknown = sorted(set(tasks) - set(task_texts.values()) - {"*"})
    if unknown:
        raise DatasetError(f"{root}: --task names texts the dataset does not have: {unknown}; "
                           f"its task texts are {sorted(set(task_texts.values()))}")
    meta_by_index, finals = _robolearn_extra(root, len(rows))
    if feature_map is not None and not feature_map.is_default:
        finals = None  # they hold the store fields of the export's own mapping

    episodes: list[_Episode] = []
    for row in rows:
        e = int(row.get("episode_index", -1))
        length = int(row.get("length", -1))
        if length < 1:
            raise DatasetError(f"{root}: episode {e} has {length} frames")
        try:
            data_file = root / str(info["data_path"]).format(
                chunk_index=int(row["data/chunk_index"]), file_index=int(row["data/file_index"]))
            starts = {key: (root / str(info["video_path"]).format(
                video_key=key, chunk_index=int(row[f"videos/{key}/chunk_index"]),
                file_index=int(row[f"videos/{key}/file_index"])),
                round(float(row[f"videos/{key}/from_timestamp"]) * fps))
                for key in cameras.values() if features[key]["dtype"] == "video"}
        except (KeyError, TypeError, ValueError) as exc:
            raise DatasetError(f"{root}: episode {e}: no data or video span in meta/episodes "
                               f"({exc})") from exc
        listed = row.get("tasks") or []
        episodes.append(_Episode(e, length, data_file, str(listed[0]) if listed else "", "",
                                 starts, meta_by_index.get(e, {})))

    image_keys = [k for k in cameras.values() if features[k]["dtype"] == "image"]
    by_file: dict[Path, list[_Episode]] = {}
    for ep in episodes:
        by_file.setdefault(ep.data_file, []).append(ep)
    frames = sum(_check_data_file(pq, f, vectors, eps, image_keys, task_texts)
                 for f, eps in by_file.items())
    for ep in episodes:
        ep.task = _resolve_task(ep.task_text, ep.meta, tasks)
    if frames != int(info["total_frames"]):
        raise DatasetError(f"{root}: info.json says {info['total_frames']} frames, the data "
                           f"files hold {frames}; the dataset is truncated")
    _check_videos(root, episodes, features)
    has_outcome = any(k in features for k in ("next.reward", "next.success"))
    return LeRobotPlan(root, fps, features, vectors, cameras, episodes, finals, has_outcome)


def _check_videos(root: Path, episodes: list[_Episode], features: dict[str, Any]) -> None:
    counted: dict[Path, tuple[int, tuple[int, int]]] = {}
    for ep in episodes:
        for key, (path, start) in ep.video_starts.items():
            if path not in counted:
                counted[path] = count_frames(path)
            count, size = counted[path]
            shape = tuple(int(v) for v in features[key].get("shape", [])[:2])
            if shape and size != shape:
                raise DatasetError(f"video {path}: {size[0]}x{size[1]} frames, info.json says "
                                   f"{key} is {shape[0]}x{shape[1]}")
            if start + ep.length > count:
                raise DatasetError(f"video {path}: {count} frames, episode {ep.index} needs "
                                   f"{start}..{start + ep.length - 1}; the video is truncated")


def _decode_images(table: Any, key: str, rows: np.ndarray) -> np.ndarray:
    from PIL import Image

    cells = table.column(key).take(rows).to_pylist()
    return np.stack([np.asarray(Image.open(io.BytesIO(c["bytes"])).convert("RGB"))
                     for c in cells])


def _with_final(values: np.ndarray, final: np.ndarray | None) -> np.ndarray:
    last = values[-1:] if final is None else final[None].astype(values.dtype)
    return np.concatenate([values, last])


def _read_episode(plan: LeRobotPlan, ep: _Episode, table: Any,
                  finals: dict[str, np.ndarray]) -> ImportedEpisode:
    where = f"{plan.root}: episode {ep.index}"
    rows = np.flatnonzero(table.column("episode_index").to_numpy() == ep.index)
    rows = rows[np.argsort(table.column("frame_index").to_numpy()[rows], kind="stable")]

    def vector(target: str) -> np.ndarray | None:
        source = plan.vectors.get(target)
        if source is None:
            return None
        values = _vector(table, source, rows, where)
        return values if target == "action" else _with_final(values, finals.get(target))

    def scalar(key: str, default: Any, dtype: Any) -> np.ndarray:
        if key in table.column_names:
            return table.column(key).take(rows).to_numpy(zero_copy_only=False).astype(dtype)
        return np.full(len(rows), default, dtype=dtype)

    images = {}
    for camera, key in plan.cameras.items():
        if key in ep.video_starts:
            path, start = ep.video_starts[key]
            frames = decode_span(path, start, ep.length, plan.fps)
        else:
            frames = _decode_images(table, key, rows)
        images[camera] = _with_final(frames, finals.get(f"images_{camera}"))
    reward = scalar("next.reward", 0.0, np.float32)
    success = scalar("next.success", False, bool)
    if not plan.has_outcome:
        reward[-1], success[-1] = 1.0, True
    proprio, action = vector("proprio"), vector("action")
    if proprio is None or action is None:  # _resolve_map requires both; say so if not
        raise DatasetError(f"{where}: no proprio or action feature")
    return ImportedEpisode(
        task=ep.task, images=images, proprio=proprio, action=action, reward=reward,
        success=success, intervention=scalar("intervention", False, bool),
        stamp_ns=scalar("stamp_ns", 0, np.int64), state=vector("state"),
        joint_pos=vector("joint_pos"), meta=ep.meta)


def iter_lerobot(plan: LeRobotPlan) -> Iterator[ImportedEpisode]:
    """The planned episodes, decoded one at a time (one data file cached)."""
    _, pq = pyarrow()
    table: Any = None
    table_path: Path | None = None
    for n, ep in enumerate(plan.episodes):
        if ep.data_file != table_path:
            table, table_path = None, ep.data_file  # free the last file before reading this
            table = _read_table(pq, ep.data_file)
        finals = ({key: values[n] for key, values in plan.finals.items()}
                  if plan.finals is not None else {})
        yield _read_episode(plan, ep, table, finals)


def read_lerobot(path: Path, **plan_args: Any) -> Iterator[ImportedEpisode]:
    """Validate a dataset (`plan_lerobot`), then yield its episodes one at a time."""
    return iter_lerobot(plan_lerobot(path, **plan_args))


def import_lerobot(
    store: Store,
    path: Path,
    *,
    run_name: str | None = None,
    is_demo: bool | None = None,
    spec: RobotSpec | None = None,
    feature_map: FeatureMap | None = None,
    tasks: dict[str, str] | None = None,
    progress: Progress | None = None,
) -> ImportReport:
    """Import a LeRobotDataset v3.0 folder as store episodes (by default demonstrations).

    The whole folder is validated first (`plan_lerobot`); only then is anything written,
    one episode at a time.

    Args:
        store: the open store; a new run (kind "import") holds the episodes.
        path: the dataset folder.
        run_name: name of the new run (default: "import <folder name>").
        is_demo: mark episodes as demonstrations; None keeps what a robolearn export
            recorded, and marks foreign episodes as demonstrations.
        spec, feature_map, tasks: as `plan_lerobot`'s.
        progress: called with (episodes written, total).

    Raises:
        DatasetError: the folder is not a valid dataset, or does not fit the robot; nothing
            was imported.
        StoreError: writing failed (the run is marked failed; episodes written so far stay).
    """
    plan = plan_lerobot(path, spec=spec, feature_map=feature_map, tasks=tasks)
    root = plan.root
    return write_episodes(store, iter_lerobot(plan), total=len(plan.episodes), fps=plan.fps,
                          run_name=run_name or f"import {root.name}",
                          source={"format": "lerobot-v3.0", "path": str(root.resolve())},
                          is_demo=is_demo, default_policy="lerobot-import", progress=progress)
