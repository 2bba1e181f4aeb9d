"""Preferences while training: queries from the active training run's new episodes at the
configured rate, and a retrained preference model after every N new answers.

The operator service runs one `PreferenceLoop` on a background thread (`run_forever`),
never on a request thread. Each `tick`:

1. finds the active training run (robolearn.rewards.preference_runs) and reads *its*
   stored config; nothing happens unless it uses preference shaping (or
   `collect_without_shaping`);
2. tops the run's queries up to `queries_per_episode` per training episode, at most
   `max_pending` waiting, cut from its newest `recent_episodes` training episodes
   (uniform during the warm-up, then `selection`, e.g. disagreement);
3. retrains when the run has `retrain_every` more answers than the newest model was
   trained on; each version records its agreement with held-out answers.

Every count comes from the database (queries asked, answers, the newest model's
`n_answers`), so a restarted service carries on where the last one stopped: no duplicate
burst of queries and no missed retraining.

Example::

    loop = PreferenceLoop(store)
    step = loop.tick()          # or: loop.run_forever(stop_event, interval_s=5.0)
"""

from __future__ import annotations

import dataclasses
import logging
import threading

from robolearn.config.rewards import PreferenceConfig
from robolearn.errors import RobolearnError
from robolearn.rewards.preference_runs import (
    active_training_run,
    collects_preferences,
    queries_due,
    run_config,
    training_episodes,
)
from robolearn.store import RunRecord, Store, preferences, reward_models

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class LoopState:
    """Where a run's preference loop stands (all counted from the database)."""

    run_id: int
    collecting: bool
    episodes: int  # training episodes (not evaluation, not replay)
    asked: int  # queries ever created for the run
    pending: int  # waiting: pending or leased
    answers: int  # live answers, skips excluded
    trained_on: int  # answers the newest model of the run was trained on
    retrain_every: int

    @property
    def next_retrain_in(self) -> int | None:
        """Answers still needed before the next retraining (None: retraining is off)."""
        if not self.retrain_every:
            return None
        return max(0, self.trained_on + self.retrain_every - self.answers)


def loop_state(store: Store, run: RunRecord, cfg: PreferenceConfig,
               collecting: bool) -> LoopState:
    episodes = len(training_episodes(store, run.id))
    with store.session() as db:
        asked = preferences.count_queries(db, run.id)
        pending = preferences.count_queries(db, run.id, ("pending", "leased"))
        answers = preferences.count_answers(db, run.id)
        newest = reward_models.latest_ready(db, "preference", run.id)
    trained_on = 0
    if newest is not None:
        metrics = newest.metrics or {}
        # Models trained before n_answers existed: their training pairs.
        trained_on = int(metrics.get("n_answers", metrics.get("n_labels", 0)))
    return LoopState(run_id=run.id, collecting=collecting, episodes=episodes, asked=asked,
                     pending=pending, answers=answers, trained_on=trained_on,
                     retrain_every=cfg.retrain_every)


@dataclasses.dataclass(frozen=True)
class LoopStep:
    """What one tick did."""

    run_id: int
    created: tuple[int, ...] = ()
    trained_version: int | None = None


class PreferenceLoop:
    """Makes queries and retrains the preference model for the active training run.

    Args:
        store: the open store (shared with the service; every tick uses fresh sessions).
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        # (run id, answers) of the last failed retraining: not retried until new answers.
        self._failed: tuple[int, int] | None = None
        self._last_problem: str | None = None

    def tick(self) -> LoopStep | None:
        """One round; None when no active training run collects preferences."""
        run = active_training_run(self.store)
        if run is None:
            return None
        cfg = run_config(run)
        if cfg is None:
            self._problem(f"run {run.id}: its stored config does not parse as a run config; "
                          "no preference queries for it")
            return None
        if not collects_preferences(cfg):
            return None
        pref = cfg.rewards.preference
        state = loop_state(self.store, run, pref, collecting=True)
        return LoopStep(run.id, self._make_queries(run, pref, state),
                        self._retrain(run, pref, state))

    def _make_queries(self, run: RunRecord, pref: PreferenceConfig,
                      state: LoopState) -> tuple[int, ...]:
        due = queries_due(state.episodes, state.asked, state.pending, pref.queries_per_episode,
                          pref.max_pending)
        if due <= 0:
            return ()
        usable = [e for e in training_episodes(self.store, run.id, pref.recent_episodes)
                  if e.num_steps >= pref.segment_steps]
        if len(usable) < 2:  # one episode would only give overlapping clips of itself
            self._problem(f"run {run.id}: {len(usable)} training episode(s) of at least "
                          f"{pref.segment_steps} steps; queries wait for two")
            return ()
        from robolearn.rewards.queries import create_queries  # torch loads only now

        try:
            ids = create_queries(self.store, run.id, due, pref.selection, cfg=pref)
        except RobolearnError as exc:
            self._problem(f"run {run.id}: no preference queries made: {exc}")
            return ()
        self._last_problem = None
        return tuple(ids)

    def _retrain(self, run: RunRecord, pref: PreferenceConfig, state: LoopState) -> int | None:
        if state.next_retrain_in != 0 or self._failed == (run.id, state.answers):
            return None
        from robolearn.rewards.preference import train_preference  # torch loads only now

        try:
            report = train_preference(self.store, pref, run_id=run.id)
        except RobolearnError as exc:
            self._failed = (run.id, state.answers)
            log.warning("run %d: preference retraining after %d answers failed: %s", run.id,
                        state.answers, exc)
            return None
        log.info("run %d: preference model v%d after %d answers, held-out agreement %s",
                 run.id, report.version, state.answers, report.holdout_agreement)
        return report.version

    def _problem(self, text: str) -> None:
        if text != self._last_problem:  # once per new situation, not every tick
            log.info("%s", text)
            self._last_problem = text

    def run_forever(self, stop: threading.Event, interval_s: float) -> None:
        """Tick every interval_s until `stop` is set; an error is logged, never fatal."""
        while not stop.is_set():
            try:
                self.tick()
            except Exception:
                log.exception("preference loop: tick failed; trying again in %.1f s",
                              interval_s)
            stop.wait(interval_s)
