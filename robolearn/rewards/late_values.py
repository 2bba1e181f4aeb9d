"""Bookkeeping of shaping values that arrive after their step (from reward workers).

The actor records a step at once with the inline part of its reward; a worker's value for
that step comes later. `LateValues` remembers which (step, source) values each episode still
awaits; once an episode has ended and nothing is awaited (arrived, dropped, or its worker
died), it is complete: its values go into the same step rows of the store
(`store_late_values`, merged into each row's `scalars`, nothing else touched) and its
per-step reward delta (sum of weight * value) goes to the learner.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping

import numpy as np

from robolearn.errors import StoreError
from robolearn.store import Store, episodes

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class CompletedEpisode:
    """An ended episode whose late values are all in (or known to be missing)."""

    key: str  # the actor's episode key
    episode_id: int | None  # its store id; None when it was not recorded
    to_learner: bool  # its transitions went to the learner
    values: dict[int, dict[str, float]]  # step -> source -> value
    reward_delta: np.ndarray  # [T] float32, sum of weight * value per step (0 if missing)
    missing: int  # (step, source) values that never came


@dataclasses.dataclass
class _Episode:
    awaited: set[tuple[int, str]] = dataclasses.field(default_factory=set)
    values: dict[int, dict[str, float]] = dataclasses.field(default_factory=dict)
    missing: int = 0
    steps: int | None = None  # set when the episode ends
    episode_id: int | None = None
    to_learner: bool = False


class LateValues:
    """Args:
        weights: source -> weight of every worker-run shaping term.
    """

    def __init__(self, weights: Mapping[str, float]) -> None:
        self.weights = dict(weights)
        self._episodes: dict[str, _Episode] = {}
        self._dead: set[str] = set()

    @property
    def awaited(self) -> int:
        """Values still expected from workers, all episodes together."""
        return sum(len(e.awaited) for e in self._episodes.values())

    def start(self, key: str) -> None:
        self._episodes[key] = _Episode()

    def expect(self, key: str, step: int, source: str) -> None:
        """A worker accepted the step: its value will come (or the worker dies)."""
        if source in self._dead:
            self.lost(key, step, source)
        else:
            self._episodes[key].awaited.add((step, source))

    def lost(self, key: str, step: int, source: str) -> None:
        """The step never reached the worker: its value is missing."""
        self._episodes[key].missing += 1

    def add(self, key: str, source: str, steps: np.ndarray, values: np.ndarray) -> int:
        """Values from a worker; returns how many were awaited (others are ignored: an
        episode discarded meanwhile, or a duplicate)."""
        episode = self._episodes.get(key)
        if episode is None:
            return 0
        taken = 0
        for step, value in zip(steps.tolist(), values.tolist(), strict=True):
            if (step, source) in episode.awaited:
                episode.awaited.discard((step, source))
                episode.values.setdefault(step, {})[source] = float(value)
                taken += 1
        return taken

    def worker_died(self, source: str) -> None:
        """Every value still awaited from `source` is missing, now and later."""
        self._dead.add(source)
        for episode in self._episodes.values():
            gone = {a for a in episode.awaited if a[1] == source}
            episode.awaited -= gone
            episode.missing += len(gone)

    def worker_restarted(self, source: str) -> None:
        """A new worker runs `source` again: its values are awaited from now on."""
        self._dead.discard(source)

    def end(self, key: str, steps: int, episode_id: int | None, to_learner: bool) -> None:
        """The episode ended after `steps` steps (stored as `episode_id`, if recorded)."""
        episode = self._episodes[key]
        episode.steps, episode.episode_id, episode.to_learner = steps, episode_id, to_learner

    def discard(self, key: str) -> None:
        """Forget an episode that was not recorded whole (an actor error)."""
        self._episodes.pop(key, None)

    def give_up(self) -> None:
        """Everything still awaited is missing (the run ends without waiting longer)."""
        for episode in self._episodes.values():
            episode.missing += len(episode.awaited)
            episode.awaited.clear()

    def completed(self) -> list[CompletedEpisode]:
        """Ended episodes with nothing awaited, oldest first; they are forgotten here."""
        done = [k for k, e in self._episodes.items() if e.steps is not None and not e.awaited]
        out = []
        for key in done:
            episode = self._episodes.pop(key)
            assert episode.steps is not None
            delta = np.zeros(episode.steps, np.float32)  # [T]
            for step, values in episode.values.items():
                if step < episode.steps:
                    delta[step] = sum(self.weights[s] * v for s, v in values.items())
            out.append(CompletedEpisode(key, episode.episode_id, episode.to_learner,
                                        episode.values, delta, episode.missing))
        return out


def store_late_values(store: Store, episode_id: int, values: Mapping[int, Mapping[str, float]]
                      ) -> int:
    """Merge late values into the `scalars` of an episode's step rows (step index -> name ->
    value); every other column and every existing scalar is kept.

    Returns:
        How many step rows were updated.

    Raises:
        StoreError: the episode has no step rows for some of the steps (nothing is changed),
            or the database failed.
    """
    if not values:
        return 0
    try:
        with store.session() as session, session.begin():
            rows = episodes.list_steps(session, episode_id, list(values))
            if len(rows) != len(values):
                found = {r.index for r in rows}
                raise StoreError(
                    f"episode {episode_id}: late reward values for steps "
                    f"{sorted(set(values) - found)[:10]} that have no step row; nothing "
                    "was changed (was the episode stored?)")
            for row in rows:
                # A new dict, so SQLAlchemy sees the JSON column change.
                row.scalars = {**(row.scalars or {}), **values[row.index]}
    except StoreError:
        raise
    except Exception as exc:  # SQLAlchemy errors: the transaction rolled back
        raise StoreError(f"episode {episode_id}: storing late reward values failed "
                         f"({type(exc).__name__}: {exc}); the step rows are unchanged") from exc
    return len(rows)


def stored_late_delta(store: Store, episode_id: int, weights: Mapping[str, float],
                      num_steps: int) -> np.ndarray:
    """The per-step reward the late (worker) shaping terms added to a stored episode:
    sum of weight * value over the step rows' `scalars` ([T] float32; a value that never
    arrived adds 0, as it did for the learner that saw the episode live)."""
    delta = np.zeros(num_steps, dtype=np.float32)
    if not weights:
        return delta
    with store.session() as session:
        rows = [(s.index, s.scalars) for s in episodes.list_steps(session, episode_id)]
    for index, scalars in rows:
        if 0 <= index < num_steps and scalars:
            delta[index] = sum(w * float(scalars[name]) for name, w in weights.items()
                               if name in scalars)
    return delta
