"""Checkpoint rows through their query module, on a real database."""

from __future__ import annotations

from robolearn.store import Store, checkpoints
from robolearn.store.models import Checkpoint


def test_count_and_latest(any_store: Store) -> None:
    run_a, run_b = any_store.create_run("a", {}), any_store.create_run("b", {})
    with any_store.session() as db:
        assert checkpoints.latest_checkpoint(db, run_a) is None
        db.add_all([Checkpoint(run_id=run_a, path="c1.pt", update_steps=10),
                    Checkpoint(run_id=run_a, path="c2.pt", update_steps=20),
                    Checkpoint(run_id=run_b, path="c3.pt", update_steps=5)])
        db.commit()
        assert checkpoints.count_checkpoints(db, run_a) == 2
        assert checkpoints.latest_checkpoint(db, run_a).path == "c2.pt"
        assert checkpoints.latest_checkpoint(db, run_b).update_steps == 5
