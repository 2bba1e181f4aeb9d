"""Success-frame labels: operators add and remove, everyone lists; bad input stores nothing."""

from __future__ import annotations

from sqlalchemy import func, select

from robolearn.store import Store
from robolearn.store.models import AuditEntry, Label
from tests.server.conftest import Actor, record_episode


def test_add_list_remove(users: dict[str, Actor], store: Store) -> None:
    episode = record_episode(store, store.create_run("r", {}), steps=5)
    op = users["operator"]
    r = op.post(f"/api/episodes/{episode}/labels", json={"step_index": 5, "camera": "wrist"})
    assert r.status_code == 201, r.text
    label = r.json()
    assert label["label"] == "success" and label["user_id"] is not None
    assert [x["id"] for x in users["viewer"].get(f"/api/episodes/{episode}/labels").json()] == [
        label["id"]]
    assert op.delete(f"/api/labels/{label['id']}").status_code == 200
    assert users["viewer"].get(f"/api/episodes/{episode}/labels").json() == []
    assert op.delete(f"/api/labels/{label['id']}").status_code == 404
    with store.session() as db:
        actions = list(db.scalars(select(AuditEntry.action).where(
            AuditEntry.action.like("label.%")).order_by(AuditEntry.id)))
    assert actions == ["label.add", "label.remove"]


def test_bad_labels_are_refused_and_store_nothing(users: dict[str, Actor], store: Store) -> None:
    episode = record_episode(store, store.create_run("r", {}), steps=5)
    op = users["operator"]
    for body, word in (({"step_index": 6}, "0..5"), ({"step_index": 1, "camera": "side"},
                                                      "no camera"),
                       ({"step_index": -1}, "step_index"), ({"step_index": 1, "label": "meh"},
                                                           "label")):
        r = op.post(f"/api/episodes/{episode}/labels", json=body)
        assert r.status_code == 422, (body, r.text)
        assert word in r.text
    assert op.post("/api/episodes/424242/labels", json={"step_index": 0}).status_code == 404
    with store.session() as db:
        assert db.scalar(select(func.count()).select_from(Label)) == 0
