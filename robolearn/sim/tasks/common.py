"""What every sim task is made of: the `Task` record, the waypoint expert and its phases,
and the cube and grasp helpers that several tasks share.

Experts are stateful waypoint followers on privileged object state: each phase names an
end-effector target and a gripper command; the action is the proportional move toward the
target, clipped to the action range. They use only `PandaSim`'s public read methods, so they
behave the same whatever the action scale.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from robolearn.sim import model as scene

if TYPE_CHECKING:
    from robolearn.sim.panda import PandaSim

OPEN, CLOSED = -1.0, 1.0
_EXPERT_GAIN = 1.5  # proportional gain in action units per full-scale step of error


@dataclass
class Phase:
    """One expert phase: move the ee to `target(sim)` with `gripper`, until `done(sim, n)`
    (n = calls spent in this phase) is true."""

    name: str
    target: Callable[[PandaSim], np.ndarray]
    gripper: float
    done: Callable[[PandaSim, int], bool]


class WaypointExpert:
    """Runs `phases` in order; `guard(sim, phase_index)` may return a phase index to jump to."""

    def __init__(
        self, phases: list[Phase], guard: Callable[[PandaSim, int], int | None] | None = None
    ) -> None:
        self.phases = phases
        self.guard = guard
        self.index = 0
        self.calls_in_phase = 0

    @property
    def phase(self) -> str:
        return self.phases[self.index].name

    def act(self, sim: PandaSim) -> np.ndarray:
        for _ in range(len(self.phases)):
            if self.guard is not None:
                jump = self.guard(sim, self.index)
                if jump is not None and jump != self.index:
                    self.index, self.calls_in_phase = jump, 0
            ph = self.phases[self.index]
            if self.index < len(self.phases) - 1 and ph.done(sim, self.calls_in_phase):
                self.index, self.calls_in_phase = self.index + 1, 0
                continue
            break
        ph = self.phases[self.index]
        self.calls_in_phase += 1
        delta = ph.target(sim) - sim.ee_pos()
        xyz = np.clip(_EXPERT_GAIN * delta / sim.scale.xyz_m, -1.0, 1.0)
        parts = [xyz]
        if sim.scale.use_yaw:
            parts.append([0.0])
        parts.append([ph.gripper])
        return np.concatenate(parts).astype(np.float32)


def near(
    target: Callable[[PandaSim], np.ndarray], tol_m: float
) -> Callable[[PandaSim, int], bool]:
    """A phase's `done`: the end effector is within `tol_m` of `target`."""
    return lambda sim, n: bool(np.linalg.norm(target(sim) - sim.ee_pos()) < tol_m)


def never(sim: PandaSim, n: int) -> bool:
    """A phase's `done` for the last phase, or one only a guard leaves."""
    return False


@dataclass(frozen=True)
class Task:
    name: str
    description: str
    reset: Callable[[PandaSim, np.random.Generator], None]
    success: Callable[[PandaSim], bool]
    make_expert: Callable[[PandaSim], WaypointExpert]
    object_positions: Callable[[PandaSim], dict[str, np.ndarray]]
    # Tasks with the same scene share their objects, so `PandaSim.continue_episode` may switch
    # between them without resetting the world (a reset-free forward/backward pair).
    scene: str = ""


def cube_pos(sim: PandaSim) -> np.ndarray:
    """The cube's centre, m."""
    return sim.body_pos("cube")


def place_cube(sim: PandaSim, rng: np.random.Generator, lo, hi) -> None:
    """Put the cube on the table at a random xy in [lo, hi] with a small random yaw."""
    xy = rng.uniform(lo, hi)
    yaw = rng.uniform(-0.3, 0.3)
    sim._place_body("cube", np.array([xy[0], xy[1], scene.CUBE_HALF_M]), yaw)


def grasp_phases(lift_z_m: float, lift_done: Callable[[PandaSim, int], bool],
                 ) -> tuple[list[Phase], dict[str, np.ndarray]]:
    """Above the cube, down, close, lift to `lift_z_m`: how every pick expert starts.

    Returns the phases and the remembered grasp point; a guard clears it to grasp again.
    """
    grasp_xy: dict[str, np.ndarray] = {}

    def above(s: PandaSim) -> np.ndarray:
        return cube_pos(s) + np.array([0.0, 0.0, 0.10])

    def grasp(s: PandaSim) -> np.ndarray:
        c = cube_pos(s)
        return np.array([c[0], c[1], max(c[2], s.workspace_min_m[2])])

    def close_at(s: PandaSim) -> np.ndarray:
        if "xy" not in grasp_xy:
            grasp_xy["xy"] = grasp(s)
        return grasp_xy["xy"]

    def closed(s: PandaSim, n: int) -> bool:
        return n >= 3 and s.gripper_width() < 2 * scene.CUBE_HALF_M + 0.004

    def lift(s: PandaSim) -> np.ndarray:
        t = close_at(s).copy()
        t[2] = lift_z_m
        return t

    def above_done(s: PandaSim, n: int) -> bool:
        e = above(s) - s.ee_pos()
        return bool(np.linalg.norm(e[:2]) < 0.01 and abs(e[2]) < 0.03)

    phases = [
        Phase("above", above, OPEN, above_done),
        Phase("descend", grasp, OPEN, near(grasp, 0.008)),
        Phase("close", close_at, CLOSED, lambda s, n: closed(s, n) or n >= 8),
        Phase("lift", lift, CLOSED, lift_done),
    ]
    return phases, grasp_xy
