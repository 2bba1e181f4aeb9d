"""The replay child process the service runs: its summary, progress and errors, through a
real `robolearn replay` process on a real store."""

from __future__ import annotations

import pytest

from robolearn.config import RunConfig
from robolearn.errors import ReplayError
from robolearn.server.playback import run_replay
from robolearn.store import Store
from tests.playback.recording import record_sim_episode


def test_child_replays_reports_progress_and_returns_the_summary(config: RunConfig) -> None:
    with Store.open(config.data_dir) as store:
        source_id = record_sim_episode(store, "reach", seed=4, max_steps=6)
        steps = store.get_episode(source_id).num_steps
    reports: list[str] = []

    summary = run_replay(config, source_id, "actions", reports.append)

    assert summary["source_episode_id"] == source_id and summary["mode"] == "actions"
    assert summary["steps"] == steps
    assert summary["tracking_error_max_m"] < 0.01
    assert reports and reports[-1] == f"step {steps}/{steps}"
    with Store.open(config.data_dir) as store:
        replay = store.get_episode(summary["replay_episode_id"])
    assert replay.source_episode_id == source_id and replay.status == "complete"


def test_child_refusal_becomes_a_replay_error_with_its_reason(config: RunConfig) -> None:
    with Store.open(config.data_dir) as store:
        runs = len(store.list_runs())
    with pytest.raises(ReplayError, match=r"failed \(exit 2\): episode 4242: no such episode"):
        run_replay(config, 4242, "joints", lambda _text: None)
    with Store.open(config.data_dir) as store:
        assert len(store.list_runs()) == runs


def test_a_stuck_child_is_stopped_at_the_timeout(config: RunConfig) -> None:
    # Python alone takes longer than a millisecond to start: the child is killed first.
    with pytest.raises(ReplayError, match=r"ran for more than 0\.001 s and was stopped"):
        run_replay(config, 4242, "actions", lambda _text: None, timeout_s=0.001)
