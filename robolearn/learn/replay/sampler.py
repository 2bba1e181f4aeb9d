"""Sample-time stacking, n-step returns and action sequences over an episode ring, and the
gather of one or more buffers' rows into one Batch.

Frame stacks clamp at step 0 (the first frame repeats) and n-step windows stop at the
episode's last transition, so nothing ever crosses an episode boundary.

Sampling is vectorised: `SlotIndex.draw` picks B sampleable slots, `NStepSampler.plan` does
the index arithmetic, and `assemble` gathers with fancy indexing / `torch.index_select`.
With n = 1 the observation and next-observation stacks of a row share S−1 frames, so the
images are gathered once as a [B, V, S+1] window and `rgb_obs`/`next_rgb_obs` are strided
views into it (valid torch tensors, not contiguous).
"""

from __future__ import annotations

import dataclasses
import sys

import numpy as np
import torch

from robolearn.learn.batch import Batch
from robolearn.learn.replay.ring import EpisodeRing

OUTPUT_POOL_SIZE = 3  # image windows kept for reuse per buffer (each ~B·V·(S+n) frames)


class ImagePool:
    """Uninitialised image (or feature) windows of one dtype, reused across batches.

    A fresh multi-100-MB allocation costs more in page faults than the gather itself, so
    unpinned windows come from a small pool of numpy arrays, reused only once no tensor of
    an earlier batch refers to them any more (the tensors keep their array alive, so the
    array's reference count says whether a batch is still held).
    """

    def __init__(self, dtype: np.dtype, size: int = OUTPUT_POOL_SIZE) -> None:
        self.dtype = np.dtype(dtype)
        self.torch_dtype = torch.from_numpy(np.empty(0, self.dtype)).dtype
        self.size = size
        self._arrays: list[np.ndarray] = []
        self._next = 0  # the array replaced when every one is still held

    def take(self, shape: tuple[int, ...], pin: bool) -> torch.Tensor:
        if pin:  # CUDA's host allocator caches pinned blocks itself
            return torch.empty(shape, dtype=self.torch_dtype, pin_memory=True)
        for array in self._arrays:
            # References: the pool list, `array`, getrefcount's argument.
            if array.shape == shape and sys.getrefcount(array) <= 3:
                return torch.from_numpy(array)
        array = np.empty(shape, self.dtype)
        if len(self._arrays) < self.size:
            self._arrays.append(array)
        else:
            self._arrays[self._next] = array
            self._next = (self._next + 1) % self.size
        return torch.from_numpy(array)


@dataclasses.dataclass
class Plan:
    """The index arithmetic of one buffer's share of a batch (no image data yet)."""

    sampler: NStepSampler
    obs_slots: np.ndarray  # [b, S]
    next_slots: np.ndarray  # [b, S]
    window_full: bool  # every row has a full n-step window (n' == n)
    window_slots: np.ndarray  # [b, S + n], valid when window_full
    action_slots: np.ndarray  # [b, K]
    reward: np.ndarray  # [b]
    discount: np.ndarray  # [b]
    is_demo: np.ndarray  # [b]


class NStepSampler:
    """Draws rows from one ring: S-frame stacks, n-step returns, K-action sequences.

    Args:
        ring: the storage sampled.
        frame_stack: S. nstep: n. discount: γ. action_sequence: K.
        is_demo: every row is marked is_demo (the demo buffer); otherwise only rows whose
            transition was under operator intervention.
        seed: seed of the sampling generator (`rng`, saved with the buffer's state).
        name: how errors name the buffer.
    """

    def __init__(self, ring: EpisodeRing, *, frame_stack: int, nstep: int, discount: float,
                 action_sequence: int, is_demo: bool, seed: int | None, name: str) -> None:
        self.ring = ring
        self.frame_stack = frame_stack
        self.nstep = nstep
        self.discount = discount
        self.action_sequence = action_sequence
        self.is_demo = is_demo
        self.rng = np.random.default_rng(seed)
        self.name = name
        self.pool = ImagePool(ring.frames.dtype)

    def plan(self, batch_size: int) -> Plan:
        """Pick `batch_size` rows and work out every slot they read.

        Raises:
            ValueError: the ring holds no sampleable transition.
        """
        ring = self.ring
        if ring.index.size == 0:
            raise ValueError(f"{self.name}: sample() from an empty buffer; add episodes first")
        S, n, K, cap = self.frame_stack, self.nstep, self.action_sequence, ring.capacity  # noqa: N806
        t = ring.index.draw(self.rng, batch_size)  # [b]
        window = max(n, K)
        slots = (t[:, None] + np.arange(window)) % cap  # [b, n|K]
        # alive[:, k]: step t+k is still in the episode (no last transition before it).
        ended = np.cumsum(ring.last[slots], axis=1)  # [b, window]
        alive = np.ones_like(slots, dtype=bool)
        alive[:, 1:] = ended[:, :-1] == 0
        alive_n = alive[:, :n]  # [b, n]
        steps_n = alive_n.sum(1)  # n' per row
        gammas = self.discount ** np.arange(n, dtype=np.float64)
        rewards = np.where(alive_n, ring.reward[slots[:, :n]], 0.0)
        reward = (rewards * gammas).sum(1).astype(np.float32)
        terminated = (ring.terminated[slots[:, :n]] & alive_n).any(1)
        discount = np.where(terminated, 0.0, self.discount**steps_n).astype(np.float32)

        step = ring.step[t]
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
        is_demo = np.full(batch_size, self.is_demo) | ring.intervention[t]
        return Plan(
            self, obs_slots, next_slots, window_full, window_slots, action_slots,
            reward, discount, is_demo,
        )


def assemble(plans: list[Plan], pin_memory: bool) -> Batch:
    """Gather the planned rows of one or more buffers (of the same layout) into one Batch."""
    first = plans[0].sampler
    S, n = first.frame_stack, first.nstep  # noqa: N806
    P = first.ring.low_dim.shape[1]  # noqa: N806
    V = first.ring.frames.shape[1]  # noqa: N806
    C, H, W = first.ring.frames.shape[2:]  # noqa: N806  (pixels: C = 3)
    pin = pin_memory and torch.cuda.is_available()
    B = sum(p.reward.shape[0] for p in plans)  # noqa: N806

    def cat(name: str) -> torch.Tensor:
        tensor = torch.from_numpy(np.concatenate([getattr(p, name) for p in plans]))
        return tensor.pin_memory() if pin else tensor

    def low(name: str) -> torch.Tensor:
        parts = [p.sampler.ring.low_dim[getattr(p, name)].reshape(-1, S * P) for p in plans]
        tensor = torch.from_numpy(np.concatenate(parts))  # [B, S·P]
        return tensor.pin_memory() if pin else tensor

    actions = np.concatenate([p.sampler.ring.action[p.action_slots] for p in plans])  # [B, K, D]
    if first.action_sequence == 1:
        actions = actions[:, 0]  # [B, D]
    action = torch.from_numpy(actions)
    if pin:
        action = action.pin_memory()

    rgb_obs = next_rgb_obs = None
    if V:
        shared = all(p.window_full for p in plans)
        length = S + n if shared else 2 * S  # frames gathered per row and view
        out = first.pool.take((B, V, length, C, H, W), pin)
        rows = out.view(B * V * length, C * H * W)
        views = torch.arange(V)
        start = 0
        for p in plans:
            slots = p.window_slots if shared else np.concatenate([p.obs_slots, p.next_slots], 1)
            index = torch.from_numpy(slots)[:, None, :] * V + views[None, :, None]  # [b, V, L]
            count = index.numel()
            torch.index_select(p.sampler.ring.frame_rows, 0, index.reshape(-1),
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
