"""Which run preference queries come from, and which of its episodes they may show.

Preference queries judge what the learning policy does, so they come only from a training
run's own episodes:

- a *training run* is any run but a replay run (made by "Replay in sim", config key
  ``replay``) or an imported dataset (``import``);
- its *training episodes* are its complete episodes that are neither evaluation episodes
  (the actor records them with the policy name ``cqn-eval``: greedy, no exploration, not
  sent to the learner) nor replays (``source_episode_id`` set);
- the *active* training run is the newest training run whose processes are live
  (status started/running).

Nothing here imports torch, so the service can poll cheaply.

Example::

    run = active_training_run(store)
    episodes = training_episodes(store, run.id, recent=50)
"""

from __future__ import annotations

import logging
from typing import Any

from robolearn.config import RunConfig, parse_config
from robolearn.errors import ConfigError, RewardModelError, StoreError
from robolearn.store import EpisodeRecord, RunRecord, Store
from robolearn.store.runs import LIVE_STATUSES

log = logging.getLogger(__name__)

# robolearn.learn.policy.CQNPolicy.name: "cqn-eval" while it acts greedily for evaluation.
EVALUATION_POLICY_SUFFIX = "-eval"
# Config keys of runs that are not training runs (robolearn.playback.runner and
# robolearn.datasets.importing write them).
NON_TRAINING_KEYS = ("replay", "import")


def non_training_reason(config: dict[str, Any]) -> str | None:
    """Why a run with this stored config is not a training run (None: it is one)."""
    for key in NON_TRAINING_KEYS:
        if key in config:
            return f"a {key} run"
    return None


def is_training_run(run: RunRecord) -> bool:
    return non_training_reason(run.config) is None


def is_evaluation(episode: EpisodeRecord) -> bool:
    return episode.policy.endswith(EVALUATION_POLICY_SUFFIX)


def is_training_episode(episode: EpisodeRecord) -> bool:
    """Complete, recorded by the run's own policy: not an evaluation, not a replay."""
    return (episode.status == "complete" and episode.source_episode_id is None
            and not is_evaluation(episode))


def training_episodes(store: Store, run_id: int, recent: int | None = None,
                      ) -> list[EpisodeRecord]:
    """The run's training episodes, oldest first; only the newest `recent` when given."""
    episodes = [e for e in store.list_episodes(run_id=run_id, status="complete")
                if is_training_episode(e)]
    return episodes[-recent:] if recent else episodes


def check_training_run(store: Store, run_id: int) -> RunRecord:
    """The run, if preference queries may come from it.

    Raises:
        RewardModelError: no such run, or a replay/import run.
    """
    try:
        run = store.get_run(run_id)
    except StoreError as exc:
        raise RewardModelError(f"run {run_id}: no such run in the store at {store.data_dir}"
                               ) from exc
    reason = non_training_reason(run.config)
    if reason is not None:
        raise RewardModelError(
            f"run {run_id} ({run.name!r}) is {reason}: preference queries come only from a "
            "training run's own episodes; pass the training run's id (robolearn prefs query "
            "without --run picks the active one)")
    return run


def active_training_run(store: Store) -> RunRecord | None:
    """The newest training run whose processes are live, or None."""
    live = [r for r in store.list_runs() if r.status in LIVE_STATUSES and is_training_run(r)]
    return live[-1] if live else None


def newest_training_run(store: Store) -> RunRecord | None:
    runs = [r for r in store.list_runs() if is_training_run(r)]
    return runs[-1] if runs else None


def choose_run(store: Store, run_id: int | None) -> tuple[RunRecord, str]:
    """The run a preference command works on, with a sentence saying why it was chosen.

    Args:
        run_id: the id the user gave; None: the active training run, else the newest
            training run (never a replay or import run).

    Raises:
        RewardModelError: the given run is not a training run, or there is none.
    """
    if run_id is not None:
        run = check_training_run(store, run_id)
        return run, f"run {run.id} ({run.name}, {run.status}): as given"
    run = active_training_run(store)
    if run is not None:
        return run, f"run {run.id} ({run.name}): the active training run"
    run = newest_training_run(store)
    if run is not None:
        return run, (f"run {run.id} ({run.name}, {run.status}): no run is training now; the "
                     "newest training run")
    raise RewardModelError(f"the store at {store.data_dir} has no training run (replay and "
                           "import runs do not count); record episodes first, e.g. with "
                           "`robolearn up CONFIG`")


def run_config(run: RunRecord) -> RunConfig | None:
    """The run's stored config parsed, or None when it does not parse (e.g. a run created
    with a partial config): such a run gets no preference loop."""
    try:
        return parse_config(run.config)
    except (ConfigError, ValueError) as exc:
        log.debug("run %d: stored config does not parse: %s", run.id, exc)
        return None


def collects_preferences(cfg: RunConfig) -> bool:
    """Whether the loop makes queries and retrains for a run with this config."""
    pref = cfg.rewards.preference
    shaping = any(t.source == "preference" for t in cfg.rewards.shaping)
    return shaping or pref.collect_without_shaping


def queries_due(episodes: int, asked: int, pending: int, queries_per_episode: float,
                max_pending: int) -> int:
    """How many queries to create now so the run has queries_per_episode per training
    episode, never more than max_pending waiting.

    Counting from the database (not from memory) keeps the rate across restarts.
    """
    target = int(episodes * queries_per_episode + 1e-9)
    return max(0, min(target - asked, max_pending - pending))
