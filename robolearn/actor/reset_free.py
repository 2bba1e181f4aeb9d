"""Reset-free training decisions: which direction runs next, and when the robot is stuck.

Pure logic, no I/O: the actor (and the reset-free benchmark) feed it what happened and act on
what it decides, so every rule is unit-tested without a robot.

- `DirectionScheduler`: after each episode, switch direction on success, retry the same
  direction after a failure, switch anyway once the retries are used up (the other direction
  may undo what blocks this one), and escalate on a stuck episode or on too many failures in a
  row.
- `ProgressMonitor`: per step, "no progress" (success probability flat and no task object
  moved for `stuck_steps` steps, counted across episode boundaries since a reset-free world
  carries over) and "arm at the workspace limit for too long".
- `ResetFreeStats`: success per direction, escalations, human resets and interventions per
  hour, the numbers an operator watches on a long unattended run.

Policies: ONE policy conditioned on the direction (a one-hot appended to its low-dim
observation, `direction_features`), not one per direction. Both directions share the scene,
the encoder and most of the skill (reach the handle, grasp the cube), one learner process
trains both from one replay, and the actor swaps nothing between episodes. Success classifiers
are per direction (a different question per direction), keyed by the direction's task.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from robolearn.config.reset_free import ResetFreeConfig

log = logging.getLogger(__name__)

FORWARD, BACKWARD = "forward", "backward"
# direction_features' order; robolearn.envs.spaces.DIRECTION_DIM is its length.
DIRECTIONS = (FORWARD, BACKWARD)

# Episode end reasons that mean the robot is stuck (set by the actor from ProgressMonitor).
NO_PROGRESS = "no_progress"
WORKSPACE_LIMIT = "workspace_limit"
STUCK_REASONS = (NO_PROGRESS, WORKSPACE_LIMIT)
REPEATED_FAILURES = "repeated_failures"


def direction_features(direction: str) -> np.ndarray:
    """The one-hot that conditions the shared policy on its direction: [forward, backward].

    Raises:
        ValueError: not "forward" or "backward".
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    return np.array([direction == FORWARD, direction == BACKWARD], dtype=np.float32)


@dataclass(frozen=True)
class Decision:
    """What to do after an episode.

    direction/task: the next episode's direction and its task.
    escalate: stop practising and get help (operator request or scripted reset).
    reason: why, for the log and the operator ("success", "retry", "retry_cap",
        "no_progress", "workspace_limit", "repeated_failures").
    """

    direction: str
    task: str
    escalate: bool
    reason: str


class DirectionScheduler:
    """Args:
        cfg: the run's reset-free settings.
        start: the first episode's direction.
    """

    def __init__(self, cfg: ResetFreeConfig, start: str = FORWARD) -> None:
        if start not in DIRECTIONS:
            raise ValueError(f"start direction must be one of {DIRECTIONS}, got {start!r}")
        self.cfg = cfg
        self.direction = start
        self.retries = 0  # failed episodes of the current direction since it started
        self.failures_in_row = 0  # failed episodes in a row, either direction

    @property
    def task(self) -> str:
        return self.task_of(self.direction)

    def task_of(self, direction: str) -> str:
        return self.cfg.forward_task if direction == FORWARD else self.cfg.backward_task

    def _other(self) -> str:
        return BACKWARD if self.direction == FORWARD else FORWARD

    def after_episode(self, success: bool, end_reason: str,
                      moved_objects: bool | None = None) -> Decision:
        """Record an episode of the current direction and decide the next one.

        moved_objects: whether the episode moved a task object (None: not tracked, as on a
            rig without object tracking). A failure that moved something is practice, not a
            sign of a stuck scene: it does not count toward `escalate_after_failures`.
        """
        if success:
            self.retries = 0
            self.failures_in_row = 0
            self.direction = self._other()
            return Decision(self.direction, self.task, False, "success")
        if not moved_objects:
            self.failures_in_row += 1
        if end_reason == WORKSPACE_LIMIT and self.cfg.home_between_episodes:
            # Homing before the next episode takes the arm off the wall: a failure, not a
            # reason to call a person.
            end_reason = "workspace_limit_homed"
        if end_reason in STUCK_REASONS:
            return Decision(self.direction, self.task, True, end_reason)
        if self.failures_in_row >= self.cfg.escalate_after_failures:
            return Decision(self.direction, self.task, True, REPEATED_FAILURES)
        if self.retries >= self.cfg.max_retries:
            self.retries = 0
            self.direction = self._other()
            return Decision(self.direction, self.task, False, "retry_cap")
        self.retries += 1
        return Decision(self.direction, self.task, False, "retry")

    def skip_done(self) -> Decision:
        """The current direction's task is already done where the world stands (a retry-cap
        switch after the other direction failed, e.g. closing a drawer that never opened):
        switch without running it. Not a success: the failure counts stand, so a direction
        that keeps failing still escalates."""
        self.retries = 0
        self.direction = self._other()
        return Decision(self.direction, self.task, False, "already_done")

    def resolved(self, direction: str | None = None) -> None:
        """Help came (a person reset or fixed the scene, or a scripted reset ran): start
        counting failures afresh, optionally from another direction."""
        if direction is not None:
            if direction not in DIRECTIONS:
                raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
            self.direction = direction
        self.retries = 0
        self.failures_in_row = 0


class ProgressMonitor:
    """Per-step stuck tests.

    Args:
        cfg: the run's reset-free settings.
        workspace_min_m, workspace_max_m: the safety box the end effector is kept in.
    """

    def __init__(self, cfg: ResetFreeConfig, workspace_min_m: tuple[float, float, float],
                 workspace_max_m: tuple[float, float, float]) -> None:
        self.cfg = cfg
        self._lo = np.asarray(workspace_min_m, dtype=np.float64) + cfg.workspace_margin_m
        self._hi = np.asarray(workspace_max_m, dtype=np.float64) - cfg.workspace_margin_m
        self._episode_start: np.ndarray | None = None
        self._moved = False
        self._probs: deque[float] = deque(maxlen=cfg.stuck_steps)
        self._objects: deque[np.ndarray] = deque(maxlen=cfg.stuck_steps)
        self.at_limit_steps = 0

    def reset(self) -> None:
        """Forget the history (after progress, a reset or an operator's help)."""
        self._probs.clear()
        self._objects.clear()
        self.at_limit_steps = 0

    def start_episode(self) -> None:
        """A new episode begins: `moved_objects` starts afresh. The no-progress history
        starts afresh too when the arm is homed between episodes (the homing changed the
        situation: stuck then means stuck within one episode, and episodes that keep failing
        without moving anything are the repeated-failures rule's business, with its own
        count); without homing the arm carries on from where it was, and so does the
        history."""
        self._episode_start = None
        self._moved = False
        if self.cfg.home_between_episodes:
            self.reset()

    @property
    def moved_objects(self) -> bool | None:
        """Whether a task object moved more than still_object_m this episode; None when no
        object positions came (a rig without object tracking)."""
        return None if self._episode_start is None else self._moved

    def update(self, success_prob: float, ee_pos_m: np.ndarray,
               object_positions_m: np.ndarray | None = None) -> str | None:
        """Feed one step; returns NO_PROGRESS, WORKSPACE_LIMIT or None.

        Args:
            success_prob: the current direction's success probability (classifier or sparse).
            ee_pos_m: end-effector position (3,), m.
            object_positions_m: task object positions, 3 per object (sim privileged state or
                a tracker); None skips the motion test.
        """
        ee = np.asarray(ee_pos_m, dtype=np.float64).reshape(3)
        outside = bool(np.any(ee <= self._lo) or np.any(ee >= self._hi))
        self.at_limit_steps = self.at_limit_steps + 1 if outside else 0
        if self.at_limit_steps >= self.cfg.workspace_limit_steps:
            return WORKSPACE_LIMIT
        self._probs.append(float(success_prob))
        if object_positions_m is not None:
            objects = np.asarray(object_positions_m, dtype=np.float64).reshape(-1, 3)
            self._objects.append(objects)
            if self._episode_start is None:
                self._episode_start = objects
            elif not self._moved and objects.shape == self._episode_start.shape:
                moved = np.linalg.norm(objects - self._episode_start, axis=-1)
                self._moved = bool(moved.max() > self.cfg.still_object_m)
        if len(self._probs) < self.cfg.stuck_steps:
            return None
        if max(self._probs) - min(self._probs) > self.cfg.flat_success_prob:
            return None
        if len(self._objects) == len(self._probs):
            stack = np.stack(self._objects)  # [T, objects, 3]
            # Per object, the diagonal of the box its positions span over the window.
            spread = np.linalg.norm(stack.max(axis=0) - stack.min(axis=0), axis=-1)
            if float(spread.max()) > self.cfg.still_object_m:
                return None
        return NO_PROGRESS


@dataclass
class ResetFreeStats:
    """Counts of a reset-free run. Hours are of robot time (steps / control rate), so a
    benchmark in simulated time and a real run report the same quantity."""

    control_hz: float
    steps: int = 0
    episodes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DIRECTIONS, 0))
    successes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DIRECTIONS, 0))
    escalations: int = 0
    human_resets: int = 0
    scripted_resets: int = 0
    interventions: int = 0  # episodes with at least one operator-controlled step
    intervention_steps: int = 0

    def record_episode(self, direction: str, success: bool, steps: int,
                       intervention_steps: int = 0) -> None:
        self.steps += steps
        self.episodes[direction] += 1
        self.successes[direction] += int(success)
        self.intervention_steps += intervention_steps
        self.interventions += int(intervention_steps > 0)

    @property
    def hours(self) -> float:
        return self.steps / self.control_hz / 3600.0

    def per_hour(self, count: int) -> float | None:
        return count / self.hours if self.hours > 0 else None

    def summary(self) -> dict[str, float | int | None]:
        """Flat numbers for telemetry and benchmark results."""
        out: dict[str, float | int | None] = {
            "steps": self.steps, "hours": round(self.hours, 4),
            "escalations": self.escalations, "human_resets": self.human_resets,
            "scripted_resets": self.scripted_resets, "interventions": self.interventions,
            "human_resets_per_hour": self.per_hour(self.human_resets),
            "interventions_per_hour": self.per_hour(self.interventions),
            "escalations_per_hour": self.per_hour(self.escalations),
        }
        for d in DIRECTIONS:
            n = self.episodes[d]
            out[f"{d}_episodes"] = n
            out[f"{d}_success_rate"] = self.successes[d] / n if n else None
        return out
