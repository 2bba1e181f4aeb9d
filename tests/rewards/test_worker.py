"""Reward workers: a shaping source in its own process, fed over real ZeroMQ sockets, its
late values filed under their steps in a real store; a dead worker is noticed."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import zmq
from pydantic import ValidationError
from sqlalchemy import select

from robolearn.config.rewards import RewardsConfig
from robolearn.errors import RewardModelError, StoreError
from robolearn.protocol.messages import RewardValues
from robolearn.rewards.late_values import LateValues, store_late_values
from robolearn.rewards.worker import RewardWorker
from robolearn.store import Store
from robolearn.store.models import Step


def slow_mean(delay_ms: float, process: str = "worker") -> RewardsConfig:
    return RewardsConfig(shaping=[{"source": "frame_mean", "weight": 0.5, "process": process}],
                         frame_mean={"camera": "front", "delay_ms": delay_ms})


def wait_values(worker: RewardWorker, count: int,
                timeout_s: float = 60.0) -> list[RewardValues]:
    got: list[RewardValues] = []
    deadline = time.monotonic() + timeout_s
    while sum(v.step.size for v in got if v.step is not None) < count \
            and time.monotonic() < deadline:
        got += worker.poll()
        time.sleep(0.01)
    return got


def test_an_out_of_process_sparse_source_is_a_config_error() -> None:
    with pytest.raises(ValidationError, match="decides success and ends episodes"):
        RewardsConfig(sparse="classifier",
                      shaping=[{"source": "classifier", "process": "worker"}])
    with pytest.raises(ValidationError, match="runs inline"):
        RewardsConfig(sparse="clip", clip={"variant": "softmax"},
                      shaping=[{"source": "clip", "process": "auto"}])
    # The same source inline as both is fine, and so is a slow shaping term beside it.
    RewardsConfig(sparse="classifier", shaping=[{"source": "classifier"},
                                                {"source": "clip", "process": "worker"}])


def test_worker_batches_queued_steps_and_returns_each_steps_value() -> None:
    ctx = zmq.Context()
    worker = RewardWorker(slow_mean(300), "frame_mean", ctx)
    try:
        rng = np.random.default_rng(0)
        frames = rng.integers(0, 256, (6, 16, 16, 3), dtype=np.uint8)
        for step, frame in enumerate(frames):
            assert worker.submit("ep-a" if step < 4 else "ep-b", step, "task",
                                 {"front": frame, "wrist": frame[::-1]}, {})
        got = wait_values(worker, 6)
        values = {(m.episode, int(s)): float(v)
                  for m in got for s, v in zip(m.step, m.value, strict=True)}
        expected = {("ep-a" if i < 4 else "ep-b", i): float(f.mean() / 255.0)
                    for i, f in enumerate(frames)}
        assert values.keys() == expected.keys()
        np.testing.assert_allclose([values[k] for k in expected], list(expected.values()),
                                   atol=1e-6)
        # Steps queued behind the first call were scored together, not one call each.
        # One reply per (batch, episode): 6 replies would mean one call per step.
        assert len(got) < 6
        assert worker.failed is None
    finally:
        worker.close()
        ctx.term()
    assert not worker.process.is_alive()


def test_a_killed_worker_is_reported_and_submit_stops(caplog) -> None:
    ctx = zmq.Context()
    worker = RewardWorker(slow_mean(0), "frame_mean", ctx)
    try:
        os.kill(worker.process.pid, signal.SIGKILL)
        worker.process.join(10)
        assert worker.poll() == []
        assert worker.failed is not None and "exited with code -9" in worker.failed
        assert "reward worker frame_mean failed" in caplog.text
        assert not worker.submit("ep", 0, "task", {"front": np.zeros((4, 4, 3), np.uint8)}, {})
    finally:
        worker.close()
        ctx.term()


def test_a_worker_that_cannot_load_its_model_fails_at_start_with_its_reason(tmp_path: Path,
                                                                           ) -> None:
    cfg = RewardsConfig(shaping=[{"source": "classifier", "process": "worker"}],
                        classifier={"model_path": str(tmp_path / "missing.pt")})
    ctx = zmq.Context()
    try:
        with pytest.raises(RewardModelError, match="reward worker classifier: cannot load"):
            RewardWorker(cfg, "classifier", ctx)
    finally:
        ctx.term()


def test_late_values_complete_an_episode_once_every_value_is_in_or_lost() -> None:
    late = LateValues({"clip": 2.0})
    late.start("e")
    for step in range(3):
        late.expect("e", step, "clip")
    late.lost("e", 3, "clip")
    late.add("e", "clip", np.array([2, 0]), np.array([0.5, 0.25], np.float32))
    late.end("e", 4, episode_id=7, to_learner=True)
    assert late.completed() == []  # step 1 is still on its way
    late.worker_died("clip")
    (done,) = late.completed()
    np.testing.assert_allclose(done.reward_delta, [0.5, 0.0, 1.0, 0.0])
    assert (done.missing, done.episode_id, done.values) == (2, 7, {2: {"clip": 0.5},
                                                                    0: {"clip": 0.25}})
    assert late.awaited == 0


def test_store_late_values_merges_into_the_step_rows_and_keeps_everything_else(
        store: Store, run_id: int) -> None:
    writer = store.begin_episode(run_id, "t", ["front"])
    image = {"front": np.zeros((8, 8, 3), np.uint8)}
    for t in range(3):
        writer.add_step(image, np.zeros(2), np.zeros(2), float(t), False,
                        scalars={"sim_success": 0.0, "success_prob": 0.1})
    episode_id = writer.finish(image, np.zeros(2), "timeout")
    assert store_late_values(store, episode_id, {0: {"clip": 0.5}, 2: {"clip": 0.75}}) == 2
    with pytest.raises(StoreError, match="no step row"):
        store_late_values(store, episode_id, {1: {"clip": 1.0}, 9: {"clip": 1.0}})
    with store.session() as db:
        rows = db.scalars(select(Step).where(Step.episode_id == episode_id)
                          .order_by(Step.index)).all()
    assert [r.scalars for r in rows] == [{"sim_success": 0.0, "clip": 0.5},
                                         {"sim_success": 0.0},  # the failed call changed nothing
                                         {"sim_success": 0.0, "clip": 0.75}]
    assert [r.reward for r in rows] == [0.0, 1.0, 2.0]
    assert all(r.success_prob == pytest.approx(0.1) for r in rows)
