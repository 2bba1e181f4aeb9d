"""Reward model rows through their query module, on a real database."""

from __future__ import annotations

from robolearn.store import Store, reward_models


def test_versions_status_and_lookups(any_store: Store) -> None:
    run_a, run_b = any_store.create_run("a", {}), any_store.create_run("b", {})
    with any_store.session() as db:
        c1 = reward_models.add_model(db, "classifier", run_a)
        c2 = reward_models.add_model(db, "classifier", run_b)
        p1 = reward_models.add_model(db, "preference", run_a)
        c3 = reward_models.add_model(db, "classifier", run_a)
        db.commit()
        # Versions count per kind; the file path follows the version.
        assert [(m.kind, m.version) for m in (c1, c2, p1, c3)] == [
            ("classifier", 1), ("classifier", 2), ("preference", 1), ("classifier", 3)]
        assert c3.path == "reward_models/classifier_v3.pt" and c3.status == "training"
        assert reward_models.latest_ready(db, "classifier") is None
        for row in (c1, c2, p1):
            reward_models.finish_model(db, row.id, "ready", metrics={"threshold": 0.5})
        reward_models.finish_model(db, c3.id, "failed", error="diverged")
        db.commit()
        db.expire_all()
        assert reward_models.get_model(db, c3.id).error == "diverged"
        assert reward_models.get_model(db, c1.id).metrics == {"threshold": 0.5}
        assert reward_models.latest_ready(db, "classifier").id == c2.id
        assert reward_models.latest_ready(db, "classifier", run_a).id == c1.id
        assert [m.id for m in reward_models.list_models(db, kind="classifier")] == [
            c1.id, c2.id, c3.id]
        assert [m.id for m in reward_models.list_models(db, run_id=run_a,
                                                        newest_first=True)] == [
            c3.id, p1.id, c1.id]
        assert [m.id for m in reward_models.list_models(db, status="failed")] == [c3.id]
        assert [m.id for m in reward_models.ready_versions(db, "classifier", run_a)] == [c1.id]
