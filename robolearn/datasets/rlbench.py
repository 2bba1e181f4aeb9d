"""Import RLBench demonstration folders as store demonstrations for CQN.

RLBench's dataset generator writes, per episode::

    <task>/variation<N>/episodes/episode<K>/low_dim_obs.pkl     a pickled rlbench.demo.Demo
    <task>/variation<N>/episodes/episode<K>/<camera>_rgb/<i>.png one image per observation

`low_dim_obs.pkl` is a pickle, and unpickling runs whatever the file names. It is read
with `RestrictedUnpickler`, which resolves only RLBench's `Demo` and `Observation` classes
(to the local stand-ins below, so RLBench need not be installed) and the numpy functions
that rebuild arrays; a file naming anything else is refused before any of it runs.

Conversion to robolearn's layout: proprio = gripper position, orientation (RLBench's
x, y, z, w reordered to w, x, y, z) and gripper width (the two finger joints); actions are
the end-effector deltas between consecutive observations in the run's action scale plus the
next observation's gripper state (-1 open, +1 closed); the last step is the success.
"""

from __future__ import annotations

import io
import logging
import pickle
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

try:  # numpy 2 moved the array rebuilders; pickles name either module
    from numpy._core import multiarray as _multiarray
except ImportError:  # pragma: no cover - numpy 1
    from numpy.core import multiarray as _multiarray

from robolearn.actionspace import ActionScale
from robolearn.datasets.importing import ImportedEpisode, ImportReport, write_episodes
from robolearn.errors import DatasetError
from robolearn.store import Store

log = logging.getLogger(__name__)

LOW_DIM_PICKLE = "low_dim_obs.pkl"
VARIATION_DESCRIPTIONS = "variation_descriptions.pkl"
RLBENCH_CAMERAS = ("left_shoulder", "right_shoulder", "overhead", "wrist", "front")
# Panda fully open: each finger joint at 0.04 m.
_PANDA_MAX_WIDTH_M = 0.08

Progress = Callable[[int, int], None]


class RLBenchObservation:
    """Stand-in for `rlbench.backend.observation.Observation`: keeps its attributes."""

    def __setstate__(self, state: object) -> None:
        if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
            raise pickle.UnpicklingError("an Observation's state must be a dict of names")
        self.__dict__.update(state)

    def get(self, name: str) -> Any:
        return self.__dict__.get(name)


class RLBenchDemo:
    """Stand-in for `rlbench.demo.Demo`: a list of observations and the random seed."""

    def __setstate__(self, state: object) -> None:
        if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
            raise pickle.UnpicklingError("a Demo's state must be a dict of names")
        self.__dict__.update(state)

    @property
    def observations(self) -> list[RLBenchObservation]:
        observations = self.__dict__.get("_observations")
        if not isinstance(observations, list) or not all(
                isinstance(o, RLBenchObservation) for o in observations):
            raise DatasetError("the Demo holds no list of Observation objects")
        return observations


class RefusedGlobal(pickle.UnpicklingError):
    """A pickle named a class or function outside the allowed set."""


class RestrictedUnpickler(pickle.Unpickler):
    """Resolves only RLBench's demo classes (to stand-ins) and numpy's array rebuilders."""

    ALLOWED: dict[tuple[str, str], object] = {  # noqa: RUF012 - a fixed table, never mutated
        ("rlbench.demo", "Demo"): RLBenchDemo,
        ("rlbench.backend.observation", "Observation"): RLBenchObservation,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("numpy.core.multiarray", "_reconstruct"): _multiarray._reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _multiarray._reconstruct,
        ("numpy.core.multiarray", "scalar"): _multiarray.scalar,
        ("numpy._core.multiarray", "scalar"): _multiarray.scalar,
    }

    def find_class(self, module: str, name: str) -> object:
        try:
            return self.ALLOWED[(module, name)]
        except KeyError:
            raise RefusedGlobal(
                f"refused to load {module}.{name}: only RLBench's Demo/Observation and "
                "numpy arrays may appear in an RLBench pickle") from None


def restricted_load(path: Path) -> object:
    """Unpickle an RLBench file with `RestrictedUnpickler`.

    Raises:
        DatasetError: the file names a class outside the allowed set, or is not a pickle.
    """
    try:
        data = Path(path).read_bytes()
        return RestrictedUnpickler(io.BytesIO(data)).load()
    except RefusedGlobal as exc:
        raise DatasetError(f"{path}: {exc}") from exc
    except (pickle.UnpicklingError, OSError, EOFError, ValueError, TypeError, AttributeError,
            IndexError) as exc:
        raise DatasetError(f"{path}: not a readable RLBench pickle "
                           f"({type(exc).__name__}: {exc})") from exc


def _natural_key(path: Path) -> list[object]:
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", str(path))]


def find_episodes(root: Path) -> list[Path]:
    """Episode folders (holding low_dim_obs.pkl) under `root`, in natural order."""
    return sorted((p.parent for p in Path(root).rglob(LOW_DIM_PICKLE)), key=_natural_key)


def _vector(obs: RLBenchObservation, name: str, size: int | None, where: str) -> np.ndarray:
    value = obs.get(name)
    array = np.asarray(value, dtype=np.float64) if value is not None else None
    if array is None or array.ndim != 1 or (size is not None and array.shape[0] != size):
        raise DatasetError(f"{where}: observation field {name!r} should be a vector"
                           f"{'' if size is None else f' of {size}'}, got {value!r:.80}")
    if not np.all(np.isfinite(array)):
        raise DatasetError(f"{where}: observation field {name!r} has NaN or inf")
    return array


def _proprio(obs: RLBenchObservation, where: str) -> np.ndarray:
    pose = _vector(obs, "gripper_pose", 7, where)  # x y z qx qy qz qw
    fingers = obs.get("gripper_joint_positions")
    if fingers is not None:
        width = float(np.sum(_vector(obs, "gripper_joint_positions", None, where)))
    else:
        width = float(obs.get("gripper_open") or 0.0) * _PANDA_MAX_WIDTH_M
    return np.concatenate([pose[:3], pose[[6, 3, 4, 5]], [width]]).astype(np.float32)


def _images(folder: Path, camera: str, count: int, where: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    image_dir = folder / f"{camera}_rgb"
    frames = []
    for i in range(count):
        path = image_dir / f"{i}.png"
        try:
            with Image.open(path) as image:
                frames.append(np.asarray(image.convert("RGB")))
        except FileNotFoundError as exc:
            raise DatasetError(f"{where}: {path} is missing; the demo has {count} observations "
                               f"and needs one {camera} image each") from exc
        except (UnidentifiedImageError, OSError) as exc:
            raise DatasetError(f"{where}: {path} is not a readable image ({exc})") from exc
    if len({f.shape for f in frames}) != 1:
        raise DatasetError(f"{where}: {camera} images differ in size")
    return np.stack(frames)


def read_rlbench_episode(folder: Path, cameras: Sequence[str], task: str,
                         scale: ActionScale) -> tuple[ImportedEpisode, int]:
    """One episode folder as a validated episode; also how many actions were clipped."""
    where = str(folder)
    demo = restricted_load(folder / LOW_DIM_PICKLE)
    if not isinstance(demo, RLBenchDemo):
        raise DatasetError(f"{where}: {LOW_DIM_PICKLE} holds {type(demo).__name__}, not a Demo")
    observations = demo.observations
    if len(observations) < 2:
        raise DatasetError(f"{where}: the demo has {len(observations)} observations; an "
                           "episode needs at least 2")
    proprio = np.stack([_proprio(o, f"{where}[{i}]") for i, o in enumerate(observations)])
    joints = [o.get("joint_positions") for o in observations]
    joint_pos = (np.stack([_vector(o, "joint_positions", None, f"{where}[{i}]")
                           for i, o in enumerate(observations)]).astype(np.float32)
                 if all(j is not None for j in joints) else None)
    low_dim = [o.get("task_low_dim_state") for o in observations]
    state = (np.stack([_vector(o, "task_low_dim_state", None, f"{where}[{i}]")
                       for i, o in enumerate(observations)]).astype(np.float32)
             if all(s is not None for s in low_dim) else None)
    gripper_open = np.array([float(o.get("gripper_open") or 0.0) for o in observations])

    delta = np.diff(proprio[:, :3].astype(np.float64), axis=0) / scale.xyz_m  # [T, 3]
    clipped = int(np.sum(np.any(np.abs(delta) > 1.0, axis=1)))
    parts = [np.clip(delta, -1.0, 1.0)]
    if scale.use_yaw:
        parts.append(np.zeros((delta.shape[0], 1)))
    parts.append(np.where(gripper_open[1:] > 0.5, -1.0, 1.0)[:, None])
    action = np.concatenate(parts, axis=1).astype(np.float32)
    steps = action.shape[0]
    success = np.zeros(steps, bool)
    success[-1] = True
    images = {c: _images(folder, c, len(observations), where) for c in cameras}
    return ImportedEpisode(
        task=task, images=images, proprio=proprio, action=action,
        reward=success.astype(np.float32), success=success,
        intervention=np.zeros(steps, bool), stamp_ns=np.zeros(steps, np.int64),
        state=state, joint_pos=joint_pos,
        meta={"policy": "rlbench-demo", "outcome": "success", "end_reason": "rlbench demo",
              "is_demo": True},
    ), clipped


def _task_name(root: Path, folder: Path) -> str:
    for parent in folder.parents:
        if re.fullmatch(r"variation\d+", parent.name):
            return parent.parent.name
        if parent == root:
            break
    return root.name


def import_rlbench(
    store: Store,
    root: Path,
    *,
    cameras: Sequence[str] = ("front", "wrist"),
    task: str | None = None,
    scale: ActionScale | None = None,
    fps: float = 10.0,
    progress: Progress | None = None,
) -> ImportReport:
    """Import every RLBench demo under `root` as successful demonstrations.

    Args:
        store: the open store; a new run (kind "import") holds the episodes.
        root: a task folder, a variation folder, an episodes folder or one episode.
        cameras: RLBench cameras whose `<camera>_rgb` images to import (store names).
        task: the store task name (default: the folder above `variation<N>`).
        scale: the action scale deltas are expressed in (default: robolearn's).
        fps: playback rate of the imported episodes' videos.
        progress: called with (episodes done, total) while reading, then while writing.

    Raises:
        DatasetError: no demos, a refused or malformed pickle, missing images; nothing
            was imported.
    """
    scale = scale or ActionScale()
    bad = [c for c in cameras if c not in RLBENCH_CAMERAS]
    if bad:
        raise DatasetError(f"import rlbench: unknown cameras {bad}; RLBench has "
                           f"{list(RLBENCH_CAMERAS)}")
    root = Path(root)
    folders = find_episodes(root)
    if not folders:
        raise DatasetError(f"import rlbench: no {LOW_DIM_PICKLE} under {root}; point at a "
                           "task, variation or episode folder of RLBench's dataset generator")
    episodes: list[ImportedEpisode] = []
    clipped = 0
    for n, folder in enumerate(folders):
        episode, clips = read_rlbench_episode(folder, cameras, task or _task_name(root, folder),
                                              scale)
        episodes.append(episode)
        clipped += clips
        if progress is not None:
            progress(n + 1, len(folders))
    if clipped:
        log.warning("import rlbench: %d steps moved more than one full-scale action "
                    "(%.3f m) and were clipped; import with a larger scale to keep them",
                    clipped, scale.xyz_m)
    return write_episodes(store, episodes, total=len(episodes), fps=fps,
                          run_name=f"import rlbench {root.name}",
                          source={"format": "rlbench", "path": str(root.resolve()),
                                  "cameras": list(cameras)},
                          is_demo=True, default_policy="rlbench-demo", progress=progress)
