"""Train and evaluate the success classifier.

Example:
    robolearn reward train-classifier configs/sim_pick_cube.yaml \
        --set rewards.classifier.source=sim_success

`train-classifier` reads the labelled frames of the run's data directory (operators' labels,
episode outcomes or sim success, per rewards.classifier.source), trains the head on the
frozen encoder, picks the threshold on held-out episodes and registers the model.
`eval` scores the newest ready classifier (or --model) on the selected episodes' labels.
`list` shows every registered reward model.
`label-sim` stands in for an operator labelling success frames in the browser, on the sim:
through the service's own label API (as the Episodes page's hold-L labelling does) it marks
the frames of stored demonstrations where the sim says the task is done, at most
--max-positives frames in all. The sim's judgement stands in for the operator's here and
nowhere else; train with rewards.classifier.unmarked: failure so that the frames left
unmarked count as failures. With `--outcome success` it reviews the successes a run's
classifier claimed, as an operator does before training it again: a claim the sim never
saw come true is marked failure on every frame (with --failure-episodes), a true one gets
its success frames (within --max-positives).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from tqdm import tqdm

from robolearn.cli.common import add_config_args, config_from_args
from robolearn.errors import RewardModelError

if TYPE_CHECKING:
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
    sim = rsub.add_parser("label-sim", help="label success frames as an operator would, "
                          "with the sim's success standing in for the operator's judgement")
    add_config_args(sim)
    sim.add_argument("--max-positives", type=int, default=200,
                     help="success frames to mark in all (whole episodes only; default 200)")
    sim.add_argument("--all-episodes", action="store_true",
                     help="label any complete episode of the task, not only demonstrations")
    sim.add_argument("--outcome", metavar="OUTCOME",
                     help="only episodes that ended with this outcome, e.g. success: review "
                     "the successes the run's classifier claimed, as an operator does "
                     "before training it again (implies --all-episodes)")
    sim.add_argument("--failure-episodes", type=int, default=0,
                     help="also mark every frame of up to this many episodes in which the "
                     "sim never saw success as failure, as an operator who watched them "
                     "fail would (default 0)")
    sim.set_defaults(func=main_label_sim)
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
    from robolearn.store import Store

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
    import numpy as np

    from robolearn.rewards import records
    from robolearn.rewards.classifier import SuccessClassifier, binary_metrics
    from robolearn.rewards.labels import gather_frames
    from robolearn.store import Store

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
    from robolearn.store import Store

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


SIM_OPERATOR = "sim-operator"


def sim_success_frames(store: Store, episode_id: int) -> list[int] | None:
    """Frames (observation indices, as labels count them) on which the sim said the task was
    done: observation t + 1 shows the result of action t. None: the episode kept no sim
    judgement (a real robot's, or one recorded without rewards.evaluate_sim_success)."""
    from robolearn.store.episodes import list_steps

    with store.session() as db:
        rows = [(s.index, s.scalars, s.success) for s in list_steps(db, episode_id)]
        run = store.get_run(store.get_episode(episode_id).run_id)
    sparse = run.config.get("rewards", {}).get("sparse", "sim_success")
    frames = []
    for index, scalars, success in rows:
        if "sim_success" in (scalars or {}):
            done = scalars["sim_success"] > 0.5
        elif sparse == "sim_success":  # the step's success was the sim's own verdict
            done = bool(success)
        else:
            return None
        if done:
            frames.append(index + 1)
    return frames


def main_label_sim(args: argparse.Namespace) -> int:
    import secrets

    from fastapi.testclient import TestClient

    from robolearn.server.app import create_app
    from robolearn.server.users import create_user
    from robolearn.store import Store
    from robolearn.store.labels import labelled_episode_ids
    from robolearn.store.users import find_user

    cfg = config_from_args(args)
    if cfg.robot.kind != "sim":
        raise RewardModelError("label-sim needs the sim: on a real robot an operator labels "
                               "the frames on the Episodes page")
    if args.max_positives < 1:
        raise RewardModelError(f"--max-positives must be at least 1, got {args.max_positives}")
    with Store.open(cfg.data_dir, cfg.database_url) as store:
        with store.session() as db:
            user = find_user(db, SIM_OPERATOR)
            if user is None:
                user = create_user(db, SIM_OPERATOR, secrets.token_urlsafe(24), "operator")
                db.commit()
            user_id, password_hash = user.id, user.password_hash
            labelled = labelled_episode_ids(db)
        records = [r for r in store.list_episodes(task=cfg.robot.task, status="complete")
                   if (r.is_demo or args.all_episodes or args.outcome) and r.id not in labelled
                   and args.outcome in (None, r.outcome)]
        plan: list[tuple[int, list[int], str]] = []
        budget, failures = args.max_positives, args.failure_episodes
        for record in records:
            frames = sim_success_frames(store, record.id)
            if frames and len(frames) <= budget:  # whole episodes: no half-labelled one
                plan.append((record.id, frames, "success"))
                budget -= len(frames)
            elif frames == [] and failures > 0:
                plan.append((record.id, list(range(record.num_steps + 1)), "failure"))
                failures -= 1
    app = create_app(cfg, token_secret=secrets.token_bytes(32))
    token = app.state.services.tokens.issue(user_id, password_hash, 3600.0)
    marked = {"success": 0, "failure": 0}
    with TestClient(app) as client:
        for episode_id, frames, label in plan:
            for frame in frames:
                reply = client.post(f"/api/episodes/{episode_id}/labels",
                                    headers={"Authorization": f"Bearer {token}"},
                                    json={"step_index": frame, "label": label})
                if reply.status_code != 201:
                    raise RewardModelError(f"labelling episode {episode_id} frame {frame}: "
                                           f"{reply.status_code} {reply.text}")
                marked[label] += 1
    print(f"{SIM_OPERATOR} marked {marked['success']} success frames (at most "
          f"{args.max_positives}) and {marked['failure']} failure frames on {len(plan)} "
          f"episodes of {cfg.robot.task}")
    return 0 if marked["success"] or marked["failure"] else 1
