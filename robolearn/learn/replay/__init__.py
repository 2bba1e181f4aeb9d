"""Replay buffers of the CQN learner: episode ring storage, sample-time stacking and n-step,
demo routing, and loading from the store.

Example::

    spec = ObsSpec(cameras=("front", "wrist"), image_hw=(84, 84), frame_stack=8, low_dim=8)
    online = ReplayBuffer(spec, action_dim=8, capacity=100_000, seed=0)
    demos = ReplayBuffer(spec, action_dim=8, capacity=20_000, is_demo=True, seed=1)
    load_from_store(store, online, demos, task="pick_cube", cameras=spec.cameras)
    sampler = DemoAndOnline(online, demos, batch_size=256, demo_batch_size=256)
    batch = sampler.sample()                     # Batch, 256 online rows then 256 demo rows

Modules, each on the others' public API only:

- `episode`: `ReplayEpisode`, a whole episode as a buffer stores it (`append_episode`'s
  argument, and what `ReplayBuffer.episode(key)` reads back).
- `ring`: `EpisodeRing`, one buffer's slot arrays, episode table, eviction of whole
  episodes, and the dense index of sampleable slots.
- `sampler`: `NStepSampler` (frame stacks, n-step returns, action sequences, never across an
  episode boundary) and `assemble`, which gathers one or more buffers' rows into a Batch.
- `buffer`: `ReplayBuffer`, checks input, streams (`start_episode`/`add`) or appends whole
  episodes, samples, saves and restores its index.
- `demos`: demo routing (success relabelling, intervention segments) and `DemoAndOnline`.
- `loading`: `read_store_episodes` (store I/O) and `append_loaded` (into the buffers), run
  together by `load_from_store`.
- `archive`: `EpisodeArchive`, the learner's own copy of the episodes it received, for a
  resume on a host that does not share the actors' disks.
"""

from robolearn.learn.replay.buffer import STATE_FORMAT, ReplayBuffer
from robolearn.learn.replay.demos import (
    DemoAndOnline,
    check_compatible,
    demo_segments,
    relabel_success,
    route_to_demos,
)
from robolearn.learn.replay.episode import ReplayEpisode
from robolearn.learn.replay.loading import (
    StoreEpisode,
    append_loaded,
    load_from_store,
    read_store_episodes,
)
from robolearn.learn.replay.sampler import OUTPUT_POOL_SIZE

__all__ = [
    "OUTPUT_POOL_SIZE",
    "STATE_FORMAT",
    "DemoAndOnline",
    "ReplayBuffer",
    "ReplayEpisode",
    "StoreEpisode",
    "append_loaded",
    "check_compatible",
    "demo_segments",
    "load_from_store",
    "read_store_episodes",
    "relabel_success",
    "route_to_demos",
]
