import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

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


def _policy() -> int:
    return os.sched_getscheduler(0)


@pytest.mark.skipif(os.geteuid() != 0, reason="SCHED_FIFO needs root or CAP_SYS_NICE here")
def test_the_tick_window_runs_real_time_and_nothing_after_it() -> None:
    s = RateScheduler(200.0, realtime_priority=10)
    s.start()
    with s.on_time():
        inside = _policy(), os.sched_getparam(0).sched_priority
        s.wait_next()
    assert inside == (os.SCHED_FIFO, 10)
    # The policy's compute and any thread started after the tick are at normal priority.
    assert _policy() == os.SCHED_OTHER
    assert s.realtime


def test_priority_zero_never_touches_the_thread() -> None:
    s = RateScheduler(200.0, realtime_priority=0)
    s.start()
    with s.on_time():
        assert _policy() == os.SCHED_OTHER
        s.wait_next()
    assert not s.realtime


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to become an unprivileged user")
def test_without_the_right_to_real_time_the_loop_runs_on_and_says_so(tmp_path) -> None:
    # An unprivileged process (no CAP_SYS_NICE, rtprio limit 0), as a lab PC's operator
    # account usually is: every tick still comes, at normal priority, with one warning.
    script = tmp_path / "tick.py"
    script.write_text(textwrap.dedent("""
        import logging, os, resource
        from robolearn.actor.scheduler import RateScheduler
        resource.setrlimit(resource.RLIMIT_RTPRIO, (0, 0))
        os.setgid(65534); os.setuid(65534)
        logging.basicConfig(level=logging.WARNING)
        s = RateScheduler(100.0, realtime_priority=10)
        s.start()
        for _ in range(5):
            with s.on_time():
                assert os.sched_getscheduler(0) == os.SCHED_OTHER
                s.wait_next()
        print("ticks", s._k, "realtime", s.realtime)
    """))
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=60, cwd=root, env={**os.environ, "PYTHONPATH": str(root)})
    assert out.returncode == 0, out.stderr
    assert "ticks 5 realtime False" in out.stdout
    assert out.stderr.count("no real-time priority") == 1
