"""Preference label efficiency: held-out preference accuracy and Spearman correlation with
the sim's true returns after 50/100/200/400 labels, uniform vs disagreement selection,
oracle vs mistake (eps = 0.1) teachers, 3 seeds.

    python -m benchmarks.bench_rewards_preference --quick
    python -m benchmarks.bench_rewards_preference --teachers mistake   # one half of the grid
    python -m benchmarks.bench_rewards_preference --ensemble 2 --steps 150  # a smaller model

Data: pick_cube rollouts with world state (no rendering): scripted experts with action
noise 0, 0.3, 0.6 and random arms, stored in a temporary store. Labels are collected in
rounds (queries -> simulated teacher -> retrain), exactly as the UI loop would. Held-out
set: 300 random segment pairs from separate seeds, scored against the true returns.
Results are appended to benchmarks/results.jsonl.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from benchmarks.results import append_result
from robolearn.config.rewards import PreferenceConfig
from robolearn.rewards.preference import PreferenceModel, train_preference
from robolearn.rewards.queries import create_queries
from robolearn.rewards.segments import FeatureCache, random_segments
from robolearn.rewards.teachers import TrueReturns, answer_pending
from robolearn.sim.rollouts import record_rollout, rollout
from robolearn.store import Store

STEPS = 40


def _episodes(store: Store, run_id: int, seeds: range) -> None:
    for seed in seeds:
        for noise in (0.0, 0.3, 0.6):
            record_rollout(store, run_id, rollout("pick_cube", seed, "expert", STEPS, cameras=(),
                                          noise=noise, render=False))
        record_rollout(store, run_id, rollout("pick_cube", seed, "random", STEPS, cameras=(),
                                      render=False))


def _evaluate(store: Store, model: PreferenceModel, run_id: int, cfg: PreferenceConfig,
              rng: np.random.Generator) -> tuple[float, float]:
    lengths = {e.id: e.num_steps for e in store.list_episodes(run_id=run_id)}
    segs = random_segments(lengths, cfg.segment_steps, 600, rng)
    cache, truth = FeatureCache(store, cfg.inputs), TrueReturns(store)
    learned = model.rewards(cache.segments(segs)).sum(1)
    true = np.array([truth.segment(s) for s in segs])
    a, b = np.arange(0, 600, 2), np.arange(1, 600, 2)
    strict = true[a] != true[b]
    accuracy = float(((learned[a] > learned[b]) == (true[a] > true[b]))[strict].mean())
    return accuracy, float(spearmanr(learned, true).statistic)


def run(selection: str, teacher: str, seed: int, budgets: list[int], train_seeds: int,
        steps: int, ensemble: int) -> dict[int, tuple[float, float]]:
    cfg = PreferenceConfig(selection=selection, seed=seed, warmup_labels=min(budgets) // 2,
                           steps=steps, ensemble=ensemble, segment_steps=15)
    out = {}
    with tempfile.TemporaryDirectory() as tmp, Store.open(Path(tmp)) as store:
        run_id = store.create_run("train", {})
        held_id = store.create_run("held_out", {})
        _episodes(store, run_id, range(seed * 100, seed * 100 + train_seeds))
        _episodes(store, held_id, range(seed * 100 + 50, seed * 100 + 54))
        labels = 0
        model = None
        for budget in budgets:
            create_queries(store, run_id, budget - labels, selection, cfg=cfg, model=model)
            answer_pending(store, run_id, teacher, budget - labels, seed=seed + budget, eps=0.1)
            labels = budget
            report = train_preference(store, cfg, run_id=run_id)
            model = PreferenceModel.load(store.data_dir / report.path)
            out[budget] = _evaluate(store, model, held_id, cfg, np.random.default_rng(seed))
            print(selection, teacher, seed, budget, out[budget], flush=True)
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 seed, 50/100 labels")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--teachers", nargs="+", default=["oracle", "mistake"],
                        choices=["oracle", "mistake"])
    parser.add_argument("--steps", type=int, default=300,
                        help="gradient steps per ensemble member per update")
    parser.add_argument("--ensemble", type=int, default=3, help="ensemble members M")
    parser.add_argument("--train-seeds", type=int, default=8,
                        help="scenes of 4 rollouts each the queries are cut from")
    args = parser.parse_args(argv)
    budgets = [50, 100] if args.quick else [50, 100, 200, 400]
    seeds = [0] if args.quick else args.seeds
    steps = 150 if args.quick else args.steps
    t0 = time.monotonic()
    metrics: dict[str, float] = {}
    for teacher in args.teachers:
        for selection in ("uniform", "disagreement"):
            results = [run(selection, teacher, s, budgets, args.train_seeds, steps,
                           args.ensemble) for s in seeds]
            for budget in budgets:
                acc = [r[budget][0] for r in results]
                rho = [r[budget][1] for r in results]
                key = f"{teacher}_{selection}_{budget}"
                metrics[f"{key}_accuracy"] = float(np.mean(acc))
                metrics[f"{key}_spearman"] = float(np.mean(rho))
    metrics["wall_s"] = round(time.monotonic() - t0, 1)
    record = append_result("rewards_preference_efficiency", metrics, seeds=seeds,
                           teachers=args.teachers, budgets=budgets, steps=steps,
                           ensemble=args.ensemble, train_seeds=args.train_seeds, eps=0.1,
                           quick=args.quick)
    print(record)
    return record


if __name__ == "__main__":
    main()
