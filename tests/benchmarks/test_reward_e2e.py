"""bench_reward_e2e plumbing: the judge hook in bench_learning decides reward, termination
and demo routing of recorded episodes only (evaluation keeps the sim's ground truth), and
the ground-truth baseline is looked up at the right budget in a results file."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.bench_learning import Runner
from benchmarks.bench_reward_e2e import baseline_from_results, success_at
from robolearn.config.cqn import CQNConfig
from robolearn.sim import PandaSim


class CountingJudge:
    """Says success from its `after`-th call on (never, with after=None)."""

    def __init__(self, after: int | None) -> None:
        self.after = after
        self.calls = 0

    def __call__(self, sim: PandaSim) -> bool:
        self.calls += 1
        return self.after is not None and self.calls >= self.after


def test_judge_decides_recorded_episodes_and_evaluation_keeps_sim_success() -> None:
    judge = CountingJudge(after=None)
    r = Runner("pick_cube", 0, CQNConfig(frame_stack=1), judge=judge)
    # The expert lifts the cube, but a judge that never says success keeps the episode
    # going to its time limit with zero reward, and nothing is routed to the demos.
    assert r.episode(1_000_000, "expert") == (False, 100)
    assert judge.calls == 100
    assert r.demos.num_episodes == 0 and len(r.online) == 100
    # Evaluation (not recorded) never asks the judge: the sim's success ends it.
    ok, steps = r.episode(1_000_000, "expert", record=False)
    assert ok and steps < 100 and judge.calls == 100

    early = CountingJudge(after=5)
    r = Runner("pick_cube", 0, CQNConfig(frame_stack=1), judge=early)
    # A judge's (here false) success ends the episode, and it counts as a demo.
    assert r.episode(1_000_000, "expert") == (True, 5)
    assert r.demos.num_episodes == 1


def _write(path: Path, records: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def _learning(seed: int, curve: list[list[float]], steps: int, when: str,
              eval_episodes: int = 20) -> dict:
    return {"benchmark": "learning_states", "time": when, "commit": "abc1234",
            "metrics": {"task": "pick_cube", "env_steps": steps,
                        "seeds": {str(seed): {"curve": curve, "final_success": curve[-1][1]}}},
            "context": {"demos": 20, "eval_episodes": eval_episodes, "observation": "state"}}


def test_baseline_from_results_takes_the_evaluation_at_the_budget(tmp_path: Path) -> None:
    results = tmp_path / "results.jsonl"
    long_run = [[0, 0.0], [1004, 0.9], [2000, 1.0], [3005, 0.95], [4008, 1.0]]
    _write(results, [
        _learning(0, long_run, 4000, "t1"),
        _learning(1, [[0, 0.0], [1010, 0.5]], 1000, "t2"),
        _learning(0, [[0, 0.0], [1001, 0.7]], 1000, "t3", eval_episodes=10),
        {"benchmark": "reward_e2e", "metrics": {}, "context": {}},
    ])
    found = baseline_from_results(0, 1000, 20, 20, results)
    assert found is not None
    assert found["final_success"] == 0.9 and found["curve"] == long_run[:2]
    assert "t1" in found["source"]
    # Evaluated only long after the budget, or never at all: no baseline.
    assert baseline_from_results(0, 1500, 20, 20, results) is None
    assert baseline_from_results(0, 5000, 20, 20, results) is None
    assert baseline_from_results(2, 1000, 20, 20, results) is None
    assert success_at(long_run, 2000) == (2000, 1.0)
