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
    # Drift-free: every deadline stays on the grid t0 + n periods whatever the delays; on a
    # busy machine a late tick may skip some (counted as overruns), never shift the grid.
    assert (s.deadline_ns - t0) % s.period_ns == 0
    if s.overruns == 0:
        assert s.deadline_ns == t0 + 41 * s.period_ns
    else:
        assert s.deadline_ns > t0 + 41 * s.period_ns


def test_overrun_skips_missed_ticks_instead_of_bursting() -> None:
    s = RateScheduler(100.0)
    s.start()
    time.sleep(0.045)  # miss ~4 ticks
    woke = s.wait_next()
    assert s.overruns == 1
    # The missed ticks are gone: the next one is ahead of the wake-up, at most a period
    # away (a burst would leave it, and three more, in the past and return at once).
    assert woke < s.deadline_ns <= woke + s.period_ns


def test_rejects_nonpositive_rate() -> None:
    with pytest.raises(ValueError):
        RateScheduler(0)
