"""Replay buffers of the CQN learner: episode ring storage, sample-time stacking and n-step.

Example::

    spec = ObsSpec(cameras=("front", "wrist"), image_hw=(84, 84), frame_stack=8, low_dim=8)
    online = ReplayBuffer(spec, action_dim=8, capacity=100_000, seed=0)
    demos = ReplayBuffer(spec, action_dim=8, capacity=20_000, is_demo=True, seed=1)
    load_from_store(store, online, demos, task="pick_cube", cameras=spec.cameras)
    sampler = DemoAndOnline(online, demos, batch_size=256, demo_batch_size=256)
    batch = sampler.sample()                     # Batch, 256 online rows then 256 demo rows

Storage. Slot i of the ring holds ONE unstacked observation (images CHW per camera, low-dim)
and, unless it is the final observation of its episode, the transition taken from it (action,
reward, last/terminated/truncated/intervention flags). An episode of T steps fills T+1
consecutive slots, so its final observation is stored as the next observation of its last
transition. Every slot records its episode (an internal sequence number) and its step in the
episode; frame stacks clamp at step 0 (the first frame repeats) and n-step windows stop at
the episode's last transition, so nothing ever crosses an episode boundary.

Overwrite. When the write pointer reaches a slot of an older episode, that whole episode is
evicted (all its slots stop being sampled), so a partly overwritten episode never yields a
stack or an n-step window with missing frames.

Features instead of pixels. Given a `FrameEncoder` (CQNConfig.encoder "pretrained"), a buffer
keeps each camera frame as the frozen model's feature map [C, h, w] (uint8 or float16), encoded
once as the frame comes in (`start_episode`, `add`, `add_episode`, `load_from_store`); the
pixels are not kept, and batches carry the stacked features in `rgb_obs`' place.
`slot_nbytes` says what a slot costs either way.

Sampling is vectorised: the sampleable slots live in a dense index list maintained
incrementally (swap-remove on eviction), so `sample` draws B positions from it and gathers
with fancy indexing / `torch.index_select`. With n = 1 the observation and next-observation
stacks of a row share S−1 frames, so the images are gathered once as a [B, V, S+1] window
and `rgb_obs`/`next_rgb_obs` are strided views into it (valid torch tensors, not contiguous).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import sys
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch

from robolearn.errors import EpisodeCorrupt
from robolearn.learn.batch import Batch, FrameEncoder, ObsSpec
from robolearn.learn.observation import low_dim_of

log = logging.getLogger(__name__)

STATE_FORMAT = 1
OUTPUT_POOL_SIZE = 3  # image windows kept for reuse per buffer (each ~B·V·(S+n) frames)


@dataclasses.dataclass
class _Episode:
    """Where one episode lives in the ring."""

    start: int  # slot of its first observation
    num_slots: int  # observations stored so far (transitions + 1)
    episode_id: int | None  # the store's episode id, when known
    open: bool  # still streaming (start_episode/add)

    @property
    def num_transitions(self) -> int:
        return self.num_slots - 1


@dataclasses.dataclass
class _Plan:
    """The index arithmetic of one buffer's share of a batch (no image data yet)."""

    buffer: ReplayBuffer
    obs_slots: np.ndarray  # [b, S]
    next_slots: np.ndarray  # [b, S]
    window_full: bool  # every row has a full n-step window (n' == n)
    window_slots: np.ndarray  # [b, S + n], valid when window_full
    action_slots: np.ndarray  # [b, K]
    reward: np.ndarray  # [b]
    discount: np.ndarray  # [b]
    is_demo: np.ndarray  # [b]


class ReplayBuffer:
    """Episode replay with frame stacking, n-step returns and action sequences at sample time.

    Args:
        obs_spec: cameras, image size, frame stack S and low-dim size P of the agent.
        action_dim: D.
        capacity: number of observation slots (an episode of T steps takes T+1).
        nstep: n of the n-step return.
        discount: γ.
        action_sequence: K; K > 1 samples actions t..t+K-1 (CQN-AS), padded past the end of
            the episode with its last action.
        seed: seed of the sampling generator.
        is_demo: every sample of this buffer is marked `is_demo` (the demo buffer);
            otherwise only transitions recorded under operator intervention are.
        frame_encoder: keep each camera frame as this encoder's features instead of its
            pixels (see the module docstring); None keeps the uint8 images.
    """

    def __init__(
        self,
        obs_spec: ObsSpec,
        action_dim: int,
        capacity: int,
        *,
        nstep: int = 1,
        discount: float = 0.99,
        action_sequence: int = 1,
        seed: int | None = None,
        is_demo: bool = False,
        frame_encoder: FrameEncoder | None = None,
    ) -> None:
        if capacity < 2:
            raise ValueError(f"ReplayBuffer: capacity must be >= 2 slots, got {capacity}")
        if nstep < 1 or action_sequence < 1 or action_dim < 1 or obs_spec.frame_stack < 1:
            raise ValueError(
                "ReplayBuffer: nstep, action_sequence, action_dim and frame_stack must be >= 1, "
                f"got {nstep}, {action_sequence}, {action_dim}, {obs_spec.frame_stack}"
            )
        if not 0.0 < discount <= 1.0:
            raise ValueError(f"ReplayBuffer: discount must be in (0, 1], got {discount}")
        self.obs_spec = obs_spec
        self.action_dim = action_dim
        self.capacity = capacity
        self.nstep = nstep
        self.discount = float(discount)
        self.action_sequence = action_sequence
        self.is_demo = is_demo
        self._rng = np.random.default_rng(seed)
        # A transition becomes sampleable once `_lag` later transitions exist (or its
        # episode ended): the n-step window needs obs t+n, the sequence actions up to t+K-1.
        self._lag = max(nstep, action_sequence) - 1

        V, (H, W), P = len(obs_spec.cameras), obs_spec.image_hw, obs_spec.low_dim  # noqa: N806
        self.frame_encoder = frame_encoder
        # What one camera frame is kept as: its pixels [3, H, W] or its features [C, h, w].
        self.frame_shape: tuple[int, ...] = (
            (3, H, W) if frame_encoder is None else tuple(frame_encoder.frame_shape))
        self.frame_dtype = np.dtype(np.uint8 if frame_encoder is None else frame_encoder.dtype)
        self._rgb = np.zeros((capacity, V, *self.frame_shape), self.frame_dtype)  # [N, V, ...]
        self._rgb_rows = torch.from_numpy(
            self._rgb.reshape(capacity * V, math.prod(self.frame_shape)))
        self._low = np.zeros((capacity, P), np.float32)  # [N, P]
        self._action = np.zeros((capacity, action_dim), np.float32)  # [N, D]
        self._reward = np.zeros(capacity, np.float32)
        self._step = np.zeros(capacity, np.int64)  # step in episode of the slot's obs
        self._ep_seq = np.full(capacity, -1, np.int64)  # internal episode number, -1 empty
        self._last = np.zeros(capacity, bool)  # slot's transition is its episode's last
        self._terminated = np.zeros(capacity, bool)  # ... and ended in success
        self._truncated = np.zeros(capacity, bool)  # ... and ended by timeout/abort
        self._intervention = np.zeros(capacity, bool)
        # Dense list of sampleable slots plus each slot's position in it (-1: not listed).
        self._valid = np.zeros(capacity, np.int64)
        self._valid_pos = np.full(capacity, -1, np.int64)
        self._num_valid = 0

        self._episodes: dict[int, _Episode] = {}
        self._next_seq = 0
        self._write = 0  # next slot to write
        self._open_seq: int | None = None
        self._last_closed_seq: int | None = None
        self.num_episodes_added = 0
        self.num_transitions_added = 0
        self._restore_ids: set[int] | None = None  # set by load_state_dict until reloaded
        self._out_pool: list[np.ndarray] = []
        self._out_pool_next = 0

    # -- sizes -------------------------------------------------------------------------

    def __len__(self) -> int:
        """Sampleable transitions."""
        return self._num_valid

    def slot_nbytes(self) -> int:
        """Bytes one slot (an observation and its transition) costs in this buffer's arrays;
        capacity × this is the buffer's memory."""
        per_slot = (self._rgb, self._low, self._action, self._reward, self._step,
                    self._ep_seq, self._last, self._terminated, self._truncated,
                    self._intervention, self._valid, self._valid_pos)
        return sum(a.nbytes for a in per_slot) // self.capacity

    @property
    def num_episodes(self) -> int:
        """Episodes with slots in the buffer (an open, streaming one included)."""
        return len(self._episodes)

    @property
    def episode_ids(self) -> list[int]:
        """Store episode ids of the episodes in the buffer, oldest first."""
        return [e.episode_id for e in self._episodes.values() if e.episode_id is not None]

    def _where(self) -> str:
        kind = "demo" if self.is_demo else "online"
        return f"ReplayBuffer({kind}, capacity {self.capacity})"

    # -- validation --------------------------------------------------------------------

    def _check_rgb(self, rgb: dict[str, np.ndarray] | None, what: str) -> np.ndarray:
        """HWC images per camera -> [V, 3, H, W] uint8."""
        cameras = self.obs_spec.cameras
        H, W = self.obs_spec.image_hw  # noqa: N806
        if not cameras:
            if rgb:
                raise ValueError(
                    f"{self._where()}: {what}: the spec has no cameras, got images {sorted(rgb)}"
                )
            return np.zeros((0, 3, H, W), np.uint8)
        if rgb is None or set(rgb) != set(cameras):
            seen = None if rgb is None else sorted(rgb)
            raise ValueError(
                f"{self._where()}: {what} must have one image per camera {list(cameras)}, "
                f"got {seen}"
            )
        out = np.empty((len(cameras), 3, H, W), np.uint8)  # [V, 3, H, W]
        for v, camera in enumerate(cameras):
            image = np.asarray(rgb[camera])
            if image.dtype != np.uint8 or image.shape != (H, W, 3):
                raise ValueError(
                    f"{self._where()}: {what}[{camera!r}] must be uint8 {(H, W, 3)} (HWC), "
                    f"got {image.dtype} {image.shape}"
                )
            out[v] = image.transpose(2, 0, 1)  # [3, H, W]
        return out

    def _stored_frames(self, frames: np.ndarray) -> np.ndarray:
        """Checked pixels [N, V, 3, H, W] -> what the buffer keeps, [N, V, *frame_shape]."""
        if self.frame_encoder is None or frames.shape[1] == 0:
            return frames
        n, v = frames.shape[:2]
        features = self.frame_encoder.encode(frames.reshape(n * v, *frames.shape[2:]))
        return features.reshape(n, v, *self.frame_shape)

    def _check_vector(self, value: Any, size: int, what: str) -> np.ndarray:
        array = np.asarray(value)
        if array.dtype.kind not in "fiub" or array.shape != (size,):
            raise ValueError(
                f"{self._where()}: {what} must be a float array of shape ({size},), "
                f"got {array.dtype} {array.shape}"
            )
        array = array.astype(np.float32)
        if not np.all(np.isfinite(array)):
            raise ValueError(f"{self._where()}: {what} must be finite, got {array.tolist()}")
        return array

    # -- writing -----------------------------------------------------------------------

    def _claim(self, slots: np.ndarray, keep_seq: int | None = None) -> None:
        """Evict every episode (other than `keep_seq`) that owns one of `slots`."""
        owners = np.unique(self._ep_seq[slots])
        for seq in owners[owners >= 0].tolist():
            if seq != keep_seq:
                self._evict(seq)

    def _evict(self, seq: int) -> None:
        episode = self._episodes.pop(seq)
        slots = (episode.start + np.arange(episode.num_slots)) % self.capacity
        self._ep_seq[slots] = -1
        self._remove_valid(slots[self._valid_pos[slots] >= 0])
        if self._last_closed_seq == seq:
            self._last_closed_seq = None
        log.debug("%s: evicted episode %d (%d slots)", self._where(), seq, episode.num_slots)

    def _add_valid(self, slots: np.ndarray) -> None:
        slots = slots[self._valid_pos[slots] < 0]
        n, r = self._num_valid, slots.size
        self._valid[n : n + r] = slots
        self._valid_pos[slots] = np.arange(n, n + r)
        self._num_valid = n + r

    def _remove_valid(self, slots: np.ndarray) -> None:
        """Swap-remove `slots` (all listed) from the dense valid list, vectorised."""
        if slots.size == 0:
            return
        positions = self._valid_pos[slots]
        self._valid_pos[slots] = -1
        new_n = self._num_valid - slots.size
        holes = positions[positions < new_n]
        tail = self._valid[new_n : self._num_valid]
        fillers = tail[self._valid_pos[tail] >= 0]  # tail entries that stay
        self._valid[holes] = fillers
        self._valid_pos[fillers] = holes
        self._num_valid = new_n

    def _reset_slots(self, slots: np.ndarray | int, seq: int, steps: np.ndarray | int) -> None:
        self._ep_seq[slots] = seq
        self._step[slots] = steps
        self._action[slots] = 0.0
        self._reward[slots] = 0.0
        self._last[slots] = False
        self._terminated[slots] = False
        self._truncated[slots] = False
        self._intervention[slots] = False

    def _counts(self) -> bool:
        return self._restore_ids is None  # reloading after load_state_dict: counters restored

    def start_episode(
        self,
        rgb: dict[str, np.ndarray] | None,
        low_dim: np.ndarray,
        *,
        episode_id: int | None = None,
    ) -> None:
        """Begin streaming an episode with its first observation.

        An episode still open is closed first as truncated (its last obs is the last one
        added).

        Args:
            rgb: one uint8 [H, W, 3] image per camera of the spec (None without cameras).
            low_dim: [P] low-dimensional observation.
            episode_id: the store's id of the episode, if it has one.

        Raises:
            ValueError: wrong cameras, shapes or dtypes; nothing is written.
        """
        frame = self._stored_frames(self._check_rgb(rgb, "rgb")[None])[0]
        low = self._check_vector(low_dim, self.obs_spec.low_dim, "low_dim")
        self._close_open_episode()
        slot = self._write
        self._claim(np.array([slot]))
        seq = self._next_seq
        self._next_seq += 1
        self._reset_slots(slot, seq, 0)
        self._rgb[slot] = frame
        self._low[slot] = low
        self._episodes[seq] = _Episode(slot, 1, episode_id, open=True)
        self._open_seq = seq
        self._write = (slot + 1) % self.capacity

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
        """Append one step to the open episode: the action taken, its reward, the next obs.

        Args:
            terminated: the task succeeded at this step (the episode ends; no bootstrap).
            truncated: the episode ends here without success (timeout, abort); bootstraps.
            intervention: an operator was in control for this step.

        Raises:
            ValueError: no open episode, bad shapes/dtypes, or the episode would not fit
                in the buffer; nothing is written.
        """
        if self._open_seq is None:
            raise ValueError(f"{self._where()}: add() before start_episode(); start one first")
        act = self._check_vector(action, self.action_dim, "action")
        if isinstance(reward, bool) or not isinstance(reward, (int, float, np.number)) or (
            not math.isfinite(float(reward))
        ):
            raise ValueError(f"{self._where()}: reward must be a finite number, got {reward!r}")
        frame = self._stored_frames(self._check_rgb(next_rgb, "next_rgb")[None])[0]
        low = self._check_vector(next_low_dim, self.obs_spec.low_dim, "next_low_dim")
        episode = self._episodes[self._open_seq]
        if episode.num_slots + 1 > self.capacity:
            raise ValueError(
                f"{self._where()}: episode longer than the buffer ({episode.num_slots} steps); "
                "raise capacity above the longest episode"
            )
        j = episode.num_transitions  # step index of this transition
        t_slot = (episode.start + j) % self.capacity
        self._action[t_slot] = act
        self._reward[t_slot] = float(reward)
        self._intervention[t_slot] = bool(intervention)
        slot = self._write
        self._claim(np.array([slot]), keep_seq=self._open_seq)
        self._reset_slots(slot, self._open_seq, j + 1)
        self._rgb[slot] = frame
        self._low[slot] = low
        episode.num_slots += 1
        self._write = (slot + 1) % self.capacity
        if self._counts():
            self.num_transitions_added += 1
        if terminated or truncated:
            self._terminated[t_slot] = bool(terminated)
            self._truncated[t_slot] = not terminated
            self._finish_open_episode()
        elif j - self._lag >= 0:
            self._add_valid(np.array([(episode.start + j - self._lag) % self.capacity]))

    def _finish_open_episode(self) -> None:
        seq = self._open_seq
        assert seq is not None
        episode = self._episodes[seq]
        T = episode.num_transitions  # noqa: N806
        self._last[(episode.start + T - 1) % self.capacity] = True
        steps = np.arange(max(0, T - 1 - self._lag), T)
        self._add_valid((episode.start + steps) % self.capacity)
        episode.open = False
        self._open_seq = None
        self._last_closed_seq = seq
        if self._counts():
            self.num_episodes_added += 1

    def _close_open_episode(self) -> None:
        """End a streaming episode that stopped without terminated/truncated (abort)."""
        if self._open_seq is None:
            return
        episode = self._episodes[self._open_seq]
        if episode.num_transitions == 0:
            self._evict(self._open_seq)  # a lone first observation teaches nothing
            self._open_seq = None
            return
        last = (episode.start + episode.num_transitions - 1) % self.capacity
        self._truncated[last] = True
        log.info("%s: episode closed as truncated by a new start_episode()", self._where())
        self._finish_open_episode()

    def add_episode(
        self,
        images: dict[str, np.ndarray] | None,
        low_dim: np.ndarray,
        action: np.ndarray,
        reward: np.ndarray,
        terminated: bool,
        intervention: np.ndarray | None = None,
        *,
        episode_id: int | None = None,
        sample_mask: np.ndarray | None = None,
    ) -> None:
        """Add a whole episode at once.

        Args:
            images: per camera uint8 [T+1, H, W, 3] (None without cameras).
            low_dim: [T+1, P]. action: [T, D]. reward: [T].
            terminated: the episode ended in success (its last step does not bootstrap);
                otherwise it was truncated and its last step bootstraps from the final obs.
            intervention: [T] bool, steps under operator control.
            episode_id: the store's id of the episode.
            sample_mask: [T] bool, which transitions may be sampled (default all); the rest
                are stored only as stacking/n-step context (interventions in the demo buffer).

        Raises:
            ValueError: wrong shapes/dtypes or an episode longer than the buffer.
        """
        low_dim = np.asarray(low_dim)
        if low_dim.ndim != 2 or low_dim.shape[0] < 2:
            raise ValueError(
                f"{self._where()}: low_dim must be [T+1, {self.obs_spec.low_dim}] with T >= 1, "
                f"got {low_dim.dtype} {low_dim.shape}"
            )
        num_obs = low_dim.shape[0]
        cameras = self.obs_spec.cameras
        H, W = self.obs_spec.image_hw  # noqa: N806
        if cameras:
            if images is None or set(images) != set(cameras):
                seen = None if images is None else sorted(images)
                raise ValueError(
                    f"{self._where()}: images must have one array per camera {list(cameras)}, "
                    f"got {seen}"
                )
            for camera in cameras:
                array = np.asarray(images[camera])
                if array.dtype != np.uint8 or array.shape != (num_obs, H, W, 3):
                    raise ValueError(
                        f"{self._where()}: images[{camera!r}] must be uint8 "
                        f"{(num_obs, H, W, 3)} [T+1, H, W, 3], got {array.dtype} {array.shape}"
                    )
            # [T+1, V, 3, H, W], one copy through the transposed view.
            rgb = np.stack([np.asarray(images[c]).transpose(0, 3, 1, 2) for c in cameras], 1)
            rgb = self._stored_frames(rgb)  # [T+1, V, *frame_shape]
        else:
            rgb = np.zeros((num_obs, 0, 3, H, W), np.uint8)
        self._append_episode(
            rgb, low_dim, action, reward, terminated, intervention, episode_id, sample_mask
        )

    def _append_episode(
        self,
        rgb: np.ndarray,
        low_dim: np.ndarray,
        action: np.ndarray,
        reward: np.ndarray,
        terminated: bool,
        intervention: np.ndarray | None,
        episode_id: int | None,
        sample_mask: np.ndarray | None,
    ) -> None:
        """Bulk write of a checked episode, its frames as stored: [T+1, V, *frame_shape]."""
        num_obs = rgb.shape[0]
        T = num_obs - 1  # noqa: N806
        P, D = self.obs_spec.low_dim, self.action_dim  # noqa: N806
        checks = {
            "low_dim": (np.asarray(low_dim), (num_obs, P)),
            "action": (np.asarray(action), (T, D)),
            "reward": (np.asarray(reward), (T,)),
        }
        if intervention is not None:
            checks["intervention"] = (np.asarray(intervention), (T,))
        if sample_mask is not None:
            checks["sample_mask"] = (np.asarray(sample_mask), (T,))
        for name, (array, shape) in checks.items():
            if array.shape != shape or array.dtype.kind not in "fiub":
                raise ValueError(
                    f"{self._where()}: {name} must be numeric {shape} for an episode of "
                    f"{T} steps, got {array.dtype} {array.shape}"
                )
        for name in ("low_dim", "action", "reward"):
            if not np.all(np.isfinite(checks[name][0])):
                raise ValueError(f"{self._where()}: {name} contains NaN or inf")
        if num_obs > self.capacity:
            raise ValueError(
                f"{self._where()}: an episode of {T} steps needs {num_obs} slots; raise capacity"
            )
        self._close_open_episode()
        slots = (self._write + np.arange(num_obs)) % self.capacity
        self._claim(slots)
        seq = self._next_seq
        self._next_seq += 1
        self._reset_slots(slots, seq, np.arange(num_obs))
        self._rgb[slots] = rgb
        self._low[slots] = low_dim
        steps = slots[:T]
        self._action[steps] = action
        self._reward[steps] = reward
        if intervention is not None:
            self._intervention[steps] = np.asarray(intervention, bool)
        self._last[slots[T - 1]] = True
        self._terminated[slots[T - 1]] = bool(terminated)
        self._truncated[slots[T - 1]] = not terminated
        mask = np.ones(T, bool) if sample_mask is None else np.asarray(sample_mask, bool)
        self._add_valid(steps[mask])
        self._episodes[seq] = _Episode(int(slots[0]), num_obs, episode_id, open=False)
        self._write = int((slots[-1] + 1) % self.capacity)
        self._last_closed_seq = seq
        if self._counts():
            self.num_episodes_added += 1
            self.num_transitions_added += T

    def _episode_arrays(self, seq: int) -> dict[str, Any]:
        """A stored (closed) episode's arrays, frames as stored, for copying between
        buffers of the same frame encoder."""
        episode = self._episodes[seq]
        slots = (episode.start + np.arange(episode.num_slots)) % self.capacity
        steps = slots[:-1]
        return {
            "rgb": self._rgb[slots],  # [T+1, V, *frame_shape]
            "low_dim": self._low[slots],
            "action": self._action[steps],
            "reward": self._reward[steps],
            "terminated": bool(self._terminated[steps[-1]]),
            "intervention": self._intervention[steps],
            "episode_id": episode.episode_id,
        }

    def relabel_rewards(
        self, reward_fn: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
    ) -> int:
        """Recompute the reward of every stored transition, e.g. after a reward-model update.

        Args:
            reward_fn: (next_low_dim [N, P], action [N, D], terminated [N] float32) -> [N]
                rewards; called once with every transition in the buffer.

        Returns:
            How many transitions were relabelled.

        Raises:
            ValueError: reward_fn returned the wrong shape or a non-finite value; no reward
                is changed.
        """
        slots = [
            (e.start + np.arange(e.num_transitions)) % self.capacity
            for e in self._episodes.values()
        ]
        if not slots or not sum(s.size for s in slots):
            return 0
        t = np.concatenate(slots)  # [N] transition slots
        next_slots = (t + 1) % self.capacity
        terminated = self._terminated[t].astype(np.float32)
        rewards = np.asarray(reward_fn(self._low[next_slots], self._action[t], terminated))
        if rewards.shape != t.shape or not np.all(np.isfinite(rewards)):
            raise ValueError(
                f"{self._where()}: relabel_rewards: reward_fn must return {t.size} finite "
                f"rewards, got {rewards.dtype} {rewards.shape}; no reward was changed"
            )
        self._reward[t] = rewards
        return int(t.size)

    # -- sampling ----------------------------------------------------------------------

    def _plan(self, batch_size: int) -> _Plan:
        if self._num_valid == 0:
            raise ValueError(f"{self._where()}: sample() from an empty buffer; add episodes first")
        S, n, K, cap = self.obs_spec.frame_stack, self.nstep, self.action_sequence, self.capacity  # noqa: N806
        t = self._valid[self._rng.integers(0, self._num_valid, batch_size)]  # [b]
        window = max(n, K)
        slots = (t[:, None] + np.arange(window)) % cap  # [b, n|K]
        # alive[:, k]: step t+k is still in the episode (no last transition before it).
        ended = np.cumsum(self._last[slots], axis=1)  # [b, window]
        alive = np.ones_like(slots, dtype=bool)
        alive[:, 1:] = ended[:, :-1] == 0
        alive_n = alive[:, :n]  # [b, n]
        steps_n = alive_n.sum(1)  # n' per row
        gammas = self.discount ** np.arange(n, dtype=np.float64)
        rewards = np.where(alive_n, self._reward[slots[:, :n]], 0.0)
        reward = (rewards * gammas).sum(1).astype(np.float32)
        terminated = (self._terminated[slots[:, :n]] & alive_n).any(1)
        discount = np.where(terminated, 0.0, self.discount**steps_n).astype(np.float32)

        step = self._step[t]
        # Frame offsets from t, oldest first, clamped at the episode's first frame.
        back = np.arange(S - 1, -n - 1, -1)  # [S + n]: S-1 .. -n
        window_slots = (t[:, None] - np.minimum(back[None, :], step[:, None])) % cap  # [b, S+n]
        window_full = bool(np.all(steps_n == n))
        obs_slots = window_slots[:, :S]  # [b, S]
        if window_full:
            next_slots = window_slots[:, n:]  # [b, S]
        else:
            next_t = (t + steps_n) % cap
            back_s = np.arange(S - 1, -1, -1)
            next_step = (step + steps_n)[:, None]
            next_slots = (next_t[:, None] - np.minimum(back_s[None], next_step)) % cap

        alive_k = alive[:, :K]
        offsets = np.minimum(np.arange(K)[None, :], alive_k.sum(1)[:, None] - 1)  # [b, K]
        action_slots = (t[:, None] + offsets) % cap
        is_demo = np.full(batch_size, self.is_demo) | self._intervention[t]
        return _Plan(
            self, obs_slots, next_slots, window_full, window_slots, action_slots,
            reward, discount, is_demo,
        )

    def sample(self, batch_size: int, *, pin_memory: bool = False) -> Batch:
        """Draw `batch_size` transitions uniformly (with replacement).

        Args:
            pin_memory: put the tensors in page-locked memory (only where CUDA exists).

        Returns:
            A Batch of CPU tensors; rgb_obs/next_rgb_obs may be strided views of one
            shared image window (see the module docstring).

        Raises:
            ValueError: the buffer holds no sampleable transition.
        """
        return _assemble([self._plan(batch_size)], pin_memory)

    # -- state -------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """The index only: settings, counters, RNG and the store episode ids held.

        The contents are rebuilt from the store on resume (`load_state_dict`, then
        `load_from_store`), never pickled.
        """
        return {
            "format": STATE_FORMAT,
            "obs_spec": dataclasses.asdict(self.obs_spec),
            "action_dim": self.action_dim,
            "capacity": self.capacity,
            "nstep": self.nstep,
            "discount": self.discount,
            "action_sequence": self.action_sequence,
            "is_demo": self.is_demo,
            "episode_ids": self.episode_ids,
            "num_episodes_added": self.num_episodes_added,
            "num_transitions_added": self.num_transitions_added,
            "rng": self._rng.bit_generator.state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the index into an empty buffer of the same settings.

        The next `load_from_store` then loads into this buffer exactly the episodes listed
        in `state["episode_ids"]` (and does not count them again).

        Raises:
            ValueError: the buffer is not empty, or the state was saved with other settings.
        """
        if self._episodes:
            raise ValueError(
                f"{self._where()}: load_state_dict() into a buffer that holds "
                f"{self.num_episodes} episodes; call it on a fresh buffer"
            )
        if state.get("format") != STATE_FORMAT:
            raise ValueError(
                f"{self._where()}: state format {state.get('format')!r}, expected {STATE_FORMAT}"
            )
        mine = self.state_dict()
        for key in ("obs_spec", "action_dim", "capacity", "nstep", "discount",
                    "action_sequence", "is_demo"):
            saved = state[key]
            if key == "obs_spec":
                saved = {k: tuple(v) if isinstance(v, list) else v for k, v in saved.items()}
            if saved != mine[key]:
                raise ValueError(
                    f"{self._where()}: state has {key}={state[key]!r}, this buffer "
                    f"{mine[key]!r}; build the buffer with the saved settings"
                )
        self.num_episodes_added = int(state["num_episodes_added"])
        self.num_transitions_added = int(state["num_transitions_added"])
        self._rng.bit_generator.state = state["rng"]
        self._restore_ids = {int(i) for i in state["episode_ids"]}

    def _wants(self, episode_id: int) -> bool:
        return self._restore_ids is None or episode_id in self._restore_ids


def _assemble(plans: list[_Plan], pin_memory: bool) -> Batch:
    """Gather the planned rows of one or more buffers into one Batch."""
    spec = plans[0].buffer.obs_spec
    S, n = spec.frame_stack, plans[0].buffer.nstep  # noqa: N806
    V = len(spec.cameras)  # noqa: N806
    C, H, W = plans[0].buffer.frame_shape  # noqa: N806  (pixels: C = 3)
    pin = pin_memory and torch.cuda.is_available()
    B = sum(p.reward.shape[0] for p in plans)  # noqa: N806

    def cat(name: str) -> torch.Tensor:
        tensor = torch.from_numpy(np.concatenate([getattr(p, name) for p in plans]))
        return tensor.pin_memory() if pin else tensor

    def low(name: str) -> torch.Tensor:
        parts = [p.buffer._low[getattr(p, name)].reshape(-1, S * spec.low_dim) for p in plans]
        tensor = torch.from_numpy(np.concatenate(parts))  # [B, S·P]
        return tensor.pin_memory() if pin else tensor

    actions = np.concatenate([p.buffer._action[p.action_slots] for p in plans])  # [B, K, D]
    if plans[0].buffer.action_sequence == 1:
        actions = actions[:, 0]  # [B, D]
    action = torch.from_numpy(actions)
    if pin:
        action = action.pin_memory()

    rgb_obs = next_rgb_obs = None
    if V:
        shared = all(p.window_full for p in plans)
        length = S + n if shared else 2 * S  # frames gathered per row and view
        out = _image_output(plans[0].buffer, (B, V, length, C, H, W), pin)
        rows = out.view(B * V * length, C * H * W)
        views = torch.arange(V)
        start = 0
        for p in plans:
            slots = p.window_slots if shared else np.concatenate([p.obs_slots, p.next_slots], 1)
            index = torch.from_numpy(slots)[:, None, :] * V + views[None, :, None]  # [b, V, L]
            count = index.numel()
            torch.index_select(p.buffer._rgb_rows, 0, index.reshape(-1),
                               out=rows[start : start + count])
            start += count
        offset = n if shared else S
        rgb_obs = out[:, :, :S].reshape(B, V, C * S, H, W)  # [B, V, S·C, H, W] view
        next_rgb_obs = out[:, :, offset : offset + S].reshape(B, V, C * S, H, W)

    return Batch(
        rgb_obs=rgb_obs,
        low_dim_obs=low("obs_slots"),
        action=action,
        reward=cat("reward"),
        discount=cat("discount"),
        next_rgb_obs=next_rgb_obs,
        next_low_dim_obs=low("next_slots"),
        is_demo=cat("is_demo"),
    )


def _image_output(owner: ReplayBuffer, shape: tuple[int, ...], pin: bool) -> torch.Tensor:
    """An uninitialised tensor of the owner's frame dtype for the image (or feature) window.

    A fresh multi-100-MB allocation costs more in page faults than the gather itself, so
    unpinned windows come from a small pool of numpy arrays, reused only once no tensor of
    an earlier batch refers to them any more (the tensors keep their array alive, so the
    array's reference count says whether a batch is still held).
    """
    if pin:  # CUDA's host allocator caches pinned blocks itself
        return torch.empty(shape, dtype=owner._rgb_rows.dtype, pin_memory=True)
    pool = owner._out_pool
    for array in pool:
        # References: the pool list, `array`, getrefcount's argument.
        if array.shape == shape and sys.getrefcount(array) <= 3:
            return torch.from_numpy(array)
    array = np.empty(shape, owner.frame_dtype)
    if len(pool) < OUTPUT_POOL_SIZE:
        pool.append(array)
    else:
        pool[owner._out_pool_next] = array
        owner._out_pool_next = (owner._out_pool_next + 1) % OUTPUT_POOL_SIZE
    return torch.from_numpy(array)


def _check_compatible(online: ReplayBuffer, demos: ReplayBuffer) -> None:
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


def relabel_success(
    online: ReplayBuffer, demos: ReplayBuffer, seq: int | None = None, min_steps: int = 1
) -> bool:
    """Copy a successful online episode into the demo buffer (CQN's success relabelling).

    Args:
        seq: the online buffer's internal episode number; default the last finished one.
        min_steps: only episodes of at least this many steps are copied.

    Returns:
        True if the episode terminated in success and was copied.
    """
    seq = online._last_closed_seq if seq is None else seq
    if seq is None or seq not in online._episodes or online._episodes[seq].open:
        return False
    arrays = online._episode_arrays(seq)
    if not arrays["terminated"] or len(arrays["action"]) < min_steps:
        return False
    demos._append_episode(
        arrays["rgb"], arrays["low_dim"], arrays["action"], arrays["reward"], True,
        arrays["intervention"], arrays["episode_id"], None,
    )
    return True


def _copy_interventions(online: ReplayBuffer, demos: ReplayBuffer, seq: int,
                        min_steps: int = 1) -> bool:
    """Add an episode's intervention segments of at least `min_steps` steps to the demo
    buffer (HIL-SERL); the other steps travel along as stacking/n-step context but are
    never sampled there."""
    arrays = online._episode_arrays(seq)
    segments = demo_segments(arrays["intervention"], min_steps)
    if not segments.any():
        return False
    demos._append_episode(
        arrays["rgb"], arrays["low_dim"], arrays["action"], arrays["reward"],
        arrays["terminated"], arrays["intervention"], arrays["episode_id"], segments,
    )
    return True


class DemoAndOnline:
    """Streams into the online buffer, routes successes and interventions to the demo
    buffer, and samples `batch_size` online + `demo_batch_size` demo rows as one Batch.

    A finished online episode that succeeded is copied whole into the demo buffer; one
    that failed but had intervention steps is copied with only those steps sampleable.
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
        _check_compatible(online, demos)
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
        if self.online._open_seq is not None:
            seq = self.online._open_seq
            self.online._close_open_episode()
            if seq in self.online._episodes:
                self._route(seq)
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
        self.online.add(
            action, reward, next_rgb, next_low_dim,
            terminated=terminated, truncated=truncated, intervention=intervention,
        )
        if terminated or truncated:
            seq = self.online._last_closed_seq
            if seq is not None:
                self._route(seq)

    def _route(self, seq: int) -> None:
        if not relabel_success(self.online, self.demos, seq, self.min_demo_steps):
            _copy_interventions(self.online, self.demos, seq, self.min_demo_steps)

    def sample(self, *, pin_memory: bool = False) -> Batch:
        """`batch_size` online rows, then `demo_batch_size` demo rows (is_demo True)."""
        plans = [self.online._plan(self.batch_size)]
        if self.demo_batch_size and len(self.demos):
            plans.append(self.demos._plan(self.demo_batch_size))
        elif self.demo_batch_size and not self._warned_no_demos:
            log.warning("demo buffer is empty; sampling online transitions only")
            self._warned_no_demos = True
        return _assemble(plans, pin_memory)


def load_from_store(
    store: Any,
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
    judge: Callable[[Any], Any] | None = None,
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
        reward_delta: (episode id, steps) -> [T] added to the stored rewards: the late
            shaping values the learner saw live but the episode file does not hold.
        min_demo_steps: as DemoAndOnline's: shorter successes and intervention segments
            stay out of the demo buffer.
        judge: EpisodeData -> `robolearn.learn.judge.Verdict`: the run's learned success
            detector decides each episode's rewards, its success and where it ends, in
            place of the stored rewards and outcome (which the sim may have decided).

    Returns:
        How many episodes were loaded into at least one buffer.

    An episode whose file is corrupt is quarantined (`Store.quarantine_episode`: moved
    aside, its row marked incomplete) with a logged error, and the others load.

    Raises:
        ValueError: an episode lacks a camera or does not match the buffers' shapes.
        StoreError: an episode file is missing or cannot be quarantined.
    """
    _check_compatible(online, demos)
    if len(cameras) != len(online.obs_spec.cameras):
        raise ValueError(
            f"load_from_store: {len(cameras)} cameras {list(cameras)} given, the buffers' spec "
            f"has {len(online.obs_spec.cameras)}"
        )
    skip = set(skip_ids)
    if run_ids is None:
        records = store.list_episodes(task=task)
    else:
        records = [r for run in run_ids for r in store.list_episodes(run_id=run, task=task)]
        records.sort(key=lambda r: r.id)
    wanted = [
        r for r in records
        if r.id not in skip and (online._wants(r.id) or demos._wants(r.id))
    ]
    if progress:
        from tqdm import tqdm

        wanted = tqdm(wanted, desc="loading episodes", unit="episode")
    loaded = 0
    for record in wanted:
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
        arrays = data.arrays
        spec = online.obs_spec
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
            rgb = np.stack([data.images(c).transpose(0, 3, 1, 2) for c in cameras], axis=1)
            expected = (3, *online.obs_spec.image_hw)
            if rgb.shape[2:] != expected:
                raise ValueError(
                    f"load_from_store: episode {record.id} images are "
                    f"{rgb.shape[3:]}x3, the buffers expect {online.obs_spec.image_hw}"
                )
        else:
            rgb = np.zeros((record.num_steps + 1, 0, 3, *online.obs_spec.image_hw), np.uint8)
        success = record.outcome == "success"
        intervention = arrays.get("intervention")
        action = arrays["action"]
        reward = arrays["reward"]
        if reward_delta is not None:
            reward = reward + reward_delta(record.id, len(reward))
        if judge is not None:
            verdict = judge(data)
            success, reward, kept = verdict.success, verdict.reward, verdict.steps
            rgb, low_dim, action = rgb[:kept + 1], low_dim[:kept + 1], action[:kept]
            if intervention is not None:
                intervention = intervention[:kept]
        rgb = online._stored_frames(rgb)  # encoded once, for both buffers
        args = (rgb, low_dim, action, reward, success, intervention, record.id)
        took = False
        if online._wants(record.id):
            online._append_episode(*args, None)
            took = True
        if demos._wants(record.id):
            segments = (demo_segments(intervention, min_demo_steps)
                        if intervention is not None else None)
            if success and len(reward) >= min_demo_steps:
                demos._append_episode(*args, None)
                took = True
            elif segments is not None and segments.any():
                demos._append_episode(*args, segments)
                took = True
        loaded += took
    online._restore_ids = None
    demos._restore_ids = None
    log.info(
        "loaded %d episodes: online %d transitions, demos %d transitions",
        loaded, len(online), len(demos),
    )
    return loaded
