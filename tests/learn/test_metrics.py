"""The learner's metrics sink on a real SQLite store: rows at the interval, updates/s from
the counters, the run followed from stored episodes, and a refused row never stops it; the
UTD meter: the ratio held over its window, and behind only when it cannot keep up."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from sqlalchemy import select

from robolearn.learn.metrics import UTD_SAMPLE_EVERY_S, MetricsWriter, Progress, UtdMeter
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


def test_the_utd_held_is_updates_over_env_steps_within_the_window() -> None:
    clock = Clock()
    meter = UtdMeter(1.0, window_s=10.0, clock=clock)
    meter.observe(update_step=0, env_steps=0, owed=0, ready=True)
    for t in range(1, 21):  # 20 s: 10 env steps/s, 5 updates/s, falling further behind
        clock.now += 1.0
        report = meter.observe(update_step=5 * t, env_steps=10 * t, owed=5 * t, ready=True)
    assert report.window_s == 10.0  # only the last window counts
    assert (report.window_updates, report.window_env_steps) == (50, 100)
    assert report.held == 0.5 and report.updates_per_s == 5.0 and report.env_steps_per_s == 10.0
    assert report.behind and report.owed == 100
    fields = report.status_fields()
    assert fields["utd_held"] == fields["utd_window_updates"] / fields["utd_window_env_steps"]


def test_a_learner_that_keeps_up_or_catches_up_is_not_behind() -> None:
    clock = Clock()
    meter = UtdMeter(1.0, window_s=10.0, clock=clock)
    meter.observe(update_step=0, env_steps=0, owed=0, ready=True)
    clock.now += 5.0
    # One step's update still to make (it comes after the step): holding its target.
    report = meter.observe(update_step=49, env_steps=50, owed=1, ready=True)
    assert report.held == 0.98 and not report.behind
    clock.now += 5.0
    # Paying off demos owed from the start: more updates than steps.
    report = meter.observe(update_step=400, env_steps=100, owed=600, ready=True)
    assert report.held == 4.0 and not report.behind


def test_a_few_seconds_are_too_few_to_say_behind() -> None:
    clock = Clock()
    meter = UtdMeter(1.0, window_s=30.0, clock=clock)
    meter.observe(0, 0, owed=0, ready=True)
    clock.now += 2.0
    report = meter.observe(update_step=18, env_steps=20, owed=2, ready=True)
    assert report.held == 0.9 and not report.behind  # 2 s after it became ready
    clock.now += 10.0
    assert meter.observe(update_step=60, env_steps=120, owed=60, ready=True).behind


def test_no_target_and_waiting_for_data_are_never_behind() -> None:
    clock = Clock()
    free = UtdMeter(None, clock=clock)
    waiting = UtdMeter(1.0, clock=clock)
    free.observe(0, 0, owed=0, ready=True)
    waiting.observe(0, 0, owed=0, ready=True)
    clock.now += 5.0
    assert not free.observe(1, 100, owed=0, ready=True).behind
    # Not enough transitions to train on (learner.min_transitions): nothing measured.
    report = waiting.observe(0, 100, owed=100, ready=False)
    assert report.held is None and not report.behind
    clock.now += 5.0
    report = waiting.observe(0, 150, owed=150, ready=True)  # the window starts again here
    assert report.held is None and report.window_env_steps == 0 and not report.behind


def test_the_meter_samples_at_most_once_a_second_unless_forced() -> None:
    clock = Clock()
    meter = UtdMeter(1.0, clock=clock)
    meter.observe(0, 0, owed=0, ready=True)
    clock.now += UTD_SAMPLE_EVERY_S / 2
    assert meter.observe(5, 10, owed=5, ready=True).window_env_steps == 0  # the last report
    assert meter.observe(5, 10, owed=5, ready=True, force=True).window_env_steps == 10


def test_rows_carry_the_utd_held(store: Store) -> None:
    run = store.create_run("r", {})
    clock = Clock()
    meter = UtdMeter(2.0, clock=clock)
    meter.observe(0, 0, owed=0, ready=True)
    clock.now += 10.0
    report = meter.observe(update_step=30, env_steps=100, owed=170, ready=True)
    writer = MetricsWriter(store, "abc", every_s=1.0, run_id=run, clock=clock)
    record = writer.write(progress(30), {}, report)
    assert record is not None
    (row,) = rows(store)
    assert (row.utd_target, row.utd_held, row.env_steps_per_s, row.utd_behind) == (
        2.0, 0.3, 10.0, True)
    writer.write(progress(31), {})  # without a report: no UTD known
    assert rows(store)[-1].utd_held is None and rows(store)[-1].utd_behind is False
