"""The sim task registry: description, seeded initial state, sparse success, scripted expert.

Experts are stateful waypoint followers on privileged object state: each phase names an
end-effector target and a gripper command; the action is the proportional move toward the
target, clipped to the action range. They use only `PandaSim`'s public read methods, so they
behave the same whatever the action scale.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from robolearn.sim import model as scene

if TYPE_CHECKING:
    from robolearn.sim.panda import PandaSim

log = logging.getLogger(__name__)

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


def _near(
    target: Callable[[PandaSim], np.ndarray], tol_m: float
) -> Callable[[PandaSim, int], bool]:
    return lambda sim, n: bool(np.linalg.norm(target(sim) - sim.ee_pos()) < tol_m)


def _never(sim: PandaSim, n: int) -> bool:
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


# ---------------------------------------------------------------------------- reach
_REACH_TOL_M = 0.03


def _reach_reset(sim: PandaSim, rng: np.random.Generator) -> None:
    pos = rng.uniform([0.35, -0.25, 0.08], [0.65, 0.25, 0.35])
    sim._place_body("target", pos)


def _reach_target(sim: PandaSim) -> np.ndarray:
    return sim.body_pos("target")


REACH = Task(
    name="reach",
    description="move the gripper to the green ball",
    reset=_reach_reset,
    success=lambda sim: bool(np.linalg.norm(sim.ee_pos() - _reach_target(sim)) < _REACH_TOL_M),
    make_expert=lambda sim: WaypointExpert([Phase("reach", _reach_target, OPEN, _never)]),
    object_positions=lambda sim: {"target": _reach_target(sim)},
)


# ---------------------------------------------------------------------------- cube helpers
def _cube(sim: PandaSim) -> np.ndarray:
    return sim.body_pos("cube")


def _place_cube(sim: PandaSim, rng: np.random.Generator, lo, hi) -> None:
    xy = rng.uniform(lo, hi)
    yaw = rng.uniform(-0.3, 0.3)
    sim._place_body("cube", np.array([xy[0], xy[1], scene.CUBE_HALF_M]), yaw)


# ---------------------------------------------------------------------------- push
_PUSH_TOL_M = 0.03
_PUSH_DIST_M = 0.12
_PUSH_BEHIND_M = 0.035  # ee behind the cube centre while pushing (half cube + finger)
_PUSH_Z_M = 0.018  # low contact point so a pushed cube slides rather than tips
_PUSH_HOVER_Z_M = 0.07


def _push_reset(sim: PandaSim, rng: np.random.Generator) -> None:
    _place_cube(sim, rng, [0.42, -0.12], [0.55, 0.12])
    angle = rng.uniform(-np.pi, np.pi)
    cube = _cube_after_place(sim)
    goal = cube[:2] + _PUSH_DIST_M * np.array([np.cos(angle), np.sin(angle)])
    sim._place_body("goal", np.array([goal[0], goal[1], 0.001]))


def _cube_after_place(sim: PandaSim) -> np.ndarray:
    m = sim.model
    adr = m.jnt_qposadr[m.body_jntadr[m.body("cube").id]]
    return sim.data.qpos[adr : adr + 3].copy()


def _goal(sim: PandaSim) -> np.ndarray:
    return sim.body_pos("goal")


def _push_dir(sim: PandaSim) -> np.ndarray:
    d = (_goal(sim) - _cube(sim))[:2]
    n = np.linalg.norm(d)
    return np.array([d[0] / n, d[1] / n, 0.0]) if n > 1e-6 else np.array([1.0, 0.0, 0.0])


def _push_success(sim: PandaSim) -> bool:
    return bool(np.linalg.norm((_cube(sim) - _goal(sim))[:2]) < _PUSH_TOL_M)


def _push_start(sim: PandaSim, z: float) -> np.ndarray:
    p = _cube(sim) - _push_dir(sim) * (_PUSH_BEHIND_M + 0.02)
    p[2] = z
    return p


def _push_target(sim: PandaSim) -> np.ndarray:
    cube, d = _cube(sim), _push_dir(sim)
    remaining = np.linalg.norm((_goal(sim) - cube)[:2])
    p = cube - d * _PUSH_BEHIND_M + d * min(0.025, remaining + 0.005)
    p[2] = _PUSH_Z_M
    return p


def _push_expert(sim: PandaSim) -> WaypointExpert:
    hover = lambda s: _push_start(s, _PUSH_HOVER_Z_M)  # noqa: E731
    down = lambda s: _push_start(s, _PUSH_Z_M)  # noqa: E731

    def lift(s: PandaSim) -> np.ndarray:
        p = s.ee_pos()
        p[2] = _PUSH_HOVER_Z_M + 0.01
        return p

    phases = [
        Phase("lift", lift, CLOSED, lambda s, n: s.ee_pos()[2] > _PUSH_HOVER_Z_M - 0.01),
        # Fingers fully shut before descending, or a half-closed hand grabs the cube.
        Phase(
            "hover",
            hover,
            CLOSED,
            lambda s, n: _near(hover, 0.012)(s, n) and s.gripper_width() < 0.005,
        ),
        Phase("down", down, CLOSED, _near(down, 0.01)),
        Phase("push", _push_target, CLOSED, _never),
    ]

    def guard(s: PandaSim, index: int) -> int | None:
        if index != 3:
            return None
        rel = (s.ee_pos() - _cube(s))[:2]
        d = _push_dir(s)[:2]
        along = float(rel @ d)
        lateral = float(np.linalg.norm(rel - along * d))
        # Lost the cube (slid past it or it rotated away): lift and approach again.
        # Near the goal the cube-to-goal direction swings, so only the overshoot test counts.
        near_goal = np.linalg.norm((_goal(s) - _cube(s))[:2]) < 0.04
        if along > -0.015 or (lateral > 0.02 and not near_goal):
            return 0
        return None

    return WaypointExpert(phases, guard)


PUSH_CUBE = Task(
    name="push_cube",
    description="push the red cube onto the blue goal",
    reset=_push_reset,
    success=_push_success,
    make_expert=_push_expert,
    object_positions=lambda sim: {"cube": _cube(sim), "goal": _goal(sim)},
)


# ---------------------------------------------------------------------------- pick
_PICK_LIFT_Z_M = 0.10  # cube centre height for success


def _pick_reset(sim: PandaSim, rng: np.random.Generator) -> None:
    _place_cube(sim, rng, [0.40, -0.15], [0.60, 0.15])


def _pick_success(sim: PandaSim) -> bool:
    cube = _cube(sim)
    held = np.linalg.norm(cube - sim.ee_pos()) < 0.05 and sim.gripper_width() > 0.01
    return bool(cube[2] > _PICK_LIFT_Z_M and held)


def _grasp_phases(lift_z_m: float, lift_done: Callable[[PandaSim, int], bool],
                  ) -> tuple[list[Phase], dict[str, np.ndarray]]:
    """Above the cube, down, close, lift to `lift_z_m`: how every pick expert starts.

    Returns the phases and the remembered grasp point; a guard clears it to grasp again.
    """
    grasp_xy: dict[str, np.ndarray] = {}

    def above(s: PandaSim) -> np.ndarray:
        return _cube(s) + np.array([0.0, 0.0, 0.10])

    def grasp(s: PandaSim) -> np.ndarray:
        c = _cube(s)
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
        Phase("descend", grasp, OPEN, _near(grasp, 0.008)),
        Phase("close", close_at, CLOSED, lambda s, n: closed(s, n) or n >= 8),
        Phase("lift", lift, CLOSED, lift_done),
    ]
    return phases, grasp_xy


def _pick_expert(sim: PandaSim) -> WaypointExpert:
    phases, grasp_xy = _grasp_phases(0.22, _never)

    def guard(s: PandaSim, index: int) -> int | None:
        # Missed grasp (fingers shut on nothing): open and start again.
        if index == 3 and s.gripper_width() < 0.01:
            grasp_xy.clear()
            return 0
        return None

    return WaypointExpert(phases, guard)


PICK_CUBE = Task(
    name="pick_cube",
    description="pick up the red cube and lift it",
    reset=_pick_reset,
    success=_pick_success,
    make_expert=_pick_expert,
    object_positions=lambda sim: {"cube": _cube(sim)},
)


# ---------------------------------------------------------------------------- drawer
_DRAWER_OPEN_M = 0.12  # success: drawer pulled out at least this far
_DRAWER_CLOSED_M = 0.02  # success: drawer pushed in to within this
_HOOK_M = 0.028  # hook point: between the handle bar and the drawer face


def _place_cabinet(sim: PandaSim, rng: np.random.Generator, slide: float) -> None:
    face_x = rng.uniform(0.58, 0.64)
    y = rng.uniform(-0.12, 0.12)
    sim._place_body("cabinet", np.array([face_x, y, scene.TABLE_TOP_Z_M]))
    sim.set_joint("drawer_slide", slide)


def _handle(sim: PandaSim) -> np.ndarray:
    return sim.site_pos("handle")


def _slide(sim: PandaSim) -> float:
    return sim.joint_value("drawer_slide")


def _drawer_positions(sim: PandaSim) -> dict[str, np.ndarray]:
    return {"drawer_handle": _handle(sim), "cabinet": sim.body_pos("cabinet")}


def _drawer_expert(opening: bool) -> Callable[[PandaSim], WaypointExpert]:
    # Opening: hook the closed fingers between bar and face and pull. Closing: put them in
    # front of the bar and push.
    offset = _HOOK_M if opening else -0.03

    def hover(s: PandaSim) -> np.ndarray:
        return _handle(s) + np.array([offset, 0.0, 0.08])

    def down(s: PandaSim) -> np.ndarray:
        return _handle(s) + np.array([offset, 0.0, 0.0])

    def move(s: PandaSim) -> np.ndarray:
        h = _handle(s)
        if opening:
            step = -min(0.05, max(0.0, 0.17 - _slide(s)) + 0.01)
            return h + np.array([_HOOK_M + step, 0.0, 0.0])
        step = min(0.05, _slide(s) + 0.01)
        return h + np.array([-0.018 + step, 0.0, 0.0])

    def make(sim: PandaSim) -> WaypointExpert:
        return WaypointExpert(
            [
                Phase(
                    "hover",
                    hover,
                    CLOSED,
                    lambda s, n: _near(hover, 0.012)(s, n) and s.gripper_width() < 0.005,
                ),
                Phase("down", down, CLOSED, _near(down, 0.01)),
                Phase("pull" if opening else "push", move, CLOSED, _never),
            ]
        )

    return make


def _drawer_open_reset(sim: PandaSim, rng: np.random.Generator) -> None:
    _place_cabinet(sim, rng, 0.0)


def _drawer_close_reset(sim: PandaSim, rng: np.random.Generator) -> None:
    _place_cabinet(sim, rng, rng.uniform(0.15, 0.18))


DRAWER_OPEN = Task(
    name="drawer_open",
    description="pull the drawer open",
    reset=_drawer_open_reset,
    success=lambda sim: _slide(sim) > _DRAWER_OPEN_M,
    make_expert=_drawer_expert(opening=True),
    object_positions=_drawer_positions,
    scene="drawer",
)

DRAWER_CLOSE = Task(
    name="drawer_close",
    description="push the drawer closed",
    reset=_drawer_close_reset,
    success=lambda sim: _slide(sim) < _DRAWER_CLOSED_M,
    make_expert=_drawer_expert(opening=False),
    object_positions=_drawer_positions,
    scene="drawer",
)

# ---------------------------------------------------------------------------- bins
_BIN_CARRY_Z_M = 0.14  # ee height while carrying: the cube's bottom clears the bin walls
_BIN_PLACE_Z_M = scene.CUBE_HALF_M + 0.012  # ee height when letting go (cube just above table)
_BIN_INSIDE_M = scene.BIN_HALF_M - scene.CUBE_HALF_M  # cube centre this close to bin centre


def _bin(sim: PandaSim, name: str) -> np.ndarray:
    return sim.body_pos(name)


def _place_bins(sim: PandaSim, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Place both bins; returns their centres (body positions update only after mj_forward)."""
    x = rng.uniform(0.48, 0.54)
    centres = {}
    for name, y in (("bin_a", -0.14), ("bin_b", 0.14)):
        centres[name] = np.array([x + rng.uniform(-0.01, 0.01), y + rng.uniform(-0.01, 0.01),
                                  scene.TABLE_TOP_Z_M])
        sim._place_body(name, centres[name])
    return centres


def _cube_in_bin(sim: PandaSim, name: str) -> bool:
    """The cube rests inside the bin: within its walls and down on the table (released)."""
    rel = _cube(sim)[:2] - _bin(sim, name)[:2]
    resting = _cube(sim)[2] < scene.CUBE_HALF_M + 0.01
    return bool(np.all(np.abs(rel) < _BIN_INSIDE_M) and resting
                and sim.gripper_width() > 2 * scene.CUBE_HALF_M + 0.005)


def _bin_reset(source: str) -> Callable[[PandaSim, np.random.Generator], None]:
    def reset(sim: PandaSim, rng: np.random.Generator) -> None:
        centre = _place_bins(sim, rng)[source]
        # Keep the cube away from the walls so the open fingers fit beside it.
        xy = centre[:2] + rng.uniform(-0.025, 0.025, size=2)
        sim._place_body("cube", np.array([xy[0], xy[1], scene.CUBE_HALF_M]),
                        rng.uniform(-0.3, 0.3))

    return reset


def _bin_expert(target_bin: str) -> Callable[[PandaSim], WaypointExpert]:
    """Pick the cube wherever it is, carry it above the target bin, lower it and let go."""

    def make(sim: PandaSim) -> WaypointExpert:
        phases, grasp_xy = _grasp_phases(
            _BIN_CARRY_Z_M, lambda s, n: s.ee_pos()[2] > _BIN_CARRY_Z_M - 0.03)

        def carry(s: PandaSim) -> np.ndarray:
            b = _bin(s, target_bin)
            return np.array([b[0], b[1], _BIN_CARRY_Z_M])

        def lower(s: PandaSim) -> np.ndarray:
            b = _bin(s, target_bin)
            return np.array([b[0], b[1], _BIN_PLACE_Z_M])

        def retreat(s: PandaSim) -> np.ndarray:
            b = _bin(s, target_bin)
            return np.array([b[0], b[1], _BIN_CARRY_Z_M])

        phases += [
            Phase("carry", carry, CLOSED, _near(carry, 0.015)),
            Phase("lower", lower, CLOSED, _near(lower, 0.012)),
            Phase("release", lower, OPEN,
                  lambda s, n: s.gripper_width() > 2 * scene.CUBE_HALF_M + 0.02),
            Phase("retreat", retreat, OPEN, _never),
        ]

        def guard(s: PandaSim, index: int) -> int | None:
            # Dropped or missed the cube while holding it: open and pick it up again.
            if 3 <= index <= 5 and s.gripper_width() < 0.01:
                grasp_xy.clear()
                return 0
            # Released outside the bin (it bounced out): pick it up again.
            if index == 7 and not _cube_in_bin(s, target_bin) and _cube(s)[2] < 0.03:
                grasp_xy.clear()
                return 0
            return None

        return WaypointExpert(phases, guard)

    return make


def _bin_positions(sim: PandaSim) -> dict[str, np.ndarray]:
    return {"bin_a": _bin(sim, "bin_a"), "bin_b": _bin(sim, "bin_b"), "cube": _cube(sim)}


BIN_A_TO_B = Task(
    name="bin_a_to_b",
    description="move the red cube from the yellow bin to the blue bin",
    reset=_bin_reset("bin_a"),
    success=lambda sim: _cube_in_bin(sim, "bin_b"),
    make_expert=_bin_expert("bin_b"),
    object_positions=_bin_positions,
    scene="bins",
)

BIN_B_TO_A = Task(
    name="bin_b_to_a",
    description="move the red cube from the blue bin to the yellow bin",
    reset=_bin_reset("bin_b"),
    success=lambda sim: _cube_in_bin(sim, "bin_a"),
    make_expert=_bin_expert("bin_a"),
    object_positions=_bin_positions,
    scene="bins",
)

TASK_REGISTRY: dict[str, Task] = {
    t.name: t
    for t in (REACH, PUSH_CUBE, PICK_CUBE, DRAWER_OPEN, DRAWER_CLOSE, BIN_A_TO_B, BIN_B_TO_A)
}
# Reset-free pairs: each task's reverse, which undoes it without a reset.
TASK_PAIRS: dict[str, str] = {
    "drawer_open": "drawer_close",
    "drawer_close": "drawer_open",
    "bin_a_to_b": "bin_b_to_a",
    "bin_b_to_a": "bin_a_to_b",
}
TASKS: tuple[str, ...] = tuple(TASK_REGISTRY)
