"""End to end (issue 4): CQN on pick_cube with a learned success classifier as its only
reward reaches at least 80% of the success rate of CQN trained on ground-truth success at
the same step budget (policy from states, classifier from pixels, all on the CPU).

    python -m benchmarks.bench_reward_e2e --steps 1500 --seeds 2 --threads 1
    python -m benchmarks.bench_reward_e2e --steps 1000 --seeds 0
    python -m benchmarks.bench_reward_e2e --steps 1000 --seeds 0 --baseline-from-results
    python -m benchmarks.bench_reward_e2e --quick      # 300 steps, small classifier, 1 seed

Per seed:
1. The classifier is trained from pixels (front camera at its input size) through
   `train_classifier` on a temporary store of rendered pick_cube rollouts (scripted
   expert, noisy expert, random policy) whose frames carry the sim's success as labels
   (source "sim_success"), on seeds disjoint from every seed the learning run uses.
2. bench_learning's run (same demos, exploration, updates and evaluation) with the
   classifier judging every recorded step (demos included, as on a real robot): its
   verdict on the rendered next frame is the reward, the termination and the demo routing.
   It goes through the actor's path (RewardService, `rewards.success_frames`): a success
   needs --success-frames consecutive positive frames, so one misjudged frame near the
   boundary cannot end an episode as a false success.
   Evaluation success is always the sim's ground truth.
3. The ground-truth baseline: bench_learning's own run at the same seed and budget, run
   here, or with --baseline-from-results taken from a `learning_states` result in
   benchmarks/results.jsonl that evaluated the same seed at this budget (its first
   evaluation at or after the budget, as this run's last one is), or the ground-truth
   run an earlier reward_e2e result made at the same seed and budget.
The ratio compares the success rates at the budget (mean over seeds): each run's first
evaluation at or after it. Runs stop at an episode's end, so that evaluation comes less
than one episode (100 steps) after the budget; a run whose missed successes lengthen
its episodes overshoots more.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch

import robolearn.rewards  # noqa: F401  (loads torch._dynamo before the sim renderer)
from benchmarks import bench_learning
from benchmarks.results import RESULTS_FILE, append_result
from robolearn.config.cqn import CQNConfig
from robolearn.config.rewards import ClassifierConfig, RewardsConfig
from robolearn.learn.cqn.cpu import keep_freed_memory
from robolearn.rewards.classifier import ClassifierReport, SuccessClassifier, train_classifier
from robolearn.rewards.encoders import EfficientNetLite0
from robolearn.rewards.service import RewardService
from robolearn.sim import PandaSim
from robolearn.sim.rollouts import record_rollout, rollout
from robolearn.store import Store

log = logging.getLogger(__name__)

TASK = "pick_cube"
CAMERA = "front"
FLOOR_RATIO = 0.8
# Classifier rollouts: seeds from here up (bench_learning uses seed*100_000 + k for
# exploration, 1_000_000+ for demos and 2_000_000+ for evaluation), so no evaluation
# scene is ever seen in training.
CLASSIFIER_SEED_BASE = 3_000_000
# (policy, action noise, steps): the expert succeeds around step 13 and then holds the
# cube up; the noisy experts add near misses and dropped cubes, the random policy the
# clutter of early exploration.
ROLLOUTS = (("expert", 0.0, 25), ("expert", 0.3, 25), ("expert", 0.6, 25), ("random", 0.0, 15))


class ClassifierJudge:
    """bench_learning Judge: the actor's reward path (RewardService with `sparse:
    classifier` and `success_frames`) on the rendered front frame.

    Also counts its verdicts against the sim's success (for the report only; the sim's
    value never reaches the learner): `confusion` per recorded frame (the classifier's raw
    verdict), `decisions` per success it declared (each ends an episode).
    """

    def __init__(self, classifier: SuccessClassifier, success_frames: int) -> None:
        cfg = RewardsConfig(sparse="classifier", success_frames=success_frames,
                            evaluate_sim_success=False)
        self.service = RewardService(cfg, classifier=classifier)
        self.streak = self.service.new_streak()
        self.confusion: Counter[str] = Counter()
        self.decisions: Counter[str] = Counter()

    def start_episode(self) -> None:
        self.streak.start_episode()

    def __call__(self, sim: PandaSim) -> bool:
        frame = sim.render(CAMERA)[None]  # [1, H, W, 3]
        out = self.service.score({CAMERA: frame}, TASK, streak=self.streak)
        raw, success = bool(out.values["classifier"][0]), bool(out.success[0])
        truth = bool(sim.success())
        self.confusion[("tp" if truth else "fp") if raw else ("fn" if truth else "tn")] += 1
        if success:
            self.decisions["true_success" if truth else "false_success"] += 1
        return success


def train_reward_classifier(seed: int, episodes_per_kind: int, steps: int, target_fpr: float,
                            encoder: EfficientNetLite0) -> tuple[SuccessClassifier,
                                                                 ClassifierReport, float]:
    """Render labelled rollouts into a temporary store and train the classifier on them.

    Returns:
        The loaded classifier, its held-out report and the wall-clock seconds taken.
    """
    t0 = time.monotonic()
    size = (encoder.input_size, encoder.input_size)
    cfg = ClassifierConfig(source="sim_success", cameras=(CAMERA,), image_size=size[0],
                           steps=steps, target_fpr=target_fpr, seed=seed)
    with tempfile.TemporaryDirectory() as tmp, Store.open(Path(tmp)) as store:
        run_id = store.create_run("bench_reward_e2e", {"task": TASK}, kind="sim")
        for i in range(episodes_per_kind):
            scene_seed = CLASSIFIER_SEED_BASE + seed * 1000 + i
            for policy, noise, n in ROLLOUTS:
                record_rollout(store, run_id, rollout(TASK, scene_seed, policy, n, (CAMERA,), noise,
                                              size))
        report = train_classifier(store, cfg, run_id=run_id, encoder=encoder)
        classifier = SuccessClassifier.load(store.data_dir / report.path, encoder=encoder)
    return classifier, report, round(time.monotonic() - t0, 1)


def success_at(curve: list[list[float]], steps: int) -> tuple[int, float]:
    """The first evaluation at or after `steps` env steps: (its step, its success rate).

    Raises:
        ValueError: the curve ends before `steps`.
    """
    for step, success in curve:
        if step >= steps:
            return int(step), float(success)
    raise ValueError(f"curve ends at {curve[-1][0]} steps, before the budget {steps}")


def baseline_from_results(seed: int, steps: int, demos: int, eval_episodes: int,
                          path: Path = RESULTS_FILE) -> dict[str, Any] | None:
    """The newest pick_cube ground-truth run of `seed` at this budget: a `learning_states`
    result evaluated there (an evaluation within one episode after `steps`, its curve cut
    there), or the ground-truth run of an earlier `reward_e2e` result at the same budget.

    Returns None when there is none.
    """
    found = None
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        metrics, context = rec.get("metrics", {}), rec.get("context", {})
        if rec.get("benchmark") == "reward_e2e":
            found = _e2e_ground_truth(rec, seed, steps, demos, eval_episodes) or found
            continue
        if (rec.get("benchmark") != "learning_states" or metrics.get("task") != TASK
                or context.get("demos") != demos or context.get("observation") != "state"
                or context.get("eval_episodes") != eval_episodes
                or str(seed) not in metrics.get("seeds", {})):
            continue
        curve = metrics["seeds"][str(seed)]["curve"]
        try:
            at, success = success_at(curve, steps)
        except ValueError:
            continue
        if at >= steps + bench_learning.EPISODE_STEPS[TASK]:
            continue  # evaluated only later than this budget
        found = {"curve": [p for p in curve if p[0] <= at], "final_success": success,
                 "source": f"results.jsonl {rec['time']} commit {rec['commit']} "
                           f"({metrics['env_steps']} steps)"}
    return found


def _e2e_ground_truth(rec: dict[str, Any], seed: int, steps: int, demos: int,
                      eval_episodes: int) -> dict[str, Any] | None:
    """The ground-truth run an earlier reward_e2e result trained itself at this seed,
    budget, demos and evaluation size (the same bench_learning run), or None."""
    metrics, context = rec["metrics"], rec["context"]
    gt = metrics.get("seeds", {}).get(str(seed), {}).get("ground_truth")
    if (gt is None or gt.get("source") != "run here" or metrics.get("env_steps") != steps
            or context.get("demos") != demos or context.get("eval_episodes") != eval_episodes
            or context.get("quick")):
        return None
    return {"curve": gt["curve"], "final_success": gt["final_success"],
            "source": f"reward_e2e ground truth in results.jsonl {rec['time']} commit "
                      f"{rec['commit']}"}


def stored_baseline(seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """--baseline-from-results for one seed; exits with what to do when there is none."""
    baseline = baseline_from_results(seed, args.steps, args.demos, args.eval_episodes)
    if baseline is None:
        raise SystemExit(f"--baseline-from-results: no learning_states result of {TASK} "
                         f"seed {seed} ({args.demos} demos, {args.eval_episodes} eval "
                         f"episodes) evaluated at {args.steps} steps in {RESULTS_FILE}; "
                         "run without the flag to train the baseline here")
    return baseline


def run_seed(seed: int, args: argparse.Namespace, cqn: CQNConfig, encoder: EfficientNetLite0,
             baseline: dict[str, Any] | None) -> dict[str, Any]:
    """baseline: the ground-truth run from the results file; None: run it here."""
    classifier, report, train_s = train_reward_classifier(
        seed, args.classifier_episodes, args.classifier_steps, args.target_fpr, encoder)
    print(f"seed {seed}: classifier accuracy {report.accuracy:.3f}, AUROC {report.auroc:.3f}, "
          f"FPR {report.false_positive_rate:.3f}, recall {report.recall:.3f} "
          f"({report.n_pos} pos / {report.n_neg} neg, {train_s:.0f} s)", flush=True)
    judge = ClassifierJudge(classifier, args.success_frames)
    size = (encoder.input_size, encoder.input_size)
    # Only the classifier's camera, rendered at its input size: nothing else is looked at.
    sim = PandaSim(TASK, image_size=size, cameras=(CAMERA,))
    learned = bench_learning.run(TASK, seed, args.steps, args.eval_every, args.eval_episodes,
                                 args.demos, cqn, judge=judge, sim=sim)
    learned["final_success"] = success_at(learned["curve"], args.steps)[1]
    if baseline is None:
        baseline = bench_learning.run(TASK, seed, args.steps, args.eval_every,
                                      args.eval_episodes, args.demos, cqn)
        baseline["final_success"] = success_at(baseline["curve"], args.steps)[1]
        baseline["source"] = "run here"
    keys = ("accuracy", "auroc", "precision", "recall", "threshold", "false_positive_rate",
            "n_pos", "n_neg", "n_holdout")
    return {"classifier_reward": learned, "ground_truth": baseline,
            "classifier_report": {k: getattr(report, k) for k in keys},
            "classifier_train_s": train_s,
            # The classifier's raw verdicts on every recorded step against the sim's
            # success, and the successes it declared (after success_frames) against it.
            "judge_confusion": dict(judge.confusion),
            "judge_decisions": dict(judge.decisions)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=1000, help="environment steps per seed")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--eval-every", type=int, default=500)
    p.add_argument("--eval-episodes", type=int, default=20)
    p.add_argument("--demos", type=int, default=20)
    p.add_argument("--classifier-episodes", type=int, default=30,
                   help=f"scenes per rollout kind for the classifier ({len(ROLLOUTS)} kinds)")
    p.add_argument("--classifier-steps", type=int, default=400,
                   help="gradient steps of the classifier head")
    p.add_argument("--target-fpr", type=float, default=0.01,
                   help="held-out false-positive rate the classifier threshold allows "
                   "(0.05 let single false successes end episodes: seed 1 ratio 0.60)")
    p.add_argument("--success-frames", type=int, default=2,
                   help="rewards.success_frames: consecutive positive frames for a success")
    p.add_argument("--baseline-from-results", action="store_true",
                   help="take the ground-truth run from benchmarks/results.jsonl")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    p.add_argument("--quick", action="store_true",
                   help="300 steps, 5 eval episodes, small classifier, one seed")
    args = p.parse_args(argv)
    if args.quick:
        args.steps, args.eval_every, args.eval_episodes, args.seeds = 300, 150, 5, args.seeds[:1]
        args.classifier_episodes, args.classifier_steps = 8, 200
    if args.steps % args.eval_every:
        p.error(f"--steps {args.steps} must be a multiple of --eval-every {args.eval_every} "
                "so that an evaluation falls at the budget")
    if args.threads:
        torch.set_num_threads(args.threads)
    keep_freed_memory()
    t0 = time.monotonic()
    cqn = CQNConfig(frame_stack=1)
    encoder = EfficientNetLite0(ClassifierConfig().image_size)
    # Looked up before any training, so a missing one fails at once.
    stored = {s: stored_baseline(s, args) if args.baseline_from_results else None
              for s in args.seeds}
    per_seed = {str(s): run_seed(s, args, cqn, encoder, stored[s]) for s in args.seeds}
    learned = float(np.mean([v["classifier_reward"]["final_success"] for v in per_seed.values()]))
    truth = float(np.mean([v["ground_truth"]["final_success"] for v in per_seed.values()]))
    if truth == 0:
        log.warning("the ground-truth runs never succeed at %d steps: no ratio; raise --steps",
                    args.steps)
    ratio = learned / truth if truth > 0 else None
    metrics = {"task": TASK, "env_steps": args.steps, "seeds": per_seed,
               "mean_classifier_success": learned, "mean_ground_truth_success": truth,
               "ratio": ratio, "wall_s": round(time.monotonic() - t0, 1)}
    rec = append_result("reward_e2e", metrics, demos=args.demos, eval_episodes=args.eval_episodes,
                        eval_every=args.eval_every, observation="state", reward_camera=CAMERA,
                        classifier_episodes=args.classifier_episodes * len(ROLLOUTS),
                        classifier_steps=args.classifier_steps,
                        classifier_target_fpr=args.target_fpr,
                        success_frames=args.success_frames, device="cpu",
                        threads=torch.get_num_threads(),
                        baseline_from_results=args.baseline_from_results, quick=args.quick,
                        floor=FLOOR_RATIO, floor_met=ratio is not None and ratio >= FLOOR_RATIO)
    print(json.dumps(rec))
    return rec


if __name__ == "__main__":
    main()
