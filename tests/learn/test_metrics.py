"""The learner's metrics sink on a real SQLite store: rows at the interval, updates/s from
the counters, the run followed from stored episodes, and a refused row never stops it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from sqlalchemy import select

from robolearn.learn.metrics import MetricsWriter, Progress
from robolearn.store import Store
from robolearn.store.models import LearnerMetrics


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def progress(update_step: int) -> Progress:
    return Progress(update_step=update_step, env_steps=3 * update_step, episodes=2,
                    online_transitions=50, demo_transitions=20, online_episodes=2,
                    demo_episodes=1)


def rows(store: Store) -> list[LearnerMetrics]:
    with store.session() as db:
        return list(db.scalars(select(LearnerMetrics).order_by(LearnerMetrics.id)))


def stored_episode(store: Store, run_id: int) -> int:
    with store.begin_episode(run_id, "reach", ["front"]) as writer:
        writer.add_step({"front": np.zeros((8, 8, 3), np.uint8)}, np.zeros(4, np.float32),
                        np.zeros(4, np.float32), reward=0.0, success=False)
        return writer.finish({"front": np.zeros((8, 8, 3), np.uint8)},
                             np.zeros(4, np.float32), "timeout")


@pytest.fixture
def store(tmp_path: Path):
    with Store.open(tmp_path / "data") as s:
        yield s


def test_rows_at_the_interval_with_updates_per_second(store: Store) -> None:
    run = store.create_run("r", {})
    clock = Clock()
    writer = MetricsWriter(store, "abc", every_s=5.0, run_id=run, clock=clock)
    writer.begin(update_step=10)  # a resumed learner: counts from its checkpoint
    loss = {"critic_loss": torch.tensor(0.25), "loss": torch.tensor(1.5)}
    clock.now += 4.0
    assert writer.maybe_write(progress(30), loss) is None  # not due yet
    clock.now += 1.0
    first = writer.maybe_write(progress(40), loss)
    assert first is not None
    clock.now += 10.0
    writer.maybe_write(progress(60), loss)
    got = rows(store)
    assert [r.update_step for r in got] == [40, 60]
    assert [r.updates_per_s for r in got] == [30 / 5.0, 20 / 10.0]
    assert all(r.run_id == run and r.session == "abc" for r in got)
    assert got[0].online_transitions == 50 and got[0].demo_transitions == 20
    assert got[0].env_steps == 120
    assert got[0].scalars == {"critic_loss": 0.25, "loss": 1.5}


def test_follows_the_run_of_stored_episodes(store: Store) -> None:
    run_a, run_b = store.create_run("a", {}), store.create_run("b", {})
    writer = MetricsWriter(store, "abc", every_s=1.0, clock=Clock())
    writer.write(progress(1), {})  # no run known yet: kept, with no run
    writer.saw_episode(stored_episode(store, run_a))
    writer.write(progress(2), {})
    writer.saw_episode(stored_episode(store, run_b))
    writer.write(progress(3), {})
    writer.saw_episode(987654)  # unknown id: keeps the run it had
    writer.write(progress(4), {})
    assert [r.run_id for r in rows(store)] == [None, run_a, run_b, run_b]


def test_a_fixed_run_is_kept(store: Store) -> None:
    run_a, run_b = store.create_run("a", {}), store.create_run("b", {})
    writer = MetricsWriter(store, "abc", every_s=1.0, run_id=run_a, clock=Clock())
    writer.saw_episode(stored_episode(store, run_b))
    writer.write(progress(1), {})
    assert [r.run_id for r in rows(store)] == [run_a]


def test_non_finite_losses_are_left_out_not_the_row(store: Store) -> None:
    writer = MetricsWriter(store, "abc", every_s=1.0, clock=Clock())
    record = writer.write(progress(1), {"loss": torch.tensor(float("nan")), "q": 2.0})
    assert record is not None and record.sample.scalars == {"q": 2.0}


def test_a_refused_row_never_stops_training(store: Store, caplog) -> None:
    run = store.create_run("r", {})
    writer = MetricsWriter(store, "x" * 40, every_s=1.0, run_id=run, clock=Clock())
    assert writer.write(progress(1), {}) is None  # session too long: refused, logged
    assert writer.write(progress(2), {}) is None
    assert rows(store) == []
    warnings = [r for r in caplog.records if "row not written" in r.getMessage()]
    assert len(warnings) == 1  # once per failure streak
