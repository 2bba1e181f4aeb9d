"""ReplayBuffer: one buffer's public face — checks what comes in, streams or bulk-writes
episodes into its ring, samples through its sampler, saves and restores its index.

Features instead of pixels. Given a `FrameEncoder` (CQNConfig.encoder "pretrained"), a buffer
keeps each camera frame as the frozen model's feature map [C, h, w] (uint8 or float16), encoded
once as the frame comes in (`start_episode`, `add`, `add_episode`, `encode_frames`); the
pixels are not kept, and batches carry the stacked features in `rgb_obs`' place.
`slot_nbytes` says what a slot costs either way.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from robolearn.learn.batch import Batch, FrameEncoder, ObsSpec
from robolearn.learn.replay.episode import ReplayEpisode
from robolearn.learn.replay.ring import EpisodeRing
from robolearn.learn.replay.sampler import NStepSampler, Plan, assemble

log = logging.getLogger(__name__)

STATE_FORMAT = 1


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
        # A transition becomes sampleable once `_lag` later transitions exist (or its
        # episode ended): the n-step window needs obs t+n, the sequence actions up to t+K-1.
        self._lag = max(nstep, action_sequence) - 1

        H, W = obs_spec.image_hw  # noqa: N806
        self.frame_encoder = frame_encoder
        # What one camera frame is kept as: its pixels [3, H, W] or its features [C, h, w].
        self.frame_shape: tuple[int, ...] = (
            (3, H, W) if frame_encoder is None else tuple(frame_encoder.frame_shape))
        self.frame_dtype = np.dtype(np.uint8 if frame_encoder is None else frame_encoder.dtype)
        self._ring = EpisodeRing(capacity, len(obs_spec.cameras), self.frame_shape,
                                 self.frame_dtype, obs_spec.low_dim, action_dim)
        self._sampler = NStepSampler(
            self._ring, frame_stack=obs_spec.frame_stack, nstep=nstep, discount=self.discount,
            action_sequence=action_sequence, is_demo=is_demo, seed=seed, name=self._where())
        self.num_episodes_added = 0
        self.num_transitions_added = 0
        self._restore_ids: set[int] | None = None  # set by load_state_dict until reloaded

    # -- sizes -------------------------------------------------------------------------

    def __len__(self) -> int:
        """Sampleable transitions."""
        return self._ring.index.size

    def slot_nbytes(self) -> int:
        """Bytes one slot (an observation and its transition) costs in this buffer's arrays;
        capacity × this is the buffer's memory."""
        return self._ring.slot_nbytes()

    @property
    def num_episodes(self) -> int:
        """Episodes with slots in the buffer (an open, streaming one included)."""
        return len(self._ring.episodes)

    @property
    def episode_ids(self) -> list[int]:
        """Store episode ids of the episodes in the buffer, oldest first."""
        return [e.episode_id for e in self._ring.episodes.values() if e.episode_id is not None]

    @property
    def episode_keys(self) -> list[int]:
        """The buffer's keys of the episodes it holds (an open one included), oldest first;
        `episode(key)` reads one."""
        return list(self._ring.episodes)

    @property
    def last_finished(self) -> int | None:
        """Key of the newest episode that finished (or was appended), while still held."""
        return self._ring.last_finished

    def episode(self, key: int) -> ReplayEpisode | None:
        """A held, finished episode (copies of its arrays, frames as stored), or None when
        the key is evicted, unknown or still streaming."""
        slots = self._ring.episodes.get(key)
        if slots is None or slots.open:
            return None
        return self._ring.read_episode(key)

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

    def encode_frames(self, frames: np.ndarray) -> np.ndarray:
        """Checked pixels [N, V, 3, H, W] -> what the buffer keeps, [N, V, *frame_shape]
        (the frame encoder's features, or the pixels themselves)."""
        if self.frame_encoder is None:
            return frames
        if frames.shape[1] == 0:  # no cameras: nothing to encode
            return np.zeros((frames.shape[0], 0, *self.frame_shape), self.frame_dtype)
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

    def _check_episode(self, episode: ReplayEpisode, sample_mask: np.ndarray | None) -> None:
        frames = np.asarray(episode.frames)
        num_obs = frames.shape[0] if frames.ndim else 0
        T = num_obs - 1  # noqa: N806
        expected = (num_obs, len(self.obs_spec.cameras), *self.frame_shape)
        if T < 1 or frames.shape != expected or frames.dtype != self.frame_dtype:
            raise ValueError(
                f"{self._where()}: frames must be {self.frame_dtype} [T+1, V, *frame_shape] "
                f"with T >= 1, e.g. {expected}, got {frames.dtype} {frames.shape}"
            )
        P, D = self.obs_spec.low_dim, self.action_dim  # noqa: N806
        checks = {
            "low_dim": (np.asarray(episode.low_dim), (num_obs, P)),
            "action": (np.asarray(episode.action), (T, D)),
            "reward": (np.asarray(episode.reward), (T,)),
        }
        if episode.intervention is not None:
            checks["intervention"] = (np.asarray(episode.intervention), (T,))
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

    # -- writing -----------------------------------------------------------------------

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
        frame = self.encode_frames(self._check_rgb(rgb, "rgb")[None])[0]
        low = self._check_vector(low_dim, self.obs_spec.low_dim, "low_dim")
        self.close_open_episode()
        self._ring.begin(frame, low, episode_id)

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
    ) -> int | None:
        """Append one step to the open episode: the action taken, its reward, the next obs.

        Args:
            terminated: the task succeeded at this step (the episode ends; no bootstrap).
            truncated: the episode ends here without success (timeout, abort); bootstraps.
            intervention: an operator was in control for this step.

        Returns:
            The key of the episode this step finished, or None while it goes on.

        Raises:
            ValueError: no open episode, bad shapes/dtypes, or the episode would not fit
                in the buffer; nothing is written.
        """
        ring = self._ring
        if ring.open_key is None:
            raise ValueError(f"{self._where()}: add() before start_episode(); start one first")
        act = self._check_vector(action, self.action_dim, "action")
        if isinstance(reward, bool) or not isinstance(reward, (int, float, np.number)) or (
            not math.isfinite(float(reward))
        ):
            raise ValueError(f"{self._where()}: reward must be a finite number, got {reward!r}")
        frame = self.encode_frames(self._check_rgb(next_rgb, "next_rgb")[None])[0]
        low = self._check_vector(next_low_dim, self.obs_spec.low_dim, "next_low_dim")
        num_slots = ring.episodes[ring.open_key].num_slots
        if num_slots + 1 > self.capacity:
            raise ValueError(
                f"{self._where()}: episode longer than the buffer ({num_slots} steps); "
                "raise capacity above the longest episode"
            )
        key = ring.open_key
        j = ring.extend(act, float(reward), bool(intervention), frame, low)
        if self._counts():
            self.num_transitions_added += 1
        if terminated or truncated:
            self._finish_open_episode(bool(terminated))
            return key
        if j - self._lag >= 0:
            ring.index.add(ring.transition_slots(key, np.array([j - self._lag])))
        return None

    def _finish_open_episode(self, terminated: bool) -> int:
        ring = self._ring
        key = ring.finish_open(terminated)
        T = ring.episodes[key].num_transitions  # noqa: N806
        ring.index.add(ring.transition_slots(key, np.arange(max(0, T - 1 - self._lag), T)))
        if self._counts():
            self.num_episodes_added += 1
        return key

    def close_open_episode(self) -> int | None:
        """End a streaming episode that stopped without terminated/truncated (an abort): it
        is kept as truncated at its last step.

        Returns:
            Its key, or None when no episode was open or the open one had no step yet (a
            lone first observation teaches nothing and is dropped).
        """
        ring = self._ring
        if ring.open_key is None:
            return None
        if ring.episodes[ring.open_key].num_transitions == 0:
            ring.evict(ring.open_key)
            return None
        log.info("%s: episode closed as truncated by a new start_episode()", self._where())
        return self._finish_open_episode(terminated=False)

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
    ) -> int:
        """Add a whole episode at once, from its camera images.

        Args:
            images: per camera uint8 [T+1, H, W, 3] (None without cameras).
            low_dim: [T+1, P]. action: [T, D]. reward: [T].
            terminated: the episode ended in success (its last step does not bootstrap);
                otherwise it was truncated and its last step bootstraps from the final obs.
            intervention: [T] bool, steps under operator control.
            episode_id: the store's id of the episode.
            sample_mask: as append_episode's.

        Returns:
            The episode's key in this buffer.

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
            frames = self.encode_frames(rgb)  # [T+1, V, *frame_shape]
        else:
            frames = np.zeros((num_obs, 0, *self.frame_shape), self.frame_dtype)
        episode = ReplayEpisode(frames, low_dim, action, reward, bool(terminated),
                                intervention, episode_id)
        return self.append_episode(episode, sample_mask=sample_mask)

    def append_episode(self, episode: ReplayEpisode, *,
                       sample_mask: np.ndarray | None = None) -> int:
        """Write a whole episode, its frames as this buffer stores them; an open streaming
        episode is closed first.

        Args:
            episode: the episode (`encode_frames` turns pixels into its `frames`).
            sample_mask: [T] bool, which transitions may be sampled (default all); the rest
                are stored only as stacking/n-step context (interventions in the demo buffer).

        Returns:
            The episode's key in this buffer.

        Raises:
            ValueError: wrong shapes/dtypes or an episode longer than the buffer; nothing is
                written.
        """
        self._check_episode(episode, sample_mask)
        self.close_open_episode()
        key, steps = self._ring.write_episode(episode)
        if sample_mask is not None:
            steps = steps[np.asarray(sample_mask, bool)]
        self._ring.index.add(steps)
        if self._counts():
            self.num_episodes_added += 1
            self.num_transitions_added += episode.num_steps
        return key

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
        ring = self._ring
        slots = [ring.transition_slots(key, np.arange(e.num_transitions))
                 for key, e in ring.episodes.items()]
        if not slots or not sum(s.size for s in slots):
            return 0
        t = np.concatenate(slots)  # [N] transition slots
        next_slots = (t + 1) % self.capacity
        terminated = ring.terminated[t].astype(np.float32)
        rewards = np.asarray(reward_fn(ring.low_dim[next_slots], ring.action[t], terminated))
        if rewards.shape != t.shape or not np.all(np.isfinite(rewards)):
            raise ValueError(
                f"{self._where()}: relabel_rewards: reward_fn must return {t.size} finite "
                f"rewards, got {rewards.dtype} {rewards.shape}; no reward was changed"
            )
        ring.reward[t] = rewards
        return int(t.size)

    # -- sampling ----------------------------------------------------------------------

    def plan(self, batch_size: int) -> Plan:
        """This buffer's share of a batch, for `sampler.assemble` to gather with others'.

        Raises:
            ValueError: the buffer holds no sampleable transition.
        """
        return self._sampler.plan(batch_size)

    def sample(self, batch_size: int, *, pin_memory: bool = False) -> Batch:
        """Draw `batch_size` transitions uniformly (with replacement).

        Args:
            pin_memory: put the tensors in page-locked memory (only where CUDA exists).

        Returns:
            A Batch of CPU tensors; rgb_obs/next_rgb_obs may be strided views of one
            shared image window (see `robolearn.learn.replay.sampler`).

        Raises:
            ValueError: the buffer holds no sampleable transition.
        """
        return assemble([self._sampler.plan(batch_size)], pin_memory)

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
            "rng": self._sampler.rng.bit_generator.state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the index into an empty buffer of the same settings.

        The next `load_from_store` then loads into this buffer exactly the episodes listed
        in `state["episode_ids"]` (and does not count them again).

        Raises:
            ValueError: the buffer is not empty, or the state was saved with other settings.
        """
        if self._ring.episodes:
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
        self._sampler.rng.bit_generator.state = state["rng"]
        self._restore_ids = {int(i) for i in state["episode_ids"]}

    def wants(self, episode_id: int) -> bool:
        """Whether a store episode belongs in this buffer: any, except while it is restored
        from a state_dict (then only those it held)."""
        return self._restore_ids is None or episode_id in self._restore_ids

    def end_restore(self) -> None:
        """The store reload after load_state_dict is done: take any episode again, and
        count from here on."""
        self._restore_ids = None
