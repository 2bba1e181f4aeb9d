"""Episode ring storage of one replay buffer: slot arrays, the episode table, eviction and
the dense index of sampleable slots.

Slot i holds ONE unstacked observation (frames per camera, low-dim) and, unless it is the
final observation of its episode, the transition taken from it (action, reward,
last/terminated/truncated/intervention flags). An episode of T steps fills T+1 consecutive
slots, so its final observation is stored as the next observation of its last transition.
Every slot records its episode (an internal sequence number, its key) and its step in the
episode.

When the write pointer reaches a slot of an older episode, that whole episode is evicted
(all its slots stop being sampled), so a partly overwritten episode never yields a stack or
an n-step window with missing frames.

The ring decides where things go and what is evicted; which transitions are sampleable
(the n-step lag, demo masks) is the buffer's decision, written through `index`.
"""

from __future__ import annotations

import dataclasses
import logging
import math

import numpy as np
import torch

from robolearn.learn.replay.episode import ReplayEpisode

log = logging.getLogger(__name__)


@dataclasses.dataclass
class EpisodeSlots:
    """Where one episode lives in the ring."""

    start: int  # slot of its first observation
    num_slots: int  # observations stored so far (transitions + 1)
    episode_id: int | None  # the store's episode id, when known
    open: bool  # still streaming (start_episode/add)

    @property
    def num_transitions(self) -> int:
        return self.num_slots - 1


class SlotIndex:
    """Dense list of the sampleable slots plus each slot's position in it (-1: not listed),
    maintained incrementally (swap-remove), so a draw is one random integer per row."""

    def __init__(self, capacity: int) -> None:
        self.slots = np.zeros(capacity, np.int64)
        self.position = np.full(capacity, -1, np.int64)
        self.size = 0

    def add(self, slots: np.ndarray) -> None:
        """List `slots` (those already listed stay where they are)."""
        slots = slots[self.position[slots] < 0]
        n, r = self.size, slots.size
        self.slots[n : n + r] = slots
        self.position[slots] = np.arange(n, n + r)
        self.size = n + r

    def discard(self, slots: np.ndarray) -> None:
        """Swap-remove those of `slots` that are listed, vectorised."""
        slots = slots[self.position[slots] >= 0]
        if slots.size == 0:
            return
        positions = self.position[slots]
        self.position[slots] = -1
        new_n = self.size - slots.size
        holes = positions[positions < new_n]
        tail = self.slots[new_n : self.size]
        fillers = tail[self.position[tail] >= 0]  # tail entries that stay
        self.slots[holes] = fillers
        self.position[fillers] = holes
        self.size = new_n

    def draw(self, rng: np.random.Generator, count: int) -> np.ndarray:
        """`count` listed slots, uniformly with replacement. [count]"""
        return self.slots[rng.integers(0, self.size, count)]


class EpisodeRing:
    """Fixed-capacity slot arrays holding whole episodes, oldest overwritten first.

    Args:
        capacity: number of observation slots N.
        views: V, camera frames per observation.
        frame_shape: what one camera frame is kept as ([3, H, W] pixels or [C, h, w]).
        frame_dtype: its dtype.
        low_dim: P. action_dim: D.
    """

    def __init__(self, capacity: int, views: int, frame_shape: tuple[int, ...],
                 frame_dtype: np.dtype, low_dim: int, action_dim: int) -> None:
        self.capacity = capacity
        self.frames = np.zeros((capacity, views, *frame_shape), frame_dtype)  # [N, V, ...]
        # The same memory as rows of one frame each, for torch.index_select. [N·V, C·H·W]
        self.frame_rows = torch.from_numpy(
            self.frames.reshape(capacity * views, math.prod(frame_shape)))
        self.low_dim = np.zeros((capacity, low_dim), np.float32)  # [N, P]
        self.action = np.zeros((capacity, action_dim), np.float32)  # [N, D]
        self.reward = np.zeros(capacity, np.float32)
        self.step = np.zeros(capacity, np.int64)  # step in episode of the slot's obs
        self.owner = np.full(capacity, -1, np.int64)  # episode key of the slot, -1 empty
        self.last = np.zeros(capacity, bool)  # slot's transition is its episode's last
        self.terminated = np.zeros(capacity, bool)  # ... and ended in success
        self.truncated = np.zeros(capacity, bool)  # ... and ended by timeout/abort
        self.intervention = np.zeros(capacity, bool)
        self.index = SlotIndex(capacity)
        self.episodes: dict[int, EpisodeSlots] = {}  # by key, oldest first
        self.open_key: int | None = None  # the episode still streaming
        self.last_finished: int | None = None  # the newest episode closed, while held
        self._next_key = 0
        self._write = 0  # next slot to write

    def slot_nbytes(self) -> int:
        """Bytes one slot costs in the ring's arrays."""
        per_slot = (self.frames, self.low_dim, self.action, self.reward, self.step,
                    self.owner, self.last, self.terminated, self.truncated,
                    self.intervention, self.index.slots, self.index.position)
        return sum(a.nbytes for a in per_slot) // self.capacity

    def slots_of(self, key: int) -> np.ndarray:
        """[T+1] slots of a held episode's observations, in step order."""
        episode = self.episodes[key]
        return (episode.start + np.arange(episode.num_slots)) % self.capacity

    def transition_slots(self, key: int, steps: np.ndarray) -> np.ndarray:
        """Slots of the transitions at `steps` of a held episode."""
        return (self.episodes[key].start + steps) % self.capacity

    # -- writing -----------------------------------------------------------------------

    def _claim(self, slots: np.ndarray, keep: int | None = None) -> None:
        """Evict every episode (other than `keep`) that owns one of `slots`."""
        owners = np.unique(self.owner[slots])
        for key in owners[owners >= 0].tolist():
            if key != keep:
                self.evict(key)

    def evict(self, key: int) -> None:
        """Drop a held episode: none of its slots is sampled any more."""
        episode = self.episodes.pop(key)
        slots = (episode.start + np.arange(episode.num_slots)) % self.capacity
        self.owner[slots] = -1
        self.index.discard(slots)
        if self.last_finished == key:
            self.last_finished = None
        if self.open_key == key:
            self.open_key = None
        log.debug("ring of %d slots: evicted episode %d (%d slots)", self.capacity, key,
                  episode.num_slots)

    def _reset_slots(self, slots: np.ndarray | int, key: int, steps: np.ndarray | int) -> None:
        self.owner[slots] = key
        self.step[slots] = steps
        self.action[slots] = 0.0
        self.reward[slots] = 0.0
        self.last[slots] = False
        self.terminated[slots] = False
        self.truncated[slots] = False
        self.intervention[slots] = False

    def begin(self, frame: np.ndarray, low_dim: np.ndarray, episode_id: int | None) -> int:
        """Open a new episode with its first observation at the write pointer.

        The caller closes an open episode first. Returns the new episode's key.
        """
        assert self.open_key is None, "close the open episode before beginning another"
        slot = self._write
        self._claim(np.array([slot]))
        key = self._next_key
        self._next_key += 1
        self._reset_slots(slot, key, 0)
        self.frames[slot] = frame
        self.low_dim[slot] = low_dim
        self.episodes[key] = EpisodeSlots(slot, 1, episode_id, open=True)
        self.open_key = key
        self._write = (slot + 1) % self.capacity
        return key

    def extend(self, action: np.ndarray, reward: float, intervention: bool,
               next_frame: np.ndarray, next_low_dim: np.ndarray) -> int:
        """Append one step to the open episode (which must have room for it).

        Returns:
            The step index j of the transition written (its slot is start + j).
        """
        key = self.open_key
        assert key is not None, "extend() needs an open episode"
        episode = self.episodes[key]
        j = episode.num_transitions  # step index of this transition
        t_slot = (episode.start + j) % self.capacity
        self.action[t_slot] = action
        self.reward[t_slot] = reward
        self.intervention[t_slot] = intervention
        slot = self._write
        self._claim(np.array([slot]), keep=key)
        self._reset_slots(slot, key, j + 1)
        self.frames[slot] = next_frame
        self.low_dim[slot] = next_low_dim
        episode.num_slots += 1
        self._write = (slot + 1) % self.capacity
        return j

    def finish_open(self, terminated: bool) -> int:
        """Close the open episode (it has at least one transition) at its last transition:
        terminated in success, else truncated. Returns its key."""
        key = self.open_key
        assert key is not None, "finish_open() needs an open episode"
        episode = self.episodes[key]
        last = (episode.start + episode.num_transitions - 1) % self.capacity
        self.last[last] = True
        self.terminated[last] = terminated
        self.truncated[last] = not terminated
        episode.open = False
        self.open_key = None
        self.last_finished = key
        return key

    def write_episode(self, episode: ReplayEpisode) -> tuple[int, np.ndarray]:
        """Bulk write of a checked, closed episode that fits in the ring (no episode open).

        Returns:
            Its key and the [T] slots of its transitions.
        """
        assert self.open_key is None, "close the open episode before writing another"
        num_obs = episode.frames.shape[0]
        T = num_obs - 1  # noqa: N806
        slots = (self._write + np.arange(num_obs)) % self.capacity
        self._claim(slots)
        key = self._next_key
        self._next_key += 1
        self._reset_slots(slots, key, np.arange(num_obs))
        self.frames[slots] = episode.frames
        self.low_dim[slots] = episode.low_dim
        steps = slots[:T]
        self.action[steps] = episode.action
        self.reward[steps] = episode.reward
        if episode.intervention is not None:
            self.intervention[steps] = np.asarray(episode.intervention, bool)
        self.last[slots[T - 1]] = True
        self.terminated[slots[T - 1]] = bool(episode.terminated)
        self.truncated[slots[T - 1]] = not episode.terminated
        self.episodes[key] = EpisodeSlots(int(slots[0]), num_obs, episode.episode_id,
                                          open=False)
        self._write = int((slots[-1] + 1) % self.capacity)
        self.last_finished = key
        return key, steps

    def read_episode(self, key: int) -> ReplayEpisode:
        """A held, closed episode's arrays (copies), frames as stored."""
        episode = self.episodes[key]
        slots = self.slots_of(key)
        steps = slots[:-1]
        return ReplayEpisode(
            frames=self.frames[slots],  # [T+1, V, *frame_shape]
            low_dim=self.low_dim[slots],
            action=self.action[steps],
            reward=self.reward[steps],
            terminated=bool(self.terminated[steps[-1]]),
            intervention=self.intervention[steps],
            episode_id=episode.episode_id,
        )
