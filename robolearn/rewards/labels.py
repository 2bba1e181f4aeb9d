"""Labelled frames for the success classifier, gathered from the store.

Frame index t of an episode is observation t (0 = first, T = final), the same index the
`labels.step_index` column and `EpisodeData.images()` use. Everything is validated before
anything is trained or written; reading never changes a label.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence

import numpy as np

from robolearn.config.rewards import ClassifierConfig
from robolearn.errors import RewardModelError, StoreError
from robolearn.store import EpisodeData, EpisodeRecord, Store
from robolearn.store.labels import every_label

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class LabelledFrames:
    """N frames (one image per camera each) with their success labels."""

    cameras: tuple[str, ...]
    frames: dict[str, np.ndarray]  # camera -> uint8 [N, H, W, 3]
    labels: np.ndarray  # [N] bool, True = success
    episode_ids: np.ndarray  # [N] int64
    frame_index: np.ndarray  # [N] int64

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def n_pos(self) -> int:
        return int(self.labels.sum())

    @property
    def n_neg(self) -> int:
        return len(self) - self.n_pos

    def subset(self, mask: np.ndarray) -> LabelledFrames:
        return LabelledFrames(
            self.cameras, {c: f[mask] for c, f in self.frames.items()}, self.labels[mask],
            self.episode_ids[mask], self.frame_index[mask],
        )


def _episodes(store: Store, run_id: int | None, task: str | None) -> list[EpisodeRecord]:
    return store.list_episodes(run_id=run_id, task=task, status="complete")


def _load(store: Store, episode_id: int, why: str) -> EpisodeData:
    try:
        return store.load_episode(episode_id)
    except StoreError as exc:
        raise RewardModelError(f"classifier training data: {why}: {exc}") from exc


def _cameras(cfg: ClassifierConfig, records: Sequence[EpisodeRecord]) -> tuple[str, ...]:
    cameras = tuple(cfg.cameras) if cfg.cameras else tuple(records[0].cameras)
    for record in records:
        missing = [c for c in cameras if c not in record.cameras]
        if missing:
            raise RewardModelError(
                f"classifier training data: episode {record.id} has cameras "
                f"{list(record.cameras)}, the classifier needs {list(cameras)} (missing "
                f"{missing}); set rewards.classifier.cameras or filter by task"
            )
    return cameras


def _label_map(store: Store, records: dict[int, EpisodeRecord]) -> dict[int, dict[int, bool]]:
    """episode id -> frame index -> label, for labels on the given episodes; validated."""
    with store.session() as session:
        rows = every_label(session)
    rows = [r for r in rows if r.episode_id in records]
    if not rows:
        raise RewardModelError(
            "classifier training data: the label set is empty (no success/failure labels on "
            "complete episodes of this selection); label frames in the UI, or train with "
            "rewards.classifier.source: outcomes"
        )
    labels: dict[int, dict[int, bool]] = {}
    for row in rows:
        record = records[row.episode_id]
        if not 0 <= row.step_index <= record.num_steps:
            raise RewardModelError(
                f"label {row.id}: frame {row.step_index} of episode {row.episode_id} does not "
                f"exist (the episode has frames 0..{record.num_steps}); delete or fix that "
                "label"
            )
        if row.camera is not None and row.camera not in record.cameras:
            raise RewardModelError(
                f"label {row.id}: camera {row.camera!r} is not a camera of episode "
                f"{row.episode_id} ({list(record.cameras)}); delete or fix that label"
            )
        if row.label not in ("success", "failure"):
            raise RewardModelError(
                f"label {row.id}: value {row.label!r} is corrupt; expected success or failure"
            )
        value = row.label == "success"
        frame_labels = labels.setdefault(row.episode_id, {})
        if frame_labels.get(row.step_index, value) != value:
            raise RewardModelError(
                f"label {row.id}: frame {row.step_index} of episode {row.episode_id} is labelled "
                "both success and failure; remove one of the conflicting labels"
            )
        frame_labels[row.step_index] = value
    return labels


def _frame_labels(cfg: ClassifierConfig, data: EpisodeData) -> dict[int, bool]:
    """Labels derived from an episode itself (sources outcomes and sim_success)."""
    num_steps = data.num_steps
    if cfg.source == "sim_success":
        success = np.asarray(data.arrays["success"], bool)  # [T]: result of action t
        # Observation t+1 shows the result of action t; observation 0 is before any action.
        return {0: False, **{t + 1: bool(s) for t, s in enumerate(success)}}
    if data.record.outcome == "success":
        first = max(0, num_steps + 1 - cfg.outcome_positive_frames)
        return dict.fromkeys(range(first, num_steps + 1), True)
    return dict.fromkeys(range(num_steps + 1), False)


def gather_frames(store: Store, cfg: ClassifierConfig, run_id: int | None = None) -> LabelledFrames:
    """Every labelled frame of the selected complete episodes, per `cfg.source`.

    Raises:
        RewardModelError: no episodes, an empty label set, a label on a frame or camera
            that does not exist, conflicting labels, an unreadable episode file, or only
            one class present.
    """
    records = _episodes(store, run_id, cfg.task)
    if not records:
        raise RewardModelError(
            f"classifier training data: no complete episodes (run {run_id}, task {cfg.task}); "
            "record some first"
        )
    cameras = _cameras(cfg, records)
    by_id = {r.id: r for r in records}
    if cfg.source == "labels":
        wanted = _label_map(store, by_id)
    else:
        wanted = {}
    frames: dict[str, list[np.ndarray]] = {c: [] for c in cameras}
    labels, episode_ids, frame_index = [], [], []
    for record in records:
        if cfg.source == "labels" and record.id not in wanted:
            continue
        data = _load(store, record.id, f"episode {record.id}")
        if cfg.source != "labels":
            per_frame = _frame_labels(cfg, data)
        elif cfg.unmarked == "failure":
            per_frame = dict.fromkeys(range(data.num_steps + 1), False) | wanted[record.id]
        else:
            per_frame = wanted[record.id]
        index = np.array(sorted(per_frame), np.int64)
        for camera in cameras:
            images = data.images(camera)
            frames[camera].append(images[index])
        labels.append(np.array([per_frame[i] for i in index.tolist()], bool))
        episode_ids.append(np.full(index.size, record.id, np.int64))
        frame_index.append(index)
    out = LabelledFrames(
        cameras,
        {c: _concat_frames(c, f) for c, f in frames.items()},
        np.concatenate(labels), np.concatenate(episode_ids), np.concatenate(frame_index),
    )
    if out.n_pos == 0 or out.n_neg == 0:
        raise RewardModelError(
            f"classifier training data: {out.n_pos} success and {out.n_neg} failure frames; "
            "both classes are needed (label some frames of the missing class, or count the "
            "unmarked frames of labelled episodes as failures: "
            "rewards.classifier.unmarked: failure)"
        )
    log.info("classifier data: %d frames (%d success, %d failure) from %d episodes",
             len(out), out.n_pos, out.n_neg, len(np.unique(out.episode_ids)))
    return out


def _concat_frames(camera: str, parts: list[np.ndarray]) -> np.ndarray:
    shapes = {p.shape[1:] for p in parts}
    if len(shapes) > 1:
        raise RewardModelError(
            f"classifier training data: camera {camera!r} has frames of several sizes "
            f"{sorted(shapes)}; train on episodes recorded at one resolution"
        )
    return np.concatenate(parts)
