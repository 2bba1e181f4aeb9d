"""Success classifier accuracy, AUROC and false-positive rate on unseen seeds after training
on 50/100/200 labelled positives (three negatives per positive), pick_cube, front camera.

    python -m benchmarks.bench_rewards_classifier --quick

Frames are rendered at 64x64 from scripted-expert and random-policy rollouts, stored as
episodes, and labelled through the labels table (as operators would) with the sim's
success. Evaluation: every frame of rollouts from seeds never seen in training, at the
threshold the training picked for target_fpr 0.05. Results go to benchmarks/results.jsonl.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

import robolearn.rewards  # noqa: F401  (loads torch._dynamo before the sim renderer)
from benchmarks.results import append_result
from robolearn.config.rewards import ClassifierConfig
from robolearn.rewards.classifier import SuccessClassifier, binary_metrics, train_classifier
from robolearn.rewards.encoders import EfficientNetLite0
from robolearn.sim.rollouts import record_rollout, rollout
from robolearn.store import Store
from robolearn.store.models import Label


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="50 and 100 positives only")
    args = parser.parse_args(argv)
    budgets = [50, 100] if args.quick else [50, 100, 200]
    train_seeds = 12 if args.quick else 24
    train = [rollout("pick_cube", s, p, n) for s in range(train_seeds)
             for p, n in (("expert", 22), ("random", 20))]
    test = [rollout("pick_cube", s, p, n) for s in range(500, 506)
            for p, n in (("expert", 22), ("random", 20))]
    test_frames = np.concatenate([r.images["front"] for r in test])
    test_labels = np.concatenate([r.frame_success for r in test])
    encoder = EfficientNetLite0(64)
    metrics: dict[str, float] = {}
    rng = np.random.default_rng(0)
    for n_pos in budgets:
        with tempfile.TemporaryDirectory() as tmp, Store.open(Path(tmp)) as store:
            run_id = store.create_run("bench", {})
            ids = [record_rollout(store, run_id, r) for r in train]
            frames = [(e, t, bool(lab)) for e, r in zip(ids, train, strict=True)
                      for t, lab in enumerate(r.frame_success)]
            pos = [f for f in frames if f[2]]
            neg = [f for f in frames if not f[2]]
            chosen = ([pos[i] for i in rng.permutation(len(pos))[:n_pos]]
                      + [neg[i] for i in rng.permutation(len(neg))[: 3 * n_pos]])
            with store.session() as session, session.begin():
                session.add_all(Label(episode_id=e, step_index=t,
                                      label="success" if ok else "failure")
                                for e, t, ok in chosen)
            cfg = ClassifierConfig(source="labels", cameras=("front",), augment_copies=1,
                                   steps=300)
            report = train_classifier(store, cfg, run_id=run_id, encoder=encoder)
            clf = SuccessClassifier.load(store.data_dir / report.path, encoder=encoder)
            probs = clf.predict({"front": test_frames})
        result = binary_metrics(probs, test_labels, clf.threshold)
        print(n_pos, report.n_pos, report.n_neg, result, flush=True)
        for key in ("accuracy", "auroc", "false_positive_rate", "recall"):
            metrics[f"pos{n_pos}_{key}"] = result[key]
        metrics[f"pos{n_pos}_labelled_pos"] = report.n_pos
    record_ = append_result("rewards_classifier", metrics, budgets=budgets,
                            test_frames=int(test_labels.size), quick=args.quick)
    print(record_)
    return record_


if __name__ == "__main__":
    main()
