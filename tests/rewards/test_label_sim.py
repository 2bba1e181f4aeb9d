"""`robolearn reward label-sim`: the sim stands in for an operator's judgement, and nothing
else — the frames are marked through the service's label API, as the Episodes page marks
them, within the positive-frame budget, and the unmarked frames of labelled episodes are the
failures the classifier needs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from robolearn.actor.env import PROPRIO_DIM
from robolearn.cli.main import main
from robolearn.config import load_config
from robolearn.config.rewards import ClassifierConfig
from robolearn.errors import RewardModelError
from robolearn.rewards.labels import gather_frames
from robolearn.store import Store
from robolearn.store.models import AuditEntry, Label, User

CAMERAS = ["front", "wrist"]


def store_demo(store: Store, run: int, successes: list[bool], *, is_demo: bool = True) -> int:
    rng = np.random.default_rng(len(successes))
    frame = lambda: {c: rng.integers(0, 255, (16, 16, 3), np.uint8) for c in CAMERAS}  # noqa: E731
    with store.begin_episode(run, "reach", CAMERAS, is_demo=is_demo, policy="expert") as w:
        for done in successes:
            w.add_step(frame(), np.zeros(PROPRIO_DIM, np.float32), np.zeros(4, np.float32),
                       float(done), done)
        return w.finish(frame(), np.zeros(PROPRIO_DIM, np.float32),
                        "success" if any(successes) else "timeout")


def test_label_sim_marks_whole_demos_through_the_api_within_the_budget(write_config,
                                                                       tmp_path: Path) -> None:
    path = write_config(rewards={"sparse": "sim_success"})
    cfg = load_config(path)
    with Store.open(cfg.data_dir) as store:
        run = store.create_run("demos", {"rewards": {"sparse": "sim_success"}})
        first = store_demo(store, run, [False, False, True, True])      # frames 3, 4
        second = store_demo(store, run, [False, True, True, True])      # 3 frames: over budget
        third = store_demo(store, run, [False, False, False, True])     # frame 4
        store_demo(store, run, [False, True], is_demo=False)            # not a demo

    assert main(["reward", "label-sim", str(path), "--max-positives", "4"]) == 0

    with Store.open(cfg.data_dir) as store, store.session() as db:
        operator = db.scalar(select(User).where(User.username == "sim-operator"))
        assert operator.role == "operator"
        labels = {(lb.episode_id, lb.step_index, lb.label, lb.user_id)
                  for lb in db.scalars(select(Label))}
        audited = list(db.scalars(select(AuditEntry).where(AuditEntry.action == "label.add")))
    assert labels == {(first, 3, "success", operator.id), (first, 4, "success", operator.id),
                      (third, 4, "success", operator.id)}
    assert second not in {e for e, *_ in labels}  # a half-labelled episode would lie
    assert len(audited) == 3 and {a.user_id for a in audited} == {operator.id}

    with Store.open(cfg.data_dir) as store:
        data = gather_frames(store, ClassifierConfig(source="labels", unmarked="failure"))
        assert (data.n_pos, data.n_neg) == (3, 7)  # 2 episodes x 5 frames
        with pytest.raises(RewardModelError, match="unmarked: failure"):
            gather_frames(store, ClassifierConfig(source="labels"))  # success marks only

    # Run again: the labelled episodes are left alone, the budget applies anew to the rest;
    # an episode the sim never saw succeed is marked failure on every frame when asked.
    with Store.open(cfg.data_dir) as store:
        failed = store_demo(store, run, [False, False])
    assert main(["reward", "label-sim", str(path), "--max-positives", "4",
                 "--failure-episodes", "1"]) == 0
    with Store.open(cfg.data_dir) as store, store.session() as db:
        again = {(lb.episode_id, lb.step_index, lb.label) for lb in db.scalars(select(Label))}
    assert again - {(e, s, lb) for e, s, lb, _ in labels} == {
        (second, 2, "success"), (second, 3, "success"), (second, 4, "success"),
        (failed, 0, "failure"), (failed, 1, "failure"), (failed, 2, "failure")}



def store_online(store: Store, run: int, claimed: list[bool], sim: list[bool]) -> int:
    """An episode a classifier-rewarded run recorded: `claimed` is the classifier's success
    per step (its outcome), `sim` the sim's verdict logged beside it for evaluation."""
    rng = np.random.default_rng(len(claimed) + 7 * sum(sim))
    frame = lambda: {c: rng.integers(0, 255, (16, 16, 3), np.uint8) for c in CAMERAS}  # noqa: E731
    with store.begin_episode(run, "reach", CAMERAS, policy="explore") as w:
        for said, done in zip(claimed, sim, strict=True):
            w.add_step(frame(), np.zeros(PROPRIO_DIM, np.float32), np.zeros(4, np.float32),
                       float(said), said, scalars={"sim_success": float(done)})
        return w.finish(frame(), np.zeros(PROPRIO_DIM, np.float32),
                        "success" if any(claimed) else "timeout")


def test_reviewing_claimed_successes_marks_the_false_ones_failure(write_config) -> None:
    path = write_config(rewards={"sparse": "sim_success"})
    cfg = load_config(path)
    with Store.open(cfg.data_dir) as store:
        run = store.create_run("online", {"rewards": {"sparse": "classifier"}})
        false_claim = store_online(store, run, [False, False, True], [False, False, False])
        true_claim = store_online(store, run, [False, True, True], [False, True, True])
        store_online(store, run, [False, False, False], [False, True, False])  # not claimed

    assert main(["reward", "label-sim", str(path), "--outcome", "success",
                 "--max-positives", "10", "--failure-episodes", "10"]) == 0

    with Store.open(cfg.data_dir) as store, store.session() as db:
        labels = {(lb.episode_id, lb.step_index, lb.label) for lb in db.scalars(select(Label))}
    assert labels == {(false_claim, i, "failure") for i in range(4)} | {
        (true_claim, 2, "success"), (true_claim, 3, "success")}
