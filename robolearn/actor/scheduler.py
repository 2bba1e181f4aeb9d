"""Drift-free fixed-rate scheduling.

Tick k is due at t0 + k·period, whatever happened before, so small delays never accumulate.
The wait sleeps until shortly before the deadline and spins the rest: `time.sleep` alone
overshoots by up to a millisecond or more under load, which is the jitter we promise to keep
below 2 ms at p99.
"""

from __future__ import annotations

import logging
import time

log = logging.getLogger(__name__)

# Spin this long before a deadline instead of sleeping through it.
_SPIN_NS = 1_500_000


class RateScheduler:
    def __init__(self, rate_hz: float) -> None:
        if rate_hz <= 0:
            raise ValueError(f"rate_hz must be positive, got {rate_hz}")
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
