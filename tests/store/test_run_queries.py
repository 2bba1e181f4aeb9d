"""Run rows and the audit log through their query modules, on a real database."""

from __future__ import annotations

import pytest

from robolearn.errors import StoreError
from robolearn.store import Store, audit, runs
from robolearn.store.models import User


def test_run_rows(any_store: Store) -> None:
    store = any_store
    with store.session() as db:
        first = runs.add_run(db, "first", {"a": 1}, "sim", "created")
        second = runs.add_run(db, "second", {}, "real", "running")
        db.commit()
        assert [r.id for r in runs.list_runs(db)] == [first.id, second.id]
        assert [r.id for r in runs.list_runs(db, newest_first=True)] == [second.id, first.id]
        assert runs.get_run(db, 10**9) is None
        with pytest.raises(StoreError, match="no such run; create it"):
            runs.require_run(db, 10**9, "create it")
        runs.end_run(first, "stopped")
        db.commit()
    record = store.get_run(first.id)
    assert (record.status, record.config) == ("stopped", {"a": 1})
    assert record.ended_at is not None
    assert store.mark_running(first.id).ended_at is None
    assert store.get_run(first.id).status == "running"


def test_audit_entries_newest_first_with_names(any_store: Store) -> None:
    store = any_store
    with store.session() as db:
        user = User(username="ann", password_hash="x", role="admin")
        db.add(user)
        db.flush()
        audit.add_entry(db, "run.start", "run:1", {"k": 1}, user.id)
        audit.add_entry(db, "run.stop", "run:1", None, None)
        audit.add_entry(db, "run.start", "run:2", None, user.id)
        db.commit()
        total, page = audit.list_entries(db)
        assert total == 3
        assert [(e.action, e.target, name) for e, name in page] == [
            ("run.start", "run:2", "ann"), ("run.stop", "run:1", None),
            ("run.start", "run:1", "ann")]
        total, page = audit.list_entries(db, action="run.start", offset=1, limit=5)
        assert total == 2
        assert [(e.target, e.detail) for e, _ in page] == [("run:1", {"k": 1})]
        assert audit.list_entries(db, user_id=user.id)[0] == 2
        assert audit.last_entry(db, "run.start", "run:1").detail == {"k": 1}
        assert audit.last_entry(db, "run.pause", "run:1") is None
    # The Store's own audit() is the same insert, committed on its own.
    entry_id = store.audit("system.recover", "store")
    with store.session() as db:
        entry, name = audit.list_entries(db, limit=1)[1][0]
        assert (entry.id, entry.action, name) == (entry_id, "system.recover", None)
