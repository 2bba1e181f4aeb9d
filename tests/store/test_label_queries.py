"""Frame labels through their query module, on a real database."""

from __future__ import annotations

import numpy as np

from robolearn.store import Store, labels
from robolearn.store.labels import LabelledFrame

from .conftest import record


def test_labels_add_read_gather_remove(any_store: Store) -> None:
    store = any_store
    run_a, run_b = store.create_run("a", {}), store.create_run("b", {})
    rng = np.random.default_rng(0)
    ep_a, _ = record(store.begin_episode(run_a, "pick", ["cam"]), 3, rng, size=(16, 16))
    ep_b, _ = record(store.begin_episode(run_b, "push", ["cam"]), 2, rng, size=(16, 16))
    unfinished = store.begin_episode(run_a, "pick", ["cam"])
    with store.session() as db:
        rows = labels.add_labels(db, ep_a, [3, 1], "success")
        assert all(r.id is not None for r in rows)
        labels.add_labels(db, ep_a, [0], "failure", camera="cam")
        labels.add_labels(db, ep_b, [2], "failure")
        labels.add_labels(db, unfinished.episode_id, [0], "success")
        db.commit()
        assert [(r.step_index, r.label, r.camera) for r in labels.list_labels(db, ep_a)] == [
            (0, "failure", "cam"), (1, "success", None), (3, "success", None)]
        assert labels.count_labels(db, ep_a) == 3
        assert [(r.episode_id, r.step_index) for r in labels.every_label(db)] == [
            (ep_a, 3), (ep_a, 1), (ep_a, 0), (ep_b, 2), (unfinished.episode_id, 0)]
        assert labels.frames_by_class(db, ep_a) == {"success": {1, 3}, "failure": {0}}
        # Only complete episodes are training data.
        assert labels.labelled_frames(db) == [
            LabelledFrame(ep_a, 3, "success", 3, None), LabelledFrame(ep_a, 1, "success", 3, None),
            LabelledFrame(ep_a, 0, "failure", 3, "cam"), LabelledFrame(ep_b, 2, "failure", 2, None)]
        assert [f.episode_id for f in labels.labelled_frames(db, run_id=run_b)] == [ep_b]
        assert [f.episode_id for f in labels.labelled_frames(db, task="push")] == [ep_b]
        assert labels.labelled_frames(db, episode_ids=[]) == []
        labels.remove_label(db, labels.get_label(db, rows[0].id))
        db.commit()
        assert labels.get_label(db, rows[0].id) is None
        assert labels.frames_by_class(db, ep_a)["success"] == {1}
        assert labels.labelled_episode_ids(db) == {ep_a, ep_b, unfinished.episode_id}
    unfinished.abort("test over")
