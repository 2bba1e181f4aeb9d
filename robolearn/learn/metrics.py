"""The learner's metrics: the UTD it holds, and one `learner_metrics` row per interval in
the run's store.

`UtdMeter` measures the updates-per-environment-step ratio the learner held over a recent
window against its target (learner.utd) and decides whether it is behind. The learner calls
`MetricsWriter.maybe_write` every loop turn; a row goes out when `every_s` has passed (and
once more at shutdown with `write`), to the store and to the experiment trackers
(robolearn.learn.tracking), which also get each episode the learner receives. Training never
stops for a sink: a store that cannot take a row costs that row and a logged warning, a
tracker that fails a warning and that tracker, nothing else.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import torch

from robolearn.errors import StoreError
from robolearn.learn.tracking import EpisodeOutcome, Tracker
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


# The held UTD is measured over this much recent time, s: long enough to span a few
# episodes and many updates of a slow learner, short enough to show a change within a minute.
UTD_WINDOW_S = 30.0
# The learner observes its counters at most this often (a sample per loop turn would fill
# the window with thousands of entries for a fast learner).
UTD_SAMPLE_EVERY_S = 1.0
# Held below this fraction of the target (with updates owed) is behind: the learner's own
# quantisation (it makes the update for a step after the step arrives) stays above it.
UTD_BEHIND_BELOW = 0.95
# ... over at least this much time, s: a few seconds after the learner became ready hold too
# few steps for the ratio to mean anything (one update late out of 20 steps reads as 0.95).
UTD_MIN_SPAN_S = 10.0


@dataclass(frozen=True)
class UtdReport:
    """The UTD (updates per environment step) the learner held over its recent window.

    `held` is `window_updates / window_env_steps`, None while no step came in the window.
    `owed` is how many updates the target asks for that are not made yet. `behind`: a
    target is set, steps came over at least UTD_MIN_SPAN_S, held is below UTD_BEHIND_BELOW
    of the target and updates are owed, i.e. the learner trains flat out and still cannot
    keep up.
    """

    target: float | None
    held: float | None
    updates_per_s: float
    env_steps_per_s: float
    window_s: float
    window_updates: int
    window_env_steps: int
    owed: int
    behind: bool

    def status_fields(self) -> dict[str, Any]:
        """The learner_status body fields (see robolearn.protocol.messages)."""
        return {"utd_target": self.target, "utd_held": self.held,
                "updates_per_s": self.updates_per_s, "env_steps_per_s": self.env_steps_per_s,
                "utd_window_s": self.window_s, "utd_window_updates": self.window_updates,
                "utd_window_env_steps": self.window_env_steps, "updates_owed": self.owed,
                "utd_behind": self.behind}

    def describe(self) -> str:
        """One line for the log: what was held against what was asked."""
        held = "n/a" if self.held is None else f"{self.held:.2f}"
        return (f"UTD {held} held over {self.window_s:.0f} s (target {self.target}): "
                f"{self.window_updates} updates for {self.window_env_steps} env steps, "
                f"{self.updates_per_s:.1f} updates/s at {self.env_steps_per_s:.1f} env "
                f"steps/s; {self.owed} updates owed")


class UtdMeter:
    """Measures the UTD held over the last `window_s` from the learner's counters.

    Args:
        target: learner.utd (None: no target; never behind).
        window_s: measuring window, s.
        clock: monotonic seconds (tests pass their own).
    """

    def __init__(self, target: float | None, window_s: float = UTD_WINDOW_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.target = target
        self.window_s = window_s
        self._clock = clock
        # (time, updates, env steps received), oldest first; the first one at or before
        # the window's start.
        self._samples: deque[tuple[float, int, int]] = deque()
        self._report = UtdReport(target, None, 0.0, 0.0, 0.0, 0, 0, 0, False)

    def observe(self, update_step: int, env_steps: int, owed: int, ready: bool,
                force: bool = False) -> UtdReport:
        """Take the counters now (at most every UTD_SAMPLE_EVERY_S unless `force`).

        Args:
            update_step: updates made so far.
            env_steps: environment steps received so far (finished episodes and those
                still arriving).
            owed: updates the target asks for that are not made yet.
            ready: the replay holds enough to train on (learner.min_transitions); until
                then nothing is measured, so waiting for data never reads as behind.
        Returns:
            The newest report (also what `report` returns until the next observation).
        """
        now = self._clock()
        if not ready:
            self._samples.clear()
            self._report = UtdReport(self.target, None, 0.0, 0.0, 0.0, 0, 0, owed, False)
            return self._report
        if (not force and self._samples
                and now - self._samples[-1][0] < UTD_SAMPLE_EVERY_S):
            return self._report
        self._samples.append((now, update_step, env_steps))
        while len(self._samples) > 2 and now - self._samples[1][0] >= self.window_s:
            self._samples.popleft()
        t0, u0, s0 = self._samples[0]
        span, updates, steps = now - t0, update_step - u0, env_steps - s0
        held = updates / steps if steps > 0 else None
        behind = (self.target is not None and held is not None and owed > 0
                  and span >= min(UTD_MIN_SPAN_S, self.window_s)
                  and held < UTD_BEHIND_BELOW * self.target)
        self._report = UtdReport(
            target=self.target, held=held,
            updates_per_s=updates / span if span > 0 else 0.0,
            env_steps_per_s=steps / span if span > 0 else 0.0,
            window_s=span, window_updates=updates, window_env_steps=steps, owed=owed,
            behind=behind)
        return self._report

    def report(self) -> UtdReport:
        """The report of the last observation (safe to read from another thread)."""
        return self._report


class MetricsWriter:
    """Writes learner samples for one learner process (`session`).

    Args:
        store: the run's store (opened by the learner).
        session: the learner process's id; updates/s is measured within one session.
        every_s: seconds between rows.
        run_id: the run the learner trains for; None: follow the run of the newest stored
            episode the actor sends (see `saw_episode`).
        clock: monotonic seconds (tests pass their own).
        tracker: experiment trackers that get every row and episode too (closed by
            `close`); None: the store only.
    """

    def __init__(self, store: Store, session: str, every_s: float, run_id: int | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 tracker: Tracker | None = None) -> None:
        self.store = store
        self.tracker = tracker
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

    def episode(self, outcome: EpisodeOutcome) -> None:
        """The learner took in an episode: track its return and success."""
        if self.tracker is not None:
            self.tracker.episode(outcome)

    def close(self) -> None:
        """Flush and close the trackers (the store is the learner's to close)."""
        if self.tracker is not None:
            self.tracker.close()

    def due(self) -> bool:
        return self._clock() - self._last_t >= self.every_s

    def maybe_write(self, progress: Progress, scalars: Mapping[str, torch.Tensor | float],
                    utd: UtdReport | None = None) -> LearnerMetricsRecord | None:
        """Write a row if `every_s` has passed since the last one."""
        return self.write(progress, scalars, utd) if self.due() else None

    def write(self, progress: Progress, scalars: Mapping[str, torch.Tensor | float],
              utd: UtdReport | None = None) -> LearnerMetricsRecord | None:
        """Write a row now (with the UTD held, when given); returns it, or None when the
        store refused it (logged)."""
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
        if utd is not None:
            sample = replace(sample, utd_target=utd.target, utd_held=utd.held,
                             env_steps_per_s=utd.env_steps_per_s, utd_behind=utd.behind)
        if self.tracker is not None:  # before the store: a store outage leaves it whole
            self.tracker.learner(sample)
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
