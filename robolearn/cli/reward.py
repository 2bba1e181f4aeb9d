"""Train and evaluate the success classifier.

Example:
    robolearn reward train-classifier configs/sim_pick_cube.yaml \
        --set rewards.classifier.source=sim_success

`train-classifier` reads the labelled frames of the run's data directory (operators' labels,
episode outcomes or sim success, per rewards.classifier.source), trains the head on the
frozen encoder, picks the threshold on held-out episodes and registers the model.
`eval` scores the newest ready classifier (or --model) on the selected episodes' labels.
`list` shows every registered reward model.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
from tqdm import tqdm

from robolearn.cli.common import add_config_args, config_from_args
from robolearn.errors import RewardModelError
from robolearn.store import Store

log = logging.getLogger(__name__)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("reward", help="reward models (success classifier)", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    rsub = p.add_subparsers(dest="reward_command", required=True)
    train = rsub.add_parser("train-classifier", help="train the success classifier")
    add_config_args(train)
    train.add_argument("--run", type=int, help="only this run's episodes (default: all runs)")
    train.set_defaults(func=main_train)
    ev = rsub.add_parser("eval", help="evaluate a classifier on labelled frames")
    add_config_args(ev)
    ev.add_argument("--run", type=int, help="only this run's episodes (default: all runs)")
    ev.add_argument("--model", type=Path, help="classifier file (default: newest ready)")
    ev.set_defaults(func=main_eval)
    ls = rsub.add_parser("list", help="list registered reward models")
    add_config_args(ls)
    ls.set_defaults(func=main_list)


class _Bars:
    """tqdm bars per stage for the progress(stage, done, total) callbacks."""

    def __init__(self) -> None:
        self.bars: dict[str, tqdm] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        bar = self.bars.get(stage)
        if bar is None:
            bar = self.bars[stage] = tqdm(total=total, desc=stage, unit="frame" if stage ==
                                          "encode" else "step")
        bar.update(done - bar.n)

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()


def main_train(args: argparse.Namespace) -> int:
    from robolearn.rewards.classifier import train_classifier

    cfg = config_from_args(args)
    bars = _Bars()
    with Store.open(cfg.data_dir, cfg.database_url) as store:
        try:
            report = train_classifier(store, cfg.rewards.classifier, run_id=args.run,
                                      progress=bars)
        finally:
            bars.close()
    # The curve's hundreds of points are for the UI (stored in the model's metrics).
    print(json.dumps(report.model_dump(exclude={"pr_curve"}), indent=2))
    return 0


def main_eval(args: argparse.Namespace) -> int:
    from robolearn.rewards import records
    from robolearn.rewards.classifier import SuccessClassifier, binary_metrics
    from robolearn.rewards.labels import gather_frames

    cfg = config_from_args(args)
    with Store.open(cfg.data_dir, cfg.database_url) as store:
        path = args.model
        if path is None:
            row = records.latest_ready(store, "classifier")
            if row is None:
                raise RewardModelError("no ready classifier; run `robolearn reward "
                                       "train-classifier` first or pass --model")
            path = store.data_dir / row.path
        clf = SuccessClassifier.load(path)
        data = gather_frames(store, cfg.rewards.classifier.model_copy(
            update={"cameras": clf.cameras}), args.run)
    probs = []
    for start in tqdm(range(0, len(data), 64), desc="eval", unit="batch"):
        probs.append(clf.predict({c: f[start : start + 64] for c, f in data.frames.items()}))
    metrics = binary_metrics(np.concatenate(probs), data.labels, clf.threshold)
    print(json.dumps({"model": str(path), "threshold": clf.threshold, "frames": len(data),
                      "n_pos": data.n_pos, "n_neg": data.n_neg, **metrics}, indent=2))
    return 0


def main_list(args: argparse.Namespace) -> int:
    from robolearn.rewards import records

    cfg = config_from_args(args)
    with Store.open(cfg.data_dir, cfg.database_url) as store:
        rows = records.list_models(store)
    for r in rows:
        summary = {k: r.metrics[k] for k in ("accuracy", "auroc", "threshold", "n_labels",
                                             "train_accuracy") if k in r.metrics}
        print(f"{r.id:>4} {r.kind:<11} v{r.version:<3} {r.status:<9} run {r.run_id} {r.path} "
              f"{json.dumps(summary)} {r.error}")
    print(f"{len(rows)} reward model(s)")
    return 0
