"""push_cube: push the cube onto a goal spot a fixed distance away in a random direction."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from robolearn.sim.tasks.common import (
    CLOSED,
    Phase,
    Task,
    WaypointExpert,
    cube_pos,
    near,
    never,
    place_cube,
)

if TYPE_CHECKING:
    from robolearn.sim.panda import PandaSim

_PUSH_TOL_M = 0.03
_PUSH_DIST_M = 0.12
_PUSH_BEHIND_M = 0.035  # ee behind the cube centre while pushing (half cube + finger)
_PUSH_Z_M = 0.018  # low contact point so a pushed cube slides rather than tips
_PUSH_HOVER_Z_M = 0.07


def _push_reset(sim: PandaSim, rng: np.random.Generator) -> None:
    place_cube(sim, rng, [0.42, -0.12], [0.55, 0.12])
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
    d = (_goal(sim) - cube_pos(sim))[:2]
    n = np.linalg.norm(d)
    return np.array([d[0] / n, d[1] / n, 0.0]) if n > 1e-6 else np.array([1.0, 0.0, 0.0])


def _push_success(sim: PandaSim) -> bool:
    return bool(np.linalg.norm((cube_pos(sim) - _goal(sim))[:2]) < _PUSH_TOL_M)


def _push_start(sim: PandaSim, z: float) -> np.ndarray:
    p = cube_pos(sim) - _push_dir(sim) * (_PUSH_BEHIND_M + 0.02)
    p[2] = z
    return p


def _push_target(sim: PandaSim) -> np.ndarray:
    cube, d = cube_pos(sim), _push_dir(sim)
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
            lambda s, n: near(hover, 0.012)(s, n) and s.gripper_width() < 0.005,
        ),
        Phase("down", down, CLOSED, near(down, 0.01)),
        Phase("push", _push_target, CLOSED, never),
    ]

    def guard(s: PandaSim, index: int) -> int | None:
        if index != 3:
            return None
        rel = (s.ee_pos() - cube_pos(s))[:2]
        d = _push_dir(s)[:2]
        along = float(rel @ d)
        lateral = float(np.linalg.norm(rel - along * d))
        # Lost the cube (slid past it or it rotated away): lift and approach again.
        # Near the goal the cube-to-goal direction swings, so only the overshoot test counts.
        near_goal = np.linalg.norm((_goal(s) - cube_pos(s))[:2]) < 0.04
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
    object_positions=lambda sim: {"cube": cube_pos(sim), "goal": _goal(sim)},
)
