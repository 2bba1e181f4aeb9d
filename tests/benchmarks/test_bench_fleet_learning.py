"""bench_fleet_learning --quick: a fleet of 2 sim robots (real driver, actor and
learner processes, demos collected through a real driver) learn to a shared env-step
budget; every kept weights version is evaluated, curves are ordered in time, and nothing
is appended to the results file."""

from __future__ import annotations

from benchmarks import bench_fleet_learning
from benchmarks.results import RESULTS_FILE


def test_quick_fleet_learning_reaches_the_budget_and_evaluates_weights() -> None:
    before = RESULTS_FILE.read_text() if RESULTS_FILE.exists() else ""
    record = bench_fleet_learning.main(["--quick", "--robots", "2"])
    assert (RESULTS_FILE.read_text() if RESULTS_FILE.exists() else "") == before
    learning = record["metrics"]["learning"]
    assert learning["task"] == "reach"
    runs = learning["runs"]
    assert [r["robots"] for r in runs] == [2]
    for run in runs:
        assert run["listener_errors"] == []
        assert run["env_steps"] >= learning["env_steps"]
        # Every robot of the fleet fed the learner.
        assert all(v and v > 0 for v in run["per_robot_env_steps"].values())
        assert len(run["per_robot_env_steps"]) == run["robots"]
        curve = run["curve"]
        assert curve, "no weights version was kept and evaluated"
        walls = [p[0] for p in curve]
        steps = [p[1] for p in curve]
        assert walls == sorted(walls) and steps == sorted(steps)
        assert all(0.0 <= p[3] <= 1.0 for p in curve)
        assert run["final_success"] == curve[-1][3]
        # The last point is the newest weights at the budget: trained on most of it.
        assert curve[-1][2] > 0
