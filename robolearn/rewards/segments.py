"""Segments of logged episodes and the per-step features a preference model reads.

A segment is steps `start..end` (inclusive) of one episode, the same convention as the
`preference_queries` columns. Step t's features are the inputs of `PreferenceConfig.inputs`:
"action" is action t; any observation array (proprio, state, ...) is taken at t+1, the
observation the action led to, so a step is judged by what it achieved.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence

import numpy as np

from robolearn.errors import RewardModelError, StoreError
from robolearn.store import EpisodeData, Store

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, order=True)
class Segment:
    episode_id: int
    start: int
    end: int  # inclusive

    @property
    def steps(self) -> int:
        return self.end - self.start + 1


def step_features(data: EpisodeData, inputs: Sequence[str]) -> np.ndarray:
    """[T, F] float32 features of every step of an episode.

    Raises:
        RewardModelError: an input array is missing from the episode.
    """
    parts = []
    for key in inputs:
        array = data.arrays.get(key)
        if array is None:
            raise RewardModelError(
                f"preference model input {key!r}: episode {data.record.id} has no such array "
                f"(it has {sorted(data.arrays)}); change rewards.preference.inputs"
            )
        array = np.asarray(array, np.float32).reshape(array.shape[0], -1)
        parts.append(array if key == "action" else array[1:])  # obs t+1 for step t
    return np.concatenate(parts, axis=1)


class FeatureCache:
    """Per-episode step features, loaded from the store once each."""

    def __init__(self, store: Store, inputs: Sequence[str]) -> None:
        self.store = store
        self.inputs = tuple(inputs)
        self._features: dict[int, np.ndarray] = {}

    def episode(self, episode_id: int) -> np.ndarray:
        if episode_id not in self._features:
            try:
                data = self.store.load_episode(episode_id)
            except StoreError as exc:
                raise RewardModelError(f"preference data: {exc}") from exc
            self._features[episode_id] = step_features(data, self.inputs)
        return self._features[episode_id]

    def segments(self, segments: Sequence[Segment]) -> np.ndarray:
        """[N, L, F] features of equally long segments.

        Raises:
            RewardModelError: segments of different lengths or outside their episode.
        """
        lengths = {s.steps for s in segments}
        if len(lengths) > 1:
            raise RewardModelError(f"preference segments have different lengths {lengths}")
        out = []
        for s in segments:
            features = self.episode(s.episode_id)
            if s.start < 0 or s.end >= features.shape[0]:
                raise RewardModelError(
                    f"segment {s.start}..{s.end} of episode {s.episode_id} lies outside its "
                    f"{features.shape[0]} steps"
                )
            out.append(features[s.start : s.end + 1])
        return np.stack(out)


def random_segments(lengths: dict[int, int], steps: int, n: int,
                    rng: np.random.Generator) -> list[Segment]:
    """n random segments of `steps` steps from episodes {id: num_steps} long enough."""
    usable = [(e, t) for e, t in sorted(lengths.items()) if t >= steps]
    if not usable:
        raise RewardModelError(
            f"no episode has at least {steps} steps to cut a segment from; record longer "
            "episodes or lower rewards.preference.segment_steps"
        )
    picks = rng.integers(0, len(usable), n)
    out = []
    for i in picks.tolist():
        episode_id, num_steps = usable[i]
        start = int(rng.integers(0, num_steps - steps + 1))
        out.append(Segment(episode_id, start, start + steps - 1))
    return out
