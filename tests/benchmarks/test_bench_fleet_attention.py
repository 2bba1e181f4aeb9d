"""bench_fleet_attention --quick: robots that stall ask through the store, the scripted
operator answers each no sooner than its response time, the metrics add up, and nothing is
appended to the results file."""

from __future__ import annotations

from benchmarks import bench_fleet_attention
from benchmarks.results import RESULTS_FILE


def test_quick_attention_counts_requests_and_their_waits() -> None:
    before = RESULTS_FILE.read_text() if RESULTS_FILE.exists() else ""
    m = bench_fleet_attention.main(["--quick", "--response-s", "20", "--stall-p", "0.5"])
    assert (RESULTS_FILE.read_text() if RESULTS_FILE.exists() else "") == before
    per_robot = m["per_robot"]
    assert sorted(per_robot) == ["arm0", "arm1"]
    assert m["requests"] == sum(r["requests"] for r in per_robot.values()) > 0
    assert m["answered"] + m["open_at_end"] == m["requests"] and m["answered"] > 0
    # A request waits at least the operator's response time (more when queued behind another).
    assert 20.0 <= m["wait_p50_s"] <= m["wait_p99_s"] <= m["wait_max_s"]
    assert m["requests_per_robot_hour"] == round(m["requests"] / (2 * 2 / 60), 2)
    # Robots held while they waited, and still practised in between.
    assert all(0.0 < r["waiting_fraction"] < 1.0 for r in per_robot.values())
    assert m["episodes"] == sum(r["episodes"] for r in per_robot.values()) > 0
    assert 0.0 <= m["success_rate"] <= 1.0
