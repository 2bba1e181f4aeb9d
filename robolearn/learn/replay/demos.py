"""Demo routing: which finished episodes (or which of their steps) the demo buffer samples,
and `DemoAndOnline`, the online buffer and the demo buffer streamed and sampled as one.

A finished online episode that succeeded is copied whole into the demo buffer (CQN's success
relabelling); one that failed but had intervention steps is copied with only those steps
sampleable (HIL-SERL), the other steps travelling along as stacking/n-step context.
"""

from __future__ import annotations

import logging

import numpy as np

from robolearn.learn.batch import Batch
from robolearn.learn.replay.buffer import ReplayBuffer
from robolearn.learn.replay.episode import ReplayEpisode
from robolearn.learn.replay.sampler import assemble

log = logging.getLogger(__name__)


def check_compatible(online: ReplayBuffer, demos: ReplayBuffer) -> None:
    """Raises ValueError unless both buffers sample batches of one layout."""
    for key in ("obs_spec", "action_dim", "nstep", "discount", "action_sequence",
                "frame_shape", "frame_dtype"):
        if getattr(online, key) != getattr(demos, key):
            raise ValueError(
                f"online and demo buffers differ in {key}: {getattr(online, key)!r} vs "
                f"{getattr(demos, key)!r}; build both from the same settings"
            )


def demo_segments(intervention: np.ndarray, min_steps: int) -> np.ndarray:
    """[T] bool: the steps of runs of at least `min_steps` consecutive intervention steps.

    A real takeover lasts several control periods; shorter runs (a stray flag, a forged
    one-step "intervention") stay out of the demo buffer.
    """
    flags = np.asarray(intervention, bool)
    if min_steps <= 1 or not flags.any():
        return flags
    edges = np.diff(np.concatenate([[0], flags.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    keep = np.zeros_like(flags)
    for start, end in zip(starts, ends, strict=True):
        if end - start >= min_steps:
            keep[start:end] = True
    return keep


def is_demo_success(episode: ReplayEpisode, min_steps: int) -> bool:
    """A success of at least `min_steps` steps: the demo buffer takes all of it."""
    return bool(episode.terminated) and episode.num_steps >= min_steps


def route_to_demos(episode: ReplayEpisode, demos: ReplayBuffer, min_steps: int) -> bool:
    """Append a finished episode to the demo buffer if it belongs there: whole when it is a
    success of at least `min_steps` steps, else with only its intervention segments of at
    least `min_steps` steps sampleable.

    Returns:
        True if it was appended.
    """
    if is_demo_success(episode, min_steps):
        demos.append_episode(episode)
        return True
    if episode.intervention is None:
        return False
    segments = demo_segments(episode.intervention, min_steps)
    if not segments.any():
        return False
    demos.append_episode(episode, sample_mask=segments)
    return True


def relabel_success(
    online: ReplayBuffer, demos: ReplayBuffer, key: int | None = None, min_steps: int = 1
) -> bool:
    """Copy a successful online episode into the demo buffer (CQN's success relabelling).

    Args:
        key: the online buffer's key of the episode; default the last finished one.
        min_steps: only episodes of at least this many steps are copied.

    Returns:
        True if the episode terminated in success and was copied.
    """
    key = online.last_finished if key is None else key
    episode = None if key is None else online.episode(key)
    if episode is None or not is_demo_success(episode, min_steps):
        return False
    demos.append_episode(episode)
    return True


class DemoAndOnline:
    """Streams into the online buffer, routes successes and interventions to the demo
    buffer, and samples `batch_size` online + `demo_batch_size` demo rows as one Batch.

    `min_demo_steps`: shorter successes and intervention segments are not copied.
    """

    def __init__(
        self,
        online: ReplayBuffer,
        demos: ReplayBuffer,
        batch_size: int,
        demo_batch_size: int,
        *,
        min_demo_steps: int = 1,
    ) -> None:
        check_compatible(online, demos)
        self.online = online
        self.demos = demos
        self.min_demo_steps = min_demo_steps
        self.batch_size = batch_size
        self.demo_batch_size = demo_batch_size
        self._warned_no_demos = False

    def start_episode(
        self, rgb: dict[str, np.ndarray] | None, low_dim: np.ndarray, *,
        episode_id: int | None = None,
    ) -> None:
        """Like ReplayBuffer.start_episode; an open (aborted) episode is routed first."""
        aborted = self.online.close_open_episode()
        if aborted is not None:
            self._route(aborted)
        self.online.start_episode(rgb, low_dim, episode_id=episode_id)

    def add(
        self,
        action: np.ndarray,
        reward: float,
        next_rgb: dict[str, np.ndarray] | None,
        next_low_dim: np.ndarray,
        *,
        terminated: bool,
        truncated: bool,
        intervention: bool = False,
    ) -> None:
        """Like ReplayBuffer.add; at the episode's end routes it to the demo buffer."""
        finished = self.online.add(
            action, reward, next_rgb, next_low_dim,
            terminated=terminated, truncated=truncated, intervention=intervention,
        )
        if finished is not None:
            self._route(finished)

    def _route(self, key: int) -> None:
        episode = self.online.episode(key)
        if episode is not None:
            route_to_demos(episode, self.demos, self.min_demo_steps)

    def sample(self, *, pin_memory: bool = False) -> Batch:
        """`batch_size` online rows, then `demo_batch_size` demo rows (is_demo True)."""
        plans = [self.online.plan(self.batch_size)]
        if self.demo_batch_size and len(self.demos):
            plans.append(self.demos.plan(self.demo_batch_size))
        elif self.demo_batch_size and not self._warned_no_demos:
            log.warning("demo buffer is empty; sampling online transitions only")
            self._warned_no_demos = True
        return assemble(plans, pin_memory)
