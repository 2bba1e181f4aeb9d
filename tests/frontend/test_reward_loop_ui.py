"""The reward-model loop end to end in Chromium against the real service, actor and sim:
label both classes, train, read the metrics, deploy, see the probability (its own stack,
so the labels and the deployment it makes touch no other browser test's data)."""

from __future__ import annotations

from sqlalchemy import select

from robolearn.config import parse_config
from robolearn.store.models import AuditEntry, Label, RewardModel, Run, User
from tests.frontend.conftest import Stack


def test_label_train_deploy_and_see_the_probability(stack: Stack) -> None:
    with stack.store() as store:
        full = [e for e in store.list_episodes(status="complete")
                if e.num_steps == stack.cfg.actor.episode_steps]
    assert len(full) >= 4, "the stack recorded fewer than four full-length episodes"
    episodes = [e.id for e in full[:4]]
    stack.browser("reward_loop", E2E_EPISODES=",".join(map(str, episodes)))

    with stack.store() as store, store.session() as db:
        operator = db.scalar(select(User).where(User.username == "operator"))
        labels = list(db.scalars(select(Label).where(Label.episode_id.in_(episodes))))
        (model,) = db.scalars(select(RewardModel).where(RewardModel.kind == "classifier"))
        (deploy,) = db.scalars(select(AuditEntry).where(
            AuditEntry.action == "reward_model.deploy"))
        run = db.get(Run, stack.run_id)
        config = run.config
    assert {lb.user_id for lb in labels} == {operator.id}
    by_class = {c: {(lb.episode_id, lb.step_index) for lb in labels if lb.label == c}
                for c in ("success", "failure")}
    assert not by_class["success"] & by_class["failure"]
    # Frame 10 of the first episode was labelled by the one-click disagreement fix.
    assert (episodes[0], 10) in by_class["success"] | by_class["failure"]
    assert len(by_class["success"] | by_class["failure"]) == 6 + 49 + 1
    assert model.status == "ready" and model.metrics["roc_curve"]["fpr"][-1] == 1.0
    assert deploy.user_id == operator.id and deploy.target == f"run:{stack.run_id}"
    assert deploy.detail["model_id"] == model.id
    # The run's stored config now names that version: what its actor loads at the next start.
    cfg = parse_config(config)
    assert cfg.rewards.sparse == "classifier"
    assert cfg.rewards.classifier.model_path == (stack.cfg.data_dir / model.path).resolve()
