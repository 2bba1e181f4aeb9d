"""Loading the buffers from the store: reading episodes out of it (`read_store_episodes`),
then appending each to the buffers it belongs in (`append_loaded`); `load_from_store` runs
both.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

import numpy as np

from robolearn.errors import EpisodeCorrupt
from robolearn.learn.batch import ObsSpec
from robolearn.learn.observation import low_dim_of
from robolearn.learn.replay.buffer import ReplayBuffer
from robolearn.learn.replay.demos import check_compatible, route_to_demos
from robolearn.learn.replay.episode import ReplayEpisode

if TYPE_CHECKING:  # judge imports the reward models; the store is the caller's
    from robolearn.learn.judge import Verdict
    from robolearn.store import EpisodeData, EpisodeRecord, Store

    Judge = Callable[[EpisodeData], Verdict]

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class StoreEpisode:
    """One store episode as the buffers take it, its camera frames still pixels.

    Attributes:
        episode_id: its store id.
        pixels: [T+1, V, 3, H, W] uint8, cameras in the buffers' view order.
        low_dim: [T+1, P]. action: [T, D]. reward: [T] (late shaping values included).
        success: it ended in success (terminal); otherwise it bootstraps at its end.
        intervention: [T] bool steps under operator control, when the file has them.
    """

    episode_id: int
    pixels: np.ndarray
    low_dim: np.ndarray
    action: np.ndarray
    reward: np.ndarray
    success: bool
    intervention: np.ndarray | None


def read_store_episodes(
    store: Store,
    spec: ObsSpec,
    *,
    cameras: tuple[str, ...],
    task: str | None = None,
    run_ids: list[int] | None = None,
    wanted: Callable[[int], bool] = lambda episode_id: True,
    progress: bool = False,
    reward_delta: Callable[[int, int], np.ndarray] | None = None,
    judge: Judge | None = None,
    skip_missing: bool = False,
) -> Iterator[StoreEpisode]:
    """Complete store episodes, oldest first, read and checked against `spec`.

    Args:
        store: an open robolearn.store.Store.
        spec: the buffers' observation layout.
        cameras: store camera names in the spec's view order.
        task: only this task's episodes (None: all).
        run_ids: only these runs (None: all).
        wanted: store episode id -> whether to read it at all.
        progress: show a tqdm progress bar.
        reward_delta: (episode id, steps) -> [T] added to the stored rewards: the late
            shaping values the learner saw live but the episode file does not hold.
        judge: EpisodeData -> `robolearn.learn.judge.Verdict`: the run's learned success
            detector decides each episode's rewards, its success and where it ends, in
            place of the stored rewards and outcome (which the sim may have decided).
        skip_missing: pass over episodes whose files are on no disk of this host (a run
            across hosts records on each robot's PC), with one warning; otherwise a
            missing file is an error.

    An episode whose file is corrupt is quarantined (`Store.quarantine_episode`: moved
    aside, its row marked incomplete) with a logged error, and the others are read.

    Raises:
        ValueError: an episode lacks a camera or does not match the spec's shapes.
        StoreError: an episode file is missing or cannot be quarantined.
    """
    if run_ids is None:
        records = store.list_episodes(task=task)
    else:
        records = [r for run in run_ids for r in store.list_episodes(run_id=run, task=task)]
        records.sort(key=lambda r: r.id)
    chosen = [r for r in records if wanted(r.id)]
    if progress:
        from tqdm import tqdm  # type: ignore[import-untyped]  # no stubs in the lock file

        chosen = tqdm(chosen, desc="loading episodes", unit="episode")
    elsewhere = 0
    for record in chosen:
        if skip_missing and not store.episode_file(record).exists():
            elsewhere += 1
            continue
        missing = [c for c in cameras if c not in record.cameras]
        if missing:
            raise ValueError(
                f"load_from_store: episode {record.id} has cameras {list(record.cameras)}, "
                f"missing {missing}; filter by task/run or pass the right cameras"
            )
        try:
            data = store.load_episode(record.id)
        except EpisodeCorrupt as exc:
            # One damaged file must not stop every learner start: move it aside (and out
            # of later listings) and go on with the rest.
            moved = store.quarantine_episode(record.id, str(exc))
            log.error("load_from_store: %s; quarantined to %s, loading the others", exc,
                      moved)
            continue
        yield _episode_of(record, data, spec, cameras, reward_delta, judge)
    if elsewhere:
        log.warning("load_from_store: %d stored episodes have their files on another host "
                    "and were passed over (this learner kept its own copy of those it "
                    "received)", elsewhere)


def _episode_of(record: EpisodeRecord, data: EpisodeData, spec: ObsSpec,
                cameras: tuple[str, ...], reward_delta: Callable[[int, int], np.ndarray] | None,
                judge: Judge | None) -> StoreEpisode:
    """One loaded store episode (row `record`, file `data`) in the buffers' layout."""
    arrays = data.arrays
    needed = ("proprio",) if spec.pixels else ("proprio", "state")
    absent = [k for k in needed if k not in arrays]
    if absent:
        raise ValueError(
            f"load_from_store: episode {record.id} has no array {absent}; "
            f"it has {sorted(arrays)} (state-based learning needs episodes recorded "
            "with actor.observe_state)"
        )
    try:
        low_dim = low_dim_of(spec, arrays["proprio"], arrays.get("state"))
    except ValueError as exc:
        raise ValueError(f"load_from_store: episode {record.id}: {exc}") from exc
    if cameras:
        # [T+1, V, 3, H, W] from per-camera [T+1, H, W, 3]
        pixels = np.stack([data.images(c).transpose(0, 3, 1, 2) for c in cameras], axis=1)
        expected = (3, *spec.image_hw)
        if pixels.shape[2:] != expected:
            raise ValueError(
                f"load_from_store: episode {record.id} images are "
                f"{pixels.shape[3:]}x3, the buffers expect {spec.image_hw}"
            )
    else:
        pixels = np.zeros((record.num_steps + 1, 0, 3, *spec.image_hw), np.uint8)
    success = record.outcome == "success"
    intervention = arrays.get("intervention")
    action = arrays["action"]
    reward = arrays["reward"]
    if reward_delta is not None:
        reward = reward + reward_delta(record.id, len(reward))
    if judge is not None:
        verdict = judge(data)
        success, reward, kept = verdict.success, verdict.reward, verdict.steps
        pixels, low_dim, action = pixels[:kept + 1], low_dim[:kept + 1], action[:kept]
        if intervention is not None:
            intervention = intervention[:kept]
    return StoreEpisode(record.id, pixels, low_dim, action, reward, success, intervention)


def append_loaded(online: ReplayBuffer, demos: ReplayBuffer, loaded: StoreEpisode, *,
                  min_demo_steps: int = 1) -> bool:
    """Append a store episode to the buffers that want it: every episode to the online
    buffer (demos too, as the reference keeps them in both); to the demo buffer a success
    (demonstration or relabelled online episode) whole, another episode's intervention
    segments only (as `demos.route_to_demos`).

    Returns:
        True if at least one buffer took it.
    """
    episode = ReplayEpisode(
        frames=online.encode_frames(loaded.pixels),  # encoded once, for both buffers
        low_dim=loaded.low_dim, action=loaded.action, reward=loaded.reward,
        terminated=loaded.success, intervention=loaded.intervention,
        episode_id=loaded.episode_id,
    )
    took = False
    if online.wants(loaded.episode_id):
        online.append_episode(episode)
        took = True
    if demos.wants(loaded.episode_id):
        took = route_to_demos(episode, demos, min_demo_steps) or took
    return took


def load_from_store(
    store: Store,
    online: ReplayBuffer,
    demos: ReplayBuffer,
    *,
    task: str | None = None,
    cameras: tuple[str, ...],
    run_ids: list[int] | None = None,
    skip_ids: Iterable[int] = frozenset(),
    progress: bool = False,
    reward_delta: Callable[[int, int], np.ndarray] | None = None,
    min_demo_steps: int = 1,
    judge: Judge | None = None,
    skip_missing: bool = False,
) -> int:
    """Load complete store episodes into the buffers, oldest first.

    Every episode goes to the online buffer (demos too, as the reference keeps them in
    both). The demo buffer gets successful demonstrations, successful online episodes
    (relabelled) and, from the other episodes, their intervention steps. An episode is
    terminal iff its outcome is "success". A buffer restored with `load_state_dict` takes
    only the episodes it held (and then returns to normal).

    Args:
        store: an open robolearn.store.Store.
        task: only this task's episodes (None: all).
        cameras: store camera names in the buffers' view order.
        run_ids: only these runs (None: all).
        skip_ids: store episode ids to leave out (e.g. those already loaded).
        progress: show a tqdm progress bar.
        reward_delta: as read_store_episodes'.
        min_demo_steps: as DemoAndOnline's: shorter successes and intervention segments
            stay out of the demo buffer.
        judge: as read_store_episodes'.
        skip_missing: as read_store_episodes'.

    Returns:
        How many episodes were loaded into at least one buffer.

    An episode whose file is corrupt is quarantined with a logged error, and the others
    load.

    Raises:
        ValueError: an episode lacks a camera or does not match the buffers' shapes.
        StoreError: an episode file is missing or cannot be quarantined.
    """
    check_compatible(online, demos)
    if len(cameras) != len(online.obs_spec.cameras):
        raise ValueError(
            f"load_from_store: {len(cameras)} cameras {list(cameras)} given, the buffers' spec "
            f"has {len(online.obs_spec.cameras)}"
        )
    skip = set(skip_ids)
    episodes = read_store_episodes(
        store, online.obs_spec, cameras=cameras, task=task, run_ids=run_ids,
        wanted=lambda i: i not in skip and (online.wants(i) or demos.wants(i)),
        progress=progress, reward_delta=reward_delta, judge=judge, skip_missing=skip_missing,
    )
    loaded = sum(append_loaded(online, demos, e, min_demo_steps=min_demo_steps)
                 for e in episodes)
    online.end_restore()
    demos.end_restore()
    log.info(
        "loaded %d episodes: online %d transitions, demos %d transitions",
        loaded, len(online), len(demos),
    )
    return loaded
