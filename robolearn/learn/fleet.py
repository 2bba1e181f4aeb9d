"""What each robot of a fleet has sent the learner: transitions in, episodes, successes.

The learner attributes every message to the authenticated identity that sent it
(its actor key, `actor-<robot>`), so a robot's numbers are its own even when another
robot's actor is faulty or floods; a run of one robot is tallied as the robot "" (none).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

# transitions_per_s is measured over this window.
RATE_WINDOW_S = 10.0


@dataclass
class RobotTally:
    transitions: int = 0
    episodes: int = 0
    successes: int = 0
    intervention_episodes: int = 0
    env_steps: int = 0
    last_seen: float | None = None
    _recent: deque[tuple[float, int]] = field(default_factory=deque, repr=False)

    def rate(self, now: float) -> float:
        """Transitions per second over the last RATE_WINDOW_S."""
        while self._recent and now - self._recent[0][0] > RATE_WINDOW_S:
            self._recent.popleft()
        return sum(n for _, n in self._recent) / RATE_WINDOW_S


class FleetTally:
    """Per-robot counters of a learner; `robots` are the fleet's names (empty: one robot).
    Counted on the learner's loop, reported from its heartbeat thread: hence the lock."""

    def __init__(self, robots: list[str], clock: Any = time.monotonic) -> None:
        self._clock = clock
        self.robots: dict[str, RobotTally] = {name: RobotTally() for name in robots or [""]}
        self._lock = threading.Lock()

    def _tally(self, robot: str | None) -> RobotTally:
        return self.robots.setdefault(robot or "", RobotTally())

    def transition(self, robot: str | None) -> None:
        with self._lock:
            self._count(self._tally(robot), self._clock())

    @staticmethod
    def _count(tally: RobotTally, now: float) -> None:
        tally.transitions += 1
        tally.last_seen = now
        # One bucket per 100 ms keeps the window's deque short at any rate.
        if tally._recent and now - tally._recent[-1][0] < 0.1:
            t, n = tally._recent[-1]
            tally._recent[-1] = (t, n + 1)
        else:
            tally._recent.append((now, 1))

    def episode(self, robot: str | None, steps: int, success: bool, intervention: bool) -> None:
        with self._lock:
            tally = self._tally(robot)
            tally.episodes += 1
            tally.env_steps += steps
            tally.successes += int(success)
            tally.intervention_episodes += int(intervention)

    def report(self) -> dict[str, dict[str, Any]]:
        """{robot: numbers} as learner_status carries them."""
        with self._lock:
            now = self._clock()
            return {name: {"transitions": t.transitions,
                           "transitions_per_s": round(t.rate(now), 3),
                           "episodes": t.episodes, "successes": t.successes,
                           "intervention_episodes": t.intervention_episodes,
                           "env_steps": t.env_steps,
                           "last_seen_s": (None if t.last_seen is None
                                           else round(now - t.last_seen, 3))}
                    for name, t in self.robots.items()}
