"""Drift-free fixed-rate scheduling.

Tick k is due at t0 + k·period, whatever happened before, so small delays never accumulate.
The wait sleeps until shortly before the deadline and spins the rest: `time.sleep` alone
overshoots by up to a millisecond or more under load, which is the jitter we promise to keep
below 2 ms at p99.

On a loaded machine (learner, reward worker, camera drivers on the same cores) a sleeping
thread wakes only when the kernel's fair scheduler next gives it a core, often a tick late.
So the tick's own window, the wait and the observation read after it, runs at real-time
priority (SCHED_FIFO) where the process may use it, as robot control loops do (libfranka,
ros2_control); everything else, the policy's compute included, stays at normal priority, so
the actor never starves the processes it shares the machine with and threads it starts
never inherit the real-time class.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator

log = logging.getLogger(__name__)

# Spin this long before a deadline instead of sleeping through it.
_SPIN_NS = 1_500_000


class RateScheduler:
    """Args:
        rate_hz: ticks per second.
        realtime_priority: SCHED_FIFO priority (1-99) of the calling thread inside
            `on_time()`; 0: never real-time. Where the OS refuses (no CAP_SYS_NICE and no
            rtprio limit) the window runs at normal priority, said once in the log, and
            `realtime` is False from then on.
    """

    def __init__(self, rate_hz: float, realtime_priority: int = 0) -> None:
        if rate_hz <= 0:
            raise ValueError(f"rate_hz must be positive, got {rate_hz}")
        if not 0 <= realtime_priority <= 99:
            raise ValueError(f"realtime_priority must be 0..99, got {realtime_priority}")
        self.realtime_priority = realtime_priority
        self.realtime = realtime_priority > 0 and hasattr(os, "sched_setscheduler")
        self.period_ns = round(1e9 / rate_hz)
        self._t0 = 0
        self._k = 0
        self._overrun_streak = 0
        self.overruns = 0
        self.last_jitter_ns = 0
        self.last_period_ns = 0
        self._last_wake_ns = 0

    def start(self, now_ns: int | None = None) -> None:
        """Make now tick 0."""
        self._t0 = time.monotonic_ns() if now_ns is None else now_ns
        self._k = 0
        self._last_wake_ns = self._t0

    @contextlib.contextmanager
    def on_time(self) -> Iterator[None]:
        """The tick's window (wait_next and the observation read) at real-time priority."""
        if not self.realtime:
            yield
            return
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(self.realtime_priority))
        except OSError as e:
            self.realtime = False
            log.warning("control loop: no real-time priority (%s); its ticks may run late "
                        "on a loaded machine. Grant the actor CAP_SYS_NICE or an rtprio "
                        "limit (ulimit -r %d), or set actor.realtime_priority: 0 to silence "
                        "this", e, self.realtime_priority)
            yield
            return
        try:
            yield
        finally:
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))

    @property
    def deadline_ns(self) -> int:
        return self._t0 + (self._k + 1) * self.period_ns

    def wait_next(self) -> int:
        """Block until the next tick is due; return its wake-up time (monotonic ns).

        If a whole period or more was missed, the missed ticks are skipped (never run late
        in a burst) and a warning is logged once per overrun streak.
        """
        self._k += 1
        deadline = self._t0 + self._k * self.period_ns
        now = time.monotonic_ns()
        if now > deadline + self.period_ns:
            missed = (now - deadline) // self.period_ns
            self._k += int(missed)
            deadline = self._t0 + self._k * self.period_ns
            self.overruns += 1
            if self._overrun_streak == 0:
                log.warning("control loop overran by %d period(s); skipping them", missed)
            self._overrun_streak += 1
        else:
            self._overrun_streak = 0
        remaining = deadline - _SPIN_NS - time.monotonic_ns()
        if remaining > 0:
            time.sleep(remaining / 1e9)
        while (now := time.monotonic_ns()) < deadline:
            pass
        self.last_jitter_ns = now - deadline
        self.last_period_ns = now - self._last_wake_ns
        self._last_wake_ns = now
        return now
