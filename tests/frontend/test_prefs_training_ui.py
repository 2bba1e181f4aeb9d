"""Preferences while training, in Chromium against the real service, actor and sim (its own
stack): the actor records a run with preference shaping, the operator replays one of its
episodes in sim, queries from the training run arrive on the Preferences page, the operator
answers them with the keyboard, the service retrains and the page shows the held-out
agreement; then no query in the database comes from the replay run."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from sqlalchemy import select

from robolearn.actor.env import PROPRIO_DIM
from robolearn.config import RunConfig
from robolearn.rewards import records
from robolearn.rewards.preference import FORMAT, fit_ensemble
from robolearn.rewards.preference_runs import choose_run
from robolearn.store import Store
from robolearn.store.models import PreferenceAnswer, PreferenceQuery, RewardModel, Run, User
from tests.frontend.conftest import Stack, running_stack

ANSWERS = 6  # two retrainings of 3: two measured versions, so the page draws a curve
PREFERENCE = {"inputs": ["proprio", "action"], "segment_steps": 5, "ensemble": 2, "hidden": 16,
              "steps": 40, "queries_per_episode": 1, "max_pending": 8, "retrain_every": 3,
              "holdout_fraction": 0.5, "loop_interval_s": 1.0}


def seed_model(store: Store, cfg: RunConfig) -> None:
    """A preference model from before the run (the actor needs one to start with preference
    shaping), as `robolearn prefs train` registers it; its weights fit random pairs."""
    pref = cfg.rewards.preference
    width = PROPRIO_DIM + cfg.actor.action_scale.action_dim
    rng = np.random.default_rng(0)
    seg_a, seg_b = (rng.normal(size=(8, pref.segment_steps, width)).astype(np.float32)
                    for _ in range(2))
    net, _ = fit_ensemble(seg_a, seg_b, np.ones(8, np.float32), pref)
    record = records.begin_model(store, "preference", None)
    records.save_atomic({"kind": "preference", "format": FORMAT,
                         "config": pref.model_dump(mode="json"), "num_features": width,
                         "net": net.state_dict(), "report": {}},
                        store.data_dir / record.path)
    records.finish_model(store, record.id, "ready", metrics={"n_labels": 8})


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    shaping = {"rewards": {"shaping": [{"source": "preference", "weight": 0.1}],
                           "preference": PREFERENCE}}
    with running_stack(tmp_path_factory, "e2e_prefs", episodes=2, config=shaping,
                       prepare=seed_model) as s:
        yield s


def test_queries_arrive_during_a_run_and_none_come_from_replay_runs(stack: Stack) -> None:
    stack.browser("prefs_training", E2E_ANSWERS=str(ANSWERS))

    with stack.store() as store, store.session() as db:
        operator = db.scalar(select(User).where(User.username == "operator"))
        runs = list(db.scalars(select(Run)))
        queries = list(db.scalars(select(PreferenceQuery)))
        answers = list(db.scalars(select(PreferenceAnswer)))
        versions = list(db.scalars(select(RewardModel).where(
            RewardModel.run_id == stack.run_id, RewardModel.status == "ready")
            .order_by(RewardModel.version)))
        replay_runs = [r.id for r in runs if "replay" in r.config]
        replay_episodes = {e.id for r in replay_runs for e in store.list_episodes(run_id=r)}
        # The CLI's default: the training run, though the replay run is newer.
        chosen, _ = choose_run(store, None)
    assert replay_runs and replay_episodes, "the browser's replay in sim stored nothing"
    assert max(r.id for r in runs) in replay_runs  # the newest run is the replay
    assert chosen.id == stack.run_id
    assert queries and {q.run_id for q in queries} == {stack.run_id}
    used = {q.episode_a_id for q in queries} | {q.episode_b_id for q in queries}
    assert not used & replay_episodes
    assert len([a for a in answers if a.user_id == operator.id and not a.undone]) >= ANSWERS
    assert len(versions) >= 2
    assert all(v.metrics["n_holdout"] >= 1 for v in versions)
    assert all(0.0 <= v.metrics["holdout_agreement"] <= 1.0 for v in versions)
