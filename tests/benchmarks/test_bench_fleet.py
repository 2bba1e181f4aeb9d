"""bench_fleet --quick: fleets of 1 and 2 sim robots (real driver, actor and learner
processes) report every field the fleet benchmark's result line promises, with transitions
from every robot in the learner's tally, and nothing is appended to the results file."""

from __future__ import annotations

from benchmarks import bench_fleet
from benchmarks.results import RESULTS_FILE

FIELDS = ("robots", "transitions_per_s_in", "learner_updates_per_s", "weights_lag_s_p99",
          "control_jitter_p99_ms")


def test_quick_fleet_reports_every_field_and_hears_every_robot() -> None:
    before = RESULTS_FILE.read_text() if RESULTS_FILE.exists() else ""
    record = bench_fleet.main(["--quick", "--robots", "1,2", "--seconds", "5"])
    assert (RESULTS_FILE.read_text() if RESULTS_FILE.exists() else "") == before
    runs = record["metrics"]["runs"]
    assert [r["robots"] for r in runs] == [1, 2]
    for run in runs:
        assert set(FIELDS) <= set(run)
        assert run["listener_errors"] == []
        # The learner's own tally: transitions came from each robot's actor in the window.
        assert sorted(run["per_robot_transitions_per_s"]) == [
            f"r{i}" for i in range(run["robots"])]
        assert all(v > 0 for v in run["per_robot_transitions_per_s"].values())
        assert run["transitions_per_s_in"] > 0 and run["learner_updates_per_s"] > 0
        assert run["control_steps"] > 0 and run["control_jitter_p99_ms"] is not None
        # Weights went out in the window and every robot acted with some of them.
        assert run["weights_versions_published"] > 0 and run["weights_lag_pairs"] > 0
        assert run["weights_lag_s_p99"] is not None and run["weights_lag_s_p99"] >= 0
    assert record["context"]["learner"]["utd"] is not None
