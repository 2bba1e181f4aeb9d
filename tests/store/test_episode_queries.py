"""The episode/step query module against a real database: one filter for the Store and the
service, paging, and the aggregates the metrics page reads."""

from __future__ import annotations

import numpy as np
from sqlalchemy.orm import Session

from robolearn.store import Store, episodes
from robolearn.store.episodes import EpisodeFilter

from .conftest import record

SMALL = (16, 16)


def _episode(store: Store, run_id: int, steps: int, outcome: str, *, task: str = "pick",
             is_demo: bool = False, policy: str = "", direction: str | None = None) -> int:
    writer = store.begin_episode(run_id, task, ["cam"], is_demo=is_demo, policy=policy,
                                 direction=direction)
    episode_id, _ = record(writer, steps, np.random.default_rng(steps), size=SMALL,
                           outcome=outcome)
    return episode_id


def _ids(rows: list) -> list[int]:
    return [r.id for r in rows]


def test_filters_paging_and_counts(any_store: Store) -> None:
    store = any_store
    run_a = store.create_run("a", {})
    run_b = store.create_run("b", {})
    first = _episode(store, run_a, 2, "success", is_demo=True)
    second = _episode(store, run_a, 3, "failure", direction="forward")
    third = _episode(store, run_b, 4, "success", task="push")
    recording = store.begin_episode(run_a, "pick", ["cam"])  # stays "recording"
    with store.session() as db:
        assert _ids(episodes.list_episodes(db)) == [first, second, third, recording.episode_id]
        assert _ids(episodes.list_episodes(db, EpisodeFilter(run_id=run_a, status="complete"))
                    ) == [first, second]
        assert _ids(episodes.list_episodes(db, EpisodeFilter(task="push"))) == [third]
        assert _ids(episodes.list_episodes(db, EpisodeFilter(outcome="success"))) == [first,
                                                                                     third]
        assert _ids(episodes.list_episodes(db, EpisodeFilter(is_demo=True))) == [first]
        assert _ids(episodes.list_episodes(db, EpisodeFilter(direction="forward"))) == [second]
        # record() marks every third step (index 1) an intervention: 2+ steps have one.
        assert _ids(episodes.list_episodes(db, EpisodeFilter(intervention=False))) == [
            recording.episode_id]
        assert _ids(episodes.list_episodes(db, newest_first=True, offset=1, limit=2)) == [
            third, second]
        assert _ids(episodes.list_episodes(db, after_id=second)) == [third,
                                                                     recording.episode_id]
        assert episodes.count_episodes(db) == 4
        assert episodes.count_episodes(db, EpisodeFilter(run_id=run_a)) == 3
        assert episodes.get_episode(db, 10**9) is None
        assert episodes.outcome_counts(db, EpisodeFilter(status="complete")) == {
            "success": 2, "failure": 1}
        assert episodes.recent_outcomes(db, EpisodeFilter(run_id=run_a, status="complete"),
                                        1) == ["failure"]
    # The Store's list is the same query, turned into records.
    assert [r.id for r in store.list_episodes(run_id=run_a)] == [first, second]
    recording.abort("test over")


def test_steps_sums_and_returns(any_store: Store) -> None:
    store = any_store
    run_id = store.create_run("a", {})
    demo = _episode(store, run_id, 2, "success", is_demo=True)
    trained = _episode(store, run_id, 3, "failure", policy="cqn")
    evaluated = _episode(store, run_id, 5, "success", policy="cqn-eval")
    complete = EpisodeFilter(run_id=run_id, status="complete")
    with store.session() as db:
        steps = episodes.list_steps(db, trained)
        assert [s.index for s in steps] == [0, 1, 2]
        assert [s.index for s in episodes.list_steps(db, trained, [2, 0, 7])] == [0, 2]
        assert episodes.count_steps(db, trained) == 3
        assert episodes.sum_steps(db, complete) == 10
        assert episodes.sum_steps(db, complete, up_to_id=trained) == 5
        training = EpisodeFilter(run_id=run_id, status="complete", is_demo=False)
        assert episodes.sum_steps(db, training, excluding_policy_suffix="-eval") == 3
        returns = episodes.returns_of(db, [demo, evaluated])
        assert set(returns) == {demo, evaluated}
        np.testing.assert_allclose(returns[evaluated],
                                   sum(s.reward for s in episodes.list_steps(db, evaluated)),
                                   rtol=1e-6)


def test_close_recording_only_changes_a_recording_row(store: Store) -> None:
    run_id = store.create_run("a", {})
    done = _episode(store, run_id, 2, "success")
    writer = store.begin_episode(run_id, "pick", ["cam"])
    with store.transaction("test") as db:
        assert episodes.recording_episodes(db) == [(writer.episode_id, run_id)]
        assert not episodes.close_recording(db, done, "aborted", "too late")
        assert episodes.close_recording(db, writer.episode_id, "aborted", "test")
    assert store.get_episode(done).status == "complete"
    assert store.get_episode(writer.episode_id).end_reason == "test"
    writer.abort("closed already: a no-op on the row")
    assert store.get_episode(writer.episode_id).status == "aborted"


def test_complete_recording_refuses_a_row_no_longer_recording(store: Store) -> None:
    run_id = store.create_run("a", {})
    writer = store.begin_episode(run_id, "pick", ["cam"])
    with Session(store.engine) as db, db.begin():
        episodes.close_recording(db, writer.episode_id, "incomplete", "recovered elsewhere")
    with store.session() as db:
        step = {"index": 0, "reward": 1.0, "success": True, "intervention": False,
                "stamp_ns": 0, "scalars": {}}
        assert not episodes.complete_recording(db, writer.episode_id, [step],
                                               {"status": "complete"})
        db.rollback()
        assert episodes.count_steps(db, writer.episode_id) == 0
    writer.abort("test over")
