"""pick_cube: grasp the cube and lift it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from robolearn.sim.tasks.common import (
    Task,
    WaypointExpert,
    cube_pos,
    grasp_phases,
    never,
    place_cube,
)

if TYPE_CHECKING:
    from robolearn.sim.panda import PandaSim

_PICK_LIFT_Z_M = 0.10  # cube centre height for success


def _pick_reset(sim: PandaSim, rng: np.random.Generator) -> None:
    place_cube(sim, rng, [0.40, -0.15], [0.60, 0.15])


def _pick_success(sim: PandaSim) -> bool:
    cube = cube_pos(sim)
    held = np.linalg.norm(cube - sim.ee_pos()) < 0.05 and sim.gripper_width() > 0.01
    return bool(cube[2] > _PICK_LIFT_Z_M and held)


def _pick_expert(sim: PandaSim) -> WaypointExpert:
    phases, grasp_xy = grasp_phases(0.22, never)

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
    object_positions=lambda sim: {"cube": cube_pos(sim)},
)
