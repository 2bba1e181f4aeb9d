"""The learner's metrics sink: one `learner_metrics` row per interval in the run's store.

The learner calls `maybe_write` every loop turn; a row goes out when `every_s` has passed
(and once more at shutdown with `write`). Training never stops for the sink: a store that
cannot take a row costs that row and a logged warning, nothing else.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch

from robolearn.errors import StoreError
from robolearn.store import Store
from robolearn.store.learner_metrics import (
    LearnerMetricsRecord,
    LearnerSample,
    add_learner_metrics,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Progress:
    """The learner's counters and replay sizes at one moment."""

    update_step: int
    env_steps: int
    episodes: int
    online_transitions: int
    demo_transitions: int
    online_episodes: int
    demo_episodes: int


class MetricsWriter:
    """Writes learner samples for one learner process (`session`).

    Args:
        store: the run's store (opened by the learner).
        session: the learner process's id; updates/s is measured within one session.
        every_s: seconds between rows.
        run_id: the run the learner trains for; None: follow the run of the newest stored
            episode the actor sends (see `saw_episode`).
        clock: monotonic seconds (tests pass their own).
    """

    def __init__(self, store: Store, session: str, every_s: float, run_id: int | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.session = session
        self.every_s = every_s
        self.run_id = run_id
        self._fixed_run = run_id is not None
        self._clock = clock
        self._last_t = clock()
        self._last_update: int | None = None
        self._failed = False

    def begin(self, update_step: int) -> None:
        """Start measuring updates/s from `update_step` (a resumed learner's counter)."""
        self._last_t = self._clock()
        self._last_update = update_step

    def saw_episode(self, episode_id: int) -> None:
        """An actor stored episode `episode_id`: without a fixed run, follow its run."""
        if self._fixed_run:
            return
        try:
            run_id = self.store.get_episode(episode_id).run_id
        except StoreError as exc:
            log.warning("learner metrics: cannot find the run of episode %d (%s); rows keep "
                        "run %s", episode_id, exc, self.run_id)
            return
        if run_id != self.run_id:
            log.info("learner metrics: now writing for run %d", run_id)
            self.run_id = run_id

    def due(self) -> bool:
        return self._clock() - self._last_t >= self.every_s

    def maybe_write(self, progress: Progress,
                    scalars: Mapping[str, torch.Tensor | float]) -> LearnerMetricsRecord | None:
        """Write a row if `every_s` has passed since the last one."""
        return self.write(progress, scalars) if self.due() else None

    def write(self, progress: Progress,
              scalars: Mapping[str, torch.Tensor | float]) -> LearnerMetricsRecord | None:
        """Write a row now; returns it, or None when the store refused it (logged)."""
        now = self._clock()
        elapsed = now - self._last_t
        # The first row of a session has no previous update count to compare against.
        done = 0 if self._last_update is None else progress.update_step - self._last_update
        rate = done / elapsed if elapsed > 0 and done > 0 else 0.0
        self._last_t = now
        self._last_update = progress.update_step
        # Metrics stay detached tensors during training; turned into floats only here.
        values = {k: float(v) for k, v in scalars.items()}
        finite = {k: v for k, v in values.items() if v == v and abs(v) != float("inf")}
        if len(finite) != len(values):
            log.warning("learner metrics: non-finite %s left out of the row",
                        sorted(set(values) - set(finite)))
        sample = LearnerSample(session=self.session, updates_per_s=rate, scalars=finite,
                               **vars(progress))
        try:
            with self.store.session() as db:
                record = add_learner_metrics(db, self.run_id, sample)
                db.commit()
        except Exception as exc:  # StoreError or a database hiccup: never stop training
            self._warn(exc)
            return None
        self._failed = False
        return record

    def _warn(self, exc: Exception) -> None:
        # Once per failure streak: a database down for an hour must not flood the log.
        if not self._failed:
            log.warning("learner metrics: row not written (%s); training goes on", exc)
        self._failed = True
