"""The reward-model loop through the API: success and failure labels, class counts, the
missing-class refusal, training, scoring an episode, and deploying a version to a run as
its success source (audited, refused to viewers, bad input changes nothing)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select

from robolearn.config import RunConfig, parse_config
from robolearn.rewards.service import RewardService
from robolearn.store import Store
from robolearn.store.models import AuditEntry, Label, RewardModel, Run
from tests.conftest import run_config_dict
from tests.server.conftest import Actor, record_episode

# Small enough to train in seconds on a busy CPU (frames are 32x32 noise: what is checked
# is the loop, not what the classifier learns).
FAST_CLASSIFIER = {"cameras": ["front"], "image_size": 32, "augment_copies": 0, "steps": 20,
                   "batch_size": 8, "holdout_fraction": 0.25}


@pytest.fixture
def config(sock_dir: Path, tmp_path: Path) -> RunConfig:
    raw = run_config_dict(sock_dir, tmp_path / "data",
                          rewards={"classifier": FAST_CLASSIFIER})
    raw["server"] = {"development": True}
    return parse_config(raw)


def _label(actor: Actor, episode: int, label: str, frames: list[int] | None = None):
    body: dict = {"label": label}
    if frames is not None:
        body["frames"] = frames
    return actor.post(f"/api/episodes/{episode}/labels/frames", json=body)


def _count(store: Store, table) -> int:
    with store.session() as db:
        return db.scalar(select(func.count()).select_from(table))


def test_failure_labels_whole_episodes_and_counts(users: dict[str, Actor], store: Store) -> None:
    run = store.create_run("r", {})
    good, bad = record_episode(store, run, steps=5), record_episode(store, run, steps=4,
                                                                     outcome="failure")
    op, viewer = users["operator"], users["viewer"]
    r = _label(op, good, "success", [4, 5, 5])
    assert r.status_code == 201, r.text
    assert [(x["step_index"], x["label"]) for x in r.json()] == [(4, "success"), (5, "success")]
    r = _label(op, good, "failure", [0, 1])
    assert r.status_code == 201, r.text
    # The whole failed episode: every frame 0..4.
    r = _label(op, bad, "failure")
    assert r.status_code == 201 and len(r.json()) == 5, r.text
    # Again: nothing new (frames already failure).
    assert _label(op, bad, "failure").json() == []

    counts = viewer.get("/api/labels/counts").json()
    assert (counts["success"], counts["failure"], counts["episodes"]) == (2, 7, 2)
    assert counts["missing"] is None and counts["conflicts"] == 0
    assert viewer.get(f"/api/labels/counts?run_id={run}").json()["failure"] == 7
    assert viewer.get("/api/labels/counts?run_id=424242").json()["episodes"] == 0

    # Refused, and nothing stored: the other class on a labelled frame (batch and single),
    # frames that do not exist, a viewer, a whole episode with a success frame as failure.
    before = _count(store, Label)
    r = _label(op, good, "success", [0, 3])
    assert r.status_code == 409 and "labelled failure" in r.text and "Remove" in r.text
    r = op.post(f"/api/episodes/{good}/labels", json={"step_index": 1, "label": "success"})
    assert r.status_code == 409, r.text
    assert _label(op, good, "failure").status_code == 409
    r = _label(op, good, "failure", [2, 6])
    assert r.status_code == 422 and "0..5" in r.text
    assert _label(op, good, "maybe", [2]).status_code == 422
    assert _label(op, good, "failure", [-1]).status_code == 422
    assert _label(viewer, good, "failure", [2]).status_code == 403
    assert _count(store, Label) == before

    with store.session() as db:
        entries = list(db.scalars(select(AuditEntry).where(
            AuditEntry.action == "label.add_frames").order_by(AuditEntry.id)))
    assert [e.detail["frames"] for e in entries] == [[4, 5], [0, 1], [0, 1, 2, 3, 4], []]
    assert entries[2].detail["whole_episode"] is True


def test_training_without_a_failure_class_says_what_to_do(users: dict[str, Actor],
                                                          store: Store) -> None:
    run = store.create_run("r", {})
    episode = record_episode(store, run, steps=5)
    op = users["operator"]
    r = op.post("/api/reward-models/classifier/train", json={})
    assert r.status_code == 409 and "no labelled frames" in r.text
    assert _label(op, episode, "success", [3, 4, 5]).status_code == 201
    r = op.post("/api/reward-models/classifier/train", json={})
    assert r.status_code == 409, r.text
    assert "3 success and 0 failure frames" in r.json()["detail"]
    assert "Mark failure frames" in r.json()["detail"]
    assert users["viewer"].post("/api/reward-models/classifier/train",
                                json={}).status_code == 403
    assert _count(store, RewardModel) == 0
    with store.session() as db:
        assert db.scalar(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.action == "reward_model.train")) == 0


def _train(op: Actor, run: int | None = None) -> dict:
    r = op.post("/api/reward-models/classifier/train", json={"run_id": run})
    assert r.status_code == 202, r.text
    job = r.json()
    deadline = time.monotonic() + 180
    while job["status"] not in ("done", "failed"):
        assert time.monotonic() < deadline, job
        time.sleep(0.2)
        job = op.get(f"/api/reward-models/jobs/{job['job']}").json()
    assert job["status"] == "done", job
    return job["result"]


def test_train_score_and_deploy_a_version_to_a_run(users: dict[str, Actor], store: Store,
                                                   config: RunConfig) -> None:
    run = store.create_run("r", config.model_dump(mode="json"))
    with store.session() as db:
        db.get(Run, run).status = "stopped"
        db.commit()
    episodes = [record_episode(store, run, steps=6) for _ in range(4)]
    op, viewer = users["operator"], users["viewer"]
    for e in episodes:
        assert _label(op, e, "failure", [0, 1, 2]).status_code == 201
        assert _label(op, e, "success", [4, 5, 6]).status_code == 201
    report = _train(op, run)
    models = viewer.get("/api/reward-models?kind=classifier").json()
    (model,) = models
    assert model["status"] == "ready" and model["id"] == report["model_id"]
    roc = model["metrics"]["roc_curve"]
    assert roc["fpr"][0] == 0.0 and roc["tpr"][-1] == 1.0 and roc["fpr"][-1] == 1.0
    assert roc["fpr"] == sorted(roc["fpr"])
    assert model["metrics"]["target_fpr"] == pytest.approx(0.05)

    # The version's probability on each frame of an episode, for the episode page.
    r = viewer.get(f"/api/reward-models/{model['id']}/episodes/{episodes[0]}/probabilities")
    assert r.status_code == 200, r.text
    scored = r.json()
    assert scored["index"] == list(range(7)) and len(scored["prob"]) == 7
    assert all(0.0 <= p <= 1.0 for p in scored["prob"])
    assert scored["threshold"] == pytest.approx(model["metrics"]["threshold"])

    # Refused, and the run's config unchanged: viewer, unknown model or run, no model id.
    with store.session() as db:
        before = db.get(Run, run).config
    deploy = {"run_id": run, "source": "classifier", "model_id": model["id"]}
    assert viewer.post("/api/reward-models/deployments", json=deploy).status_code == 403
    assert op.post("/api/reward-models/deployments",
                   json={**deploy, "model_id": 4242}).status_code == 404
    assert op.post("/api/reward-models/deployments",
                   json={**deploy, "run_id": 4242}).status_code == 404
    assert op.post("/api/reward-models/deployments",
                   json={"run_id": run, "source": "classifier"}).status_code == 422
    r = op.post("/api/reward-models/deployments", json={"run_id": run, "source": "clip"})
    assert r.status_code == 409 and "not configured" in r.text
    with store.session() as db:
        assert db.get(Run, run).config == before
        assert db.scalar(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.action == "reward_model.deploy")) == 0

    r = op.post("/api/reward-models/deployments", json=deploy)
    assert r.status_code == 200, r.text
    source = r.json()
    assert (source["sparse"], source["model_id"], source["version"]) == (
        "classifier", model["id"], model["version"])
    assert source["threshold"] == pytest.approx(model["metrics"]["threshold"])
    assert source["restart_needed"] is False and "next started" in source["note"]
    assert viewer.get(f"/api/reward-models/deployments/{run}").json() == source
    with store.session() as db:
        stored = db.get(Run, run).config
        (entry,) = db.scalars(select(AuditEntry).where(
            AuditEntry.action == "reward_model.deploy"))
    assert entry.target == f"run:{run}" and entry.detail["model_id"] == model["id"]
    assert entry.detail["previous_sparse"] == "sim_success"

    # What the actor does at the run's next start: its config loads this version and every
    # step gets a classifier_prob (the probability the episode page shows).
    run_cfg = parse_config(stored)
    service = RewardService.from_config(run_cfg, store, run)
    frames = {"front": np.zeros((1, 32, 32, 3), np.uint8)}
    out = service.score(frames, "reach", sim_success=np.array([False]))
    assert "classifier_prob" in out.values and out.success_prob is not None
    assert service.classifier is not None
    assert service.classifier.threshold == pytest.approx(source["threshold"])

    # A live run keeps its old source until it is restarted: the API says so.
    with store.session() as db:
        db.get(Run, run).status = "running"
        db.commit()
    source = op.post("/api/reward-models/deployments", json=deploy).json()
    assert source["restart_needed"] is True and "Stop the run" in source["note"]
    # Started again (the Runs page audits run.start): it uses the deployed version now.
    with store.session() as db:
        db.add(AuditEntry(action="run.start", target=f"run:{run}", detail={}))
        db.commit()
    source = viewer.get(f"/api/reward-models/deployments/{run}").json()
    assert source["restart_needed"] is False and "with this success source" in source["note"]


def test_clip_status_is_not_configured_without_a_checkpoint(users: dict[str, Actor]) -> None:
    clip = users["viewer"].get("/api/reward-models/clip").json()
    assert clip["configured"] is False and clip["checkpoint"] is None
    assert "rewards.clip.model.checkpoint" in clip["detail"]
