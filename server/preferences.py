"""Preferences in the service: leasing queries to operators so two never label the same
pair at once (the leases themselves are `robolearn.store.preferences`), and the preference
loop of the active training run.

`PreferenceLoopThread` runs robolearn.rewards.preference_loop for the active training run on
its own thread for as long as the service lives: queries and retraining never run on a
request thread, and everything it counts is in the database, so a restarted service
carries on. `loop_status` is what the Preferences page shows of it.
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy.orm import Session

from robolearn.config.rewards import PreferenceConfig
from robolearn.errors import RewardModelError
from robolearn.rewards.preference_loop import PreferenceLoop, loop_state
from robolearn.rewards.preference_runs import (
    active_training_run,
    choose_run,
    collects_preferences,
    run_config,
)
from robolearn.server import schemas
from robolearn.store import Store, reward_models
from robolearn.store.preferences import (
    MAX_LEASE_ATTEMPTS,
    LeaseConflict,
    answer,
    count_free,
    lease_next,
    release,
    undo_last,
)

log = logging.getLogger(__name__)

# The leases moved to robolearn.store.preferences; these names stay importable from here.
__all__ = ["MAX_LEASE_ATTEMPTS", "LeaseConflict", "PreferenceLoopThread", "answer",
           "count_free", "lease_next", "loop_status", "release", "undo_last"]


# ------------------------------------------------------------------ preferences while training
class PreferenceLoopThread:
    """The preference loop on a daemon thread; `stop()` waits for a tick in progress."""

    def __init__(self, store: Store, interval_s: float) -> None:
        self._loop = PreferenceLoop(store)
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop.run_forever,
                                        args=(self._stop, interval_s),
                                        name="preference-loop", daemon=True)

    def start(self) -> None:
        self._thread.start()
        log.info("preference loop: checking the active training run every %.1f s",
                 self._interval_s)

    def stop(self, timeout_s: float = 60.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                log.warning("preference loop still busy after %.0f s (training?); the "
                            "service stops without it", timeout_s)


def _versions(db: Session, run_id: int) -> list[schemas.PreferenceVersion]:
    out = []
    for row in reward_models.ready_versions(db, "preference", run_id):
        m = row.metrics or {}
        agreement = m.get("holdout_agreement")
        accuracy = m.get("train_accuracy")
        out.append(schemas.PreferenceVersion(
            model_id=row.id, version=row.version, created_at=row.created_at,
            n_labels=int(m.get("n_labels", 0)), n_holdout=int(m.get("n_holdout", 0)),
            holdout_agreement=float(agreement) if isinstance(agreement, int | float) else None,
            train_accuracy=float(accuracy) if isinstance(accuracy, int | float) else None))
    return out


def loop_status(db: Session, store: Store, run_id: int | None) -> schemas.PreferenceLoopStatus:
    """Preference collection of a run (default: the active, else newest, training run).

    Raises:
        RewardModelError: the given run is a replay or import run, or does not exist.
    """
    try:
        run, _why = choose_run(store, run_id)
    except RewardModelError:
        if run_id is not None:
            raise
        return schemas.PreferenceLoopStatus(
            run_id=None, collecting=False,
            detail="no training run yet: queries are made from a run's episodes while it "
            "trains with preference shaping")
    cfg = run_config(run)
    active = active_training_run(store)
    is_active = active is not None and active.id == run.id
    wants = cfg is not None and collects_preferences(cfg)
    pref = cfg.rewards.preference if cfg is not None else None
    collecting = is_active and wants
    if collecting:
        detail = (f"new queries come from run {run.id}'s training episodes as it records "
                  "them; its actor rewards with a retrained version from the run's next start")
    elif not is_active:
        detail = f"run {run.id} is not training ({run.status}): no new queries are made"
    elif cfg is None:
        detail = f"run {run.id}'s stored config does not parse: no new queries are made"
    else:
        detail = (f"run {run.id} does not use preference shaping: no new queries are made "
                  "(set rewards.preference.collect_without_shaping to collect for a first "
                  "model)")
    state = loop_state(store, run, pref or PreferenceConfig(), collecting)
    return schemas.PreferenceLoopStatus(
        run_id=run.id, run_name=run.name, collecting=collecting, detail=detail,
        episodes=state.episodes, asked=state.asked, pending=state.pending,
        answers=state.answers, next_retrain_in=state.next_retrain_in if pref else None,
        queries_per_episode=pref.queries_per_episode if pref else None,
        versions=_versions(db, run.id))
