"""Success classifier: learns sim success from rendered pick_cube frames with the pretrained
EfficientNet-Lite0 features; bad label data is refused without touching stored labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from robolearn.config.rewards import ClassifierConfig
from robolearn.errors import RewardModelError
from robolearn.rewards import records
from robolearn.rewards.classifier import (
    SuccessClassifier,
    auroc,
    binary_metrics,
    pick_threshold,
    precision_recall_curve,
    train_classifier,
)
from robolearn.rewards.encoders import EfficientNetLite0
from robolearn.sim.rollouts import Rollout, record_rollout
from robolearn.store import Store
from robolearn.store.models import Label, RewardModel

FAST = {"cameras": ("front",), "augment_copies": 1, "steps": 200, "target_fpr": 0.05}


@pytest.fixture(scope="module")
def encoder() -> EfficientNetLite0:
    return EfficientNetLite0(64)


def test_classifier_learns_sim_success_on_unseen_seeds(
    store: Store, run_id: int, pick_cube_rollouts: dict[str, list[Rollout]],
    encoder: EfficientNetLite0,
) -> None:
    for r in pick_cube_rollouts["train"]:
        record_rollout(store, run_id, r)
    cfg = ClassifierConfig(source="sim_success", **FAST)
    report = train_classifier(store, cfg, run_id=run_id, encoder=encoder)
    assert report.n_pos <= 200 and report.n_neg <= 600
    assert report.n_pos >= 50

    clf = SuccessClassifier.load(store.data_dir / report.path, encoder=encoder)
    test = pick_cube_rollouts["test"]
    frames = np.concatenate([r.images["front"] for r in test])
    labels = np.concatenate([r.frame_success for r in test])
    probs = clf.predict({"front": frames})
    accuracy = float(((probs >= clf.threshold) == labels).mean())
    assert accuracy >= 0.90, (accuracy, report)
    assert auroc(probs, labels) > 0.9

    row = records.latest_ready(store, "classifier")
    assert row is not None and row.id == report.model_id and row.run_id == run_id
    assert row.metrics["threshold"] == pytest.approx(clf.threshold)
    assert 0 <= report.false_positive_rate <= 0.05 + 1e-9
    # The stored curve passes through the report's operating point.
    curve = row.metrics["pr_curve"]
    at = curve["thresholds"].index(min(t for t in curve["thresholds"] if t >= clf.threshold))
    assert (curve["precision"][at], curve["recall"][at]) == pytest.approx(
        (report.precision, report.recall))


def test_threshold_respects_target_false_positive_rate() -> None:
    rng = np.random.default_rng(0)
    labels = np.concatenate([np.ones(100, bool), np.zeros(300, bool)])
    probs = np.concatenate([rng.normal(0.7, 0.1, 100), rng.normal(0.4, 0.1, 300)])
    for target in (0.0, 0.02, 0.1, 0.3):
        threshold = pick_threshold(probs, labels, target)
        assert binary_metrics(probs, labels, threshold)["false_positive_rate"] <= target
    # A looser target never lowers recall.
    recalls = [binary_metrics(probs, labels, pick_threshold(probs, labels, t))["recall"]
               for t in (0.0, 0.05, 0.2)]
    assert recalls == sorted(recalls) and recalls[-1] > recalls[0]


def test_precision_recall_curve_matches_metrics_at_each_threshold() -> None:
    rng = np.random.default_rng(2)
    labels = rng.random(500) < 0.3
    # Rounded scores: many ties, which a threshold must admit together.
    probs = np.round(np.where(labels, rng.normal(0.7, 0.15, 500), rng.normal(0.4, 0.15, 500)),
                     2)
    curve = precision_recall_curve(probs, labels, max_points=1000)
    assert curve.thresholds == sorted(set(probs.tolist()), reverse=True)
    assert curve.recall == sorted(curve.recall) and curve.recall[-1] == 1.0
    for t, p, r in zip(curve.thresholds, curve.precision, curve.recall, strict=True):
        m = binary_metrics(probs, labels, t)
        assert (p, r) == pytest.approx((m["precision"], m["recall"]))
    thin = precision_recall_curve(probs, labels, max_points=10)
    assert len(thin.thresholds) == 10
    assert thin.thresholds[0] == curve.thresholds[0] and thin.thresholds[-1] == curve.thresholds[-1]
    assert set(thin.thresholds) <= set(curve.thresholds)
    # The operating point of a threshold between two scores is kept however thin the curve.
    scores = curve.thresholds
    middle = (scores[len(scores) // 3] + scores[len(scores) // 3 + 1]) / 2
    marked = precision_recall_curve(probs, labels, threshold=middle, max_points=5)
    m = binary_metrics(probs, labels, middle)
    assert scores[len(scores) // 3] in marked.thresholds
    i = marked.thresholds.index(scores[len(scores) // 3])
    assert (marked.precision[i], marked.recall[i]) == pytest.approx((m["precision"], m["recall"]))


def test_auroc_matches_pairwise_definition() -> None:
    rng = np.random.default_rng(1)
    scores = rng.normal(size=60).round(1)  # ties on purpose
    labels = rng.random(60) < 0.4
    pos, neg = scores[labels], scores[~labels]
    pairwise = ((pos[:, None] > neg[None]).sum() + 0.5 * (pos[:, None] == neg[None]).sum())
    assert auroc(scores, labels) == pytest.approx(pairwise / (pos.size * neg.size))


# ------------------------------------------------------------------------ bad label data
def synthetic_episode(store: Store, run_id: int, steps: int = 6, seed: int = 0) -> int:
    rng = np.random.default_rng(seed)
    with store.begin_episode(run_id, "pick_cube", ["front"]) as writer:
        for t in range(steps):
            writer.add_step({"front": rng.integers(0, 256, (32, 32, 3), np.uint8)},
                            np.zeros(8, np.float32), np.zeros(4, np.float32), 0.0, t == steps - 1)
        return writer.finish({"front": rng.integers(0, 256, (32, 32, 3), np.uint8)},
                             np.zeros(8, np.float32), "success")


def add_labels(store: Store, rows: list[tuple[int, int, str | None, str]]) -> None:
    with store.session() as session, session.begin():
        session.add_all(Label(episode_id=e, step_index=s, camera=c, label=v) for e, s, c, v in rows)


def stored_labels(store: Store) -> list[tuple]:
    with store.session() as session:
        return [tuple(r) for r in session.execute(
            select(Label.id, Label.episode_id, Label.step_index, Label.camera, Label.label)
        ).all()]


def reward_model_rows(store: Store) -> int:
    with store.session() as session:
        return len(session.scalars(select(RewardModel)).all())


def refuse(store: Store, match: str, cfg: ClassifierConfig | None = None) -> None:
    before = stored_labels(store)
    with pytest.raises(RewardModelError, match=match):
        train_classifier(store, cfg or ClassifierConfig(source="labels"))
    assert stored_labels(store) == before
    assert reward_model_rows(store) == 0


def test_empty_label_set_is_refused(store: Store, run_id: int) -> None:
    synthetic_episode(store, run_id)
    refuse(store, "label set is empty")


def test_label_for_missing_frame_is_refused(store: Store, run_id: int) -> None:
    a, b = synthetic_episode(store, run_id, seed=0), synthetic_episode(store, run_id, seed=1)
    add_labels(store, [(a, 0, None, "failure"), (a, 6, None, "success"),
                       (b, 0, None, "failure"), (b, 7, None, "success")])  # b has frames 0..6
    refuse(store, r"frame 7 of episode \d+ does not exist")


def test_label_for_missing_camera_is_refused(store: Store, run_id: int) -> None:
    a = synthetic_episode(store, run_id)
    add_labels(store, [(a, 0, None, "failure"), (a, 6, "wrist", "success")])
    refuse(store, "camera 'wrist' is not a camera")


def test_conflicting_labels_are_refused(store: Store, run_id: int) -> None:
    a = synthetic_episode(store, run_id)
    add_labels(store, [(a, 0, None, "failure"), (a, 3, None, "success"),
                       (a, 3, "front", "failure")])
    refuse(store, "labelled both success and failure")


def test_corrupt_episode_file_is_refused(store: Store, run_id: int) -> None:
    a, b = synthetic_episode(store, run_id, seed=0), synthetic_episode(store, run_id, seed=1)
    add_labels(store, [(a, 0, None, "failure"), (a, 6, None, "success"),
                       (b, 0, None, "failure"), (b, 6, None, "success")])
    path: Path = store.episode_file(store.get_episode(b))
    path.write_bytes(b"not a zip file")
    refuse(store, "corrupt")


def test_single_class_is_refused(store: Store, run_id: int) -> None:
    a = synthetic_episode(store, run_id)
    add_labels(store, [(a, 0, None, "failure"), (a, 1, None, "failure")])
    refuse(store, "both classes are needed")


def test_corrupt_model_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "classifier_v1.pt"
    path.write_bytes(b"\x00garbage")
    with pytest.raises(RewardModelError, match="corrupt"):
        SuccessClassifier.load(path)
    with pytest.raises(RewardModelError, match="does not exist"):
        SuccessClassifier.load(tmp_path / "nope.pt")


def test_threshold_never_goes_below_its_floor() -> None:
    # A few positives the classifier scores near zero: with no floor the best TPR - FPR
    # on these frames is a threshold of ~0.01, which calls almost any frame success.
    labels = np.concatenate([np.ones(20, bool), np.zeros(200, bool)])
    probs = np.concatenate([np.full(17, 0.9), [0.01, 0.012, 0.015],
                            np.full(197, 0.001), [0.02, 0.6, 0.7]])
    assert pick_threshold(probs, labels, 0.05) < 0.02
    floored = pick_threshold(probs, labels, 0.05, min_threshold=0.5)
    assert floored >= 0.5
    metrics = binary_metrics(probs, labels, floored)
    assert metrics["recall"] == pytest.approx(17 / 20)
    # Above the floor it still picks by the held-out frames: between 0.7 and 0.9.
    assert 0.7 < floored < 0.9
    # A floor above every score leaves the one threshold that admits nothing.
    assert pick_threshold(probs, labels, 0.05, min_threshold=0.95) >= 0.95
