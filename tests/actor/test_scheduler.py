import time

import pytest

from robolearn.actor.scheduler import RateScheduler


def test_ticks_are_never_early_and_do_not_drift() -> None:
    s = RateScheduler(200.0)
    t0 = time.monotonic_ns()
    s.start(t0)
    for k in range(1, 41):
        wake = s.wait_next()
        assert wake >= t0 + k * s.period_ns  # never before its deadline
    # Drift-free: tick 40 is due at t0 + 40 periods exactly, regardless of earlier delays.
    assert s.deadline_ns == t0 + 41 * s.period_ns


def test_overrun_skips_missed_ticks_instead_of_bursting() -> None:
    s = RateScheduler(100.0)
    s.start()
    time.sleep(0.045)  # miss ~4 ticks
    s.wait_next()
    assert s.overruns == 1
    before = time.monotonic_ns()
    s.wait_next()
    # The next tick is a real period away (a burst would return at once).
    assert time.monotonic_ns() - before > s.period_ns // 4


def test_rejects_nonpositive_rate() -> None:
    with pytest.raises(ValueError):
        RateScheduler(0)
