"""Checkpoint rows through their query module, on a real database."""

from __future__ import annotations

from robolearn.store import Store, checkpoints


def test_count_and_latest(any_store: Store) -> None:
    run_a, run_b = any_store.create_run("a", {}), any_store.create_run("b", {})
    with any_store.session() as db:
        assert checkpoints.latest_checkpoint(db, run_a) is None
        for run_id, path, updates in [(run_a, "c1.pt", 10), (run_a, "c2.pt", 20),
                                      (run_b, "c3.pt", 5)]:
            checkpoints.add_checkpoint(db, run_id, path, env_steps=2 * updates,
                                       update_steps=updates, episodes=1)
        db.commit()
        assert checkpoints.count_checkpoints(db, run_a) == 2
        assert checkpoints.latest_checkpoint(db, run_a).path == "c2.pt"
        latest = checkpoints.latest_checkpoint(db, run_b)
        assert (latest.update_steps, latest.env_steps, latest.episodes) == (5, 10, 1)
